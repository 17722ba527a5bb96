"""The ``transformers`` module sandboxed remote code imports: hubguard's own config, model and Auto API.

Remote code written for transformers imports names such as
``from transformers import PretrainedConfig`` or
``from transformers.modeling_utils import PreTrainedModel``. The sandbox's import guard
maps ``transformers`` and its submodules to this module and the submodule objects below,
so that code runs unchanged while hubguard never depends on transformers. Names resolve
lazily, so importing this module does not import torch.

Only the names below exist; anything else raises ``ImportError`` (as a missing name in an
old transformers version would), which ``try/except ImportError`` fallbacks handle.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any

# Public name -> hubguard module that defines it.
_TOP_LEVEL = {
    "PretrainedConfig": "hubguard.configuration",
    "PreTrainedModel": "hubguard.modeling",
    "AutoConfig": "hubguard.auto",
    "AutoModel": "hubguard.auto",
    "AutoModelForImageClassification": "hubguard.auto",
}

# Output classes of transformers.modeling_outputs that hubguard.outputs provides.
_OUTPUT_NAMES = (
    "BaseModelOutput",
    "BaseModelOutputWithPast",
    "BaseModelOutputWithPooling",
    "CausalLMOutput",
    "CausalLMOutputWithPast",
    "ImageClassifierOutput",
    "ModelOutput",
    "SequenceClassifierOutput",
)

# transformers submodule -> names it offers (each resolved through _TOP_LEVEL or below).
_SUBMODULES: dict[str, dict[str, str]] = {
    "configuration_utils": {"PretrainedConfig": "hubguard.configuration"},
    "modeling_utils": {"PreTrainedModel": "hubguard.modeling"},
    "utils": {"ModelOutput": "hubguard.outputs"},
    "utils.logging": {},
    "modeling_outputs": {name: "hubguard.outputs" for name in _OUTPUT_NAMES},
}


def _lazy_getattr(module_name: str, names: dict[str, str]) -> Any:
    def __getattr__(name: str) -> Any:
        source = names.get(name)
        if source is None:
            raise AttributeError(f"hubguard's transformers compatibility module {module_name!r} has no attribute {name!r}")
        return getattr(importlib.import_module(source), name)

    return __getattr__


def get_logger(name: str | None = None) -> logging.Logger:
    """Return ``logging.getLogger(name)``, what ``transformers.utils.logging.get_logger`` returns."""
    return logging.getLogger(name)


def _build_submodules() -> dict[str, types.ModuleType]:
    built: dict[str, types.ModuleType] = {}
    for dotted, names in _SUBMODULES.items():
        full_name = f"{__name__}.{dotted}"
        module = types.ModuleType(full_name, f"hubguard stand-in for transformers.{dotted}")
        module.__dict__["__getattr__"] = _lazy_getattr(full_name, names)
        built[dotted] = module
        sys.modules.setdefault(full_name, module)
    built["utils.logging"].get_logger = get_logger  # type: ignore[attr-defined]  # module attribute
    built["utils"].logging = built["utils.logging"]  # type: ignore[attr-defined]  # module attribute
    return built


_submodules = _build_submodules()
configuration_utils = _submodules["configuration_utils"]
modeling_utils = _submodules["modeling_utils"]
utils = _submodules["utils"]
modeling_outputs = _submodules["modeling_outputs"]


def __getattr__(name: str) -> Any:
    source = _TOP_LEVEL.get(name)
    if source is None:
        raise AttributeError(f"hubguard's transformers compatibility module has no attribute {name!r}")
    return getattr(importlib.import_module(source), name)


def resolve(name: str) -> types.ModuleType:
    """Return the module that stands for ``transformers`` or ``transformers.<sub>``.

    Raises:
        ModuleNotFoundError: hubguard has no stand-in for that submodule.
    """
    if name == "transformers":
        return sys.modules[__name__]
    dotted = name[len("transformers.") :]
    module = _submodules.get(dotted)
    if module is None:
        raise ModuleNotFoundError(
            f"hubguard's transformers compatibility layer has no module {name!r}; "
            "remote code may use only the config, model, Auto and logging names",
            name=name,
        )
    return module


__all__ = ["configuration_utils", "get_logger", "modeling_outputs", "modeling_utils", "resolve", "utils", *_TOP_LEVEL]
