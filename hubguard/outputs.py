"""Model output containers: ordered mappings whose fields are also attributes.

Remote code written for transformers returns instances of ``transformers.modeling_outputs``
classes (``BaseModelOutput``, ``ImageClassifierOutput`` …) and subclasses ``ModelOutput``
with ``@dataclass``. hubguard offers the same shape so that code runs unchanged:
``output.logits``, ``output["logits"]``, ``output[0]`` and ``output.to_tuple()`` all work,
and fields left at ``None`` are not keys, so ``output[0]`` is the first field that is set.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any


class ModelOutput(OrderedDict):  # type: ignore[type-arg]  # values are tensors or nested outputs
    """Base class of model outputs; subclass it with ``@dataclass`` and ``Optional`` fields."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            value = getattr(self, field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def to_tuple(self) -> tuple[Any, ...]:
        """Return the fields that are set, in declaration order."""
        return tuple(self[key] for key in self.keys())

    def __reduce__(self) -> Any:
        # Rebuild through the dataclass constructor so fields and keys stay in step.
        if not dataclasses.is_dataclass(self):
            return super().__reduce__()
        return (type(self), tuple(getattr(self, field.name) for field in dataclasses.fields(self)))


@dataclasses.dataclass
class BaseModelOutput(ModelOutput):
    """Output of a backbone: the last hidden state, and optionally all hidden states and attentions."""

    last_hidden_state: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """Backbone output with a pooled summary of the last hidden state."""

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class BaseModelOutputWithPast(ModelOutput):
    """Backbone output of a decoder, with the key/value cache for the next step."""

    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class ImageClassifierOutput(ModelOutput):
    """Output of an image classifier: the loss when labels were given, and the logits."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class SequenceClassifierOutput(ModelOutput):
    """Output of a sequence classifier: the loss when labels were given, and the logits."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class CausalLMOutput(ModelOutput):
    """Output of a language model head: the loss when labels were given, and the logits."""

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclasses.dataclass
class CausalLMOutputWithPast(ModelOutput):
    """Language model head output with the key/value cache for the next step."""

    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


__all__ = [
    "BaseModelOutput",
    "BaseModelOutputWithPast",
    "BaseModelOutputWithPooling",
    "CausalLMOutput",
    "CausalLMOutputWithPast",
    "ImageClassifierOutput",
    "ModelOutput",
    "SequenceClassifierOutput",
]
