"""``PreTrainedModel``: a ``torch.nn.Module`` built from a config, saved as safetensors.

A model class sets ``config_class`` and, in ``__init__(self, config)``, calls
``super().__init__(config)`` and builds its layers; nothing else is required (no
``post_init()``). Tied weights are whatever the class's ``__init__`` ties: saving stores
each shared tensor once, loading rebuilds the model and fills every name.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from hubguard import _serialization
from hubguard.configuration import (
    CONFIG_NAME,
    PretrainedConfig,
    _auto_class_name,
    fetch_snapshot,
)
from hubguard.errors import ConfigurationError, WeightsError

if TYPE_CHECKING:
    from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound="PreTrainedModel")

# torch.nn.init functions that layer constructors call to fill fresh parameters. While a
# model is built only to be overwritten by a checkpoint they are no-ops (see _skip_init).
_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


class PreTrainedModel(torch.nn.Module):
    """Base class of models that hubguard saves, loads and publishes.

    Example:
        >>> class TinyModel(PreTrainedModel):
        ...     config_class = TinyConfig
        ...     def __init__(self, config):
        ...         super().__init__(config)
        ...         self.linear = torch.nn.Linear(config.width, config.width)
        >>> model = TinyModel(TinyConfig(width=4))
        >>> model.save_pretrained("out")
        >>> TinyModel.from_pretrained("out")
    """

    config_class: ClassVar[type[PretrainedConfig] | None] = None
    _auto_class: ClassVar[str | None] = None

    def __init__(self, config: PretrainedConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        expected = type(self).config_class or PretrainedConfig
        if not isinstance(config, expected) and not _same_config_class(type(config), expected):
            expected_name, actual_name = expected.__name__, type(config).__name__
            if expected_name == actual_name:
                expected_name, actual_name = _qualified(expected), _qualified(type(config))
            raise ConfigurationError(
                f"{type(self).__name__} needs a {expected_name}, got {actual_name}",
                hint=f"build the model from {expected.__name__}(...) or "
                f"{expected.__name__}.from_pretrained(...), or load it with an Auto class",
            )
        self.config = config
        self.name_or_path = config.name_or_path

    # --- information --------------------------------------------------------------

    def num_parameters(self, *, only_trainable: bool = False) -> int:
        """Return the number of parameters, counting each tied parameter once."""
        return sum(
            parameter.numel() for parameter in self.parameters() if parameter.requires_grad or not only_trainable
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first floating-point parameter (``float32`` for a model without any)."""
        for parameter in self.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return torch.float32

    @property
    def hubguard_report(self) -> Any:
        """The audit report of the remote-code load that produced this class, or ``None``.

        Set by the remote-code pipeline on the sandboxed class; classes are cached per
        code closure, so this is the report of the latest load of that exact code.
        """
        return getattr(type(self), "__hubguard_report__", None)

    @property
    def hubguard_stage_seconds(self) -> dict[str, float]:
        """Seconds spent in each stage of the remote-code load of this class (empty for local classes)."""
        return dict(getattr(type(self), "__hubguard_stage_seconds__", {}) or {})

    # --- saving ---------------------------------------------------------------------

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        *,
        max_shard_size: int | str = _serialization.DEFAULT_MAX_SHARD_SIZE,
    ) -> list[str]:
        """Write ``config.json`` and the weights as safetensors to ``folder``.

        Weights above ``max_shard_size`` (bytes, or a string such as ``"500MB"``) are
        split into shards with a ``model.safetensors.index.json``. When the model or
        config class was registered with ``register_for_auto_class``, their code is
        copied too and ``auto_map`` names it.

        Returns:
            The repository paths written, sorted.

        Raises:
            ConfigurationError: a registered class is defined in ``__main__`` or its file
                cannot be found.
        """
        from hubguard._code_export import export_code

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = export_code(self.config, [type(self)], folder)
        self.config.architectures = [type(self).__name__]
        self.config.torch_dtype = str(self.dtype).removeprefix("torch.")
        written += _serialization.save_weights(self, folder, max_shard_size=max_shard_size)
        written += self.config.save_pretrained(folder)
        logger.info("saved %s to %s", type(self).__name__, folder)
        return sorted(set(written))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        branch: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        max_shard_size: int | str = _serialization.DEFAULT_MAX_SHARD_SIZE,
    ) -> str:
        """Save the model into one new commit of ``repo_id`` and return the commit id.

        The repository is created when it does not exist yet. Hand out the returned id
        as the pinned ``revision`` for loading.

        Raises:
            PublishError: the repository or the commit could not be created.
        """
        from hubguard._publish import push_folder

        return push_folder(
            lambda folder: self.save_pretrained(folder, max_shard_size=max_shard_size),
            repo_id,
            branch=branch,
            commit_message=commit_message or "Upload model",
            private=private,
            token=token,
            endpoint=endpoint,
        )

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "AutoModel") -> None:
        """Export this class's code on ``save_pretrained`` and name it in ``auto_map[auto_class]``."""
        cls._auto_class = _auto_class_name(auto_class, expected_prefix="AutoModel")

    # --- loading --------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls: type[ModelT],
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        config: PretrainedConfig | None = None,
        dtype: torch.dtype | str | None = None,
        strict: bool = True,
        lock: str | os.PathLike[str] | None = None,
        token: str | None = None,
        policy: Any = None,
        **config_overrides: Any,
    ) -> ModelT:
        """Build the model from its config and load its safetensors weights.

        Args:
            source: a local folder, Hub repo id or git URL; fetched and verified by
                :func:`hubguard.loader.fetch`.
            revision: the commit to load (the loader's policy decides whether names may float).
            config: use this config instead of the source's ``config.json``.
            dtype: convert the weights to this dtype; ``"auto"`` uses ``torch_dtype``
                from ``config.json``.
            strict: raise on missing, unexpected or shape-mismatched keys; when false,
                log them as a warning and load the keys that match.
            policy: a policy name, file or ``Policy``; its ``[revisions]`` section decides
                floating revisions, and ``[weights] allow_pickle`` lets a checkpoint with
                only ``pytorch_model.bin`` load after an opcode scan, with
                ``torch.load(weights_only=True)``.
            config_overrides: passed into the config class's ``__init__``.

        Raises:
            WeightsError: no safetensors weights, an invalid file, or keys that do not match.
            ConfigurationError: ``config.json`` is missing or malformed, or the config has
                the wrong class.
        """
        snapshot = fetch_snapshot(source, revision=revision, lock=lock, token=token, include_weights=True, policy=policy)
        return cls._from_snapshot(snapshot, config=config, dtype=dtype, strict=strict, policy=policy, **config_overrides)

    @classmethod
    def _from_snapshot(
        cls: type[ModelT],
        snapshot: Snapshot,
        *,
        config: PretrainedConfig | None = None,
        dtype: torch.dtype | str | None = None,
        strict: bool = True,
        policy: Any = None,
        **config_overrides: Any,
    ) -> ModelT:
        """Load the model from an already fetched snapshot (shared by the Auto and remote paths)."""
        from hubguard.audit.policy import load_policy

        config = cls._resolve_config(snapshot, config, config_overrides)
        allow_pickle = load_policy(policy).weights.allow_pickle
        weights = _serialization.read_weights(snapshot, allow_pickle=allow_pickle)

        # Construction skips parameter initialisation, because the checkpoint overwrites
        # every parameter and saved buffer. The model is built again with its
        # initialisation when keys are missing or when it has buffers that are not saved,
        # so those get their normal start values.
        with _skip_init():
            model = cls(config)
        if _has_unsaved_buffers(model):
            model = cls(config)
        if weights is None:
            # A model without parameters or saved buffers (pure code) needs no weight file.
            if model.state_dict():
                raise _serialization.missing_weights_error(snapshot)
            model.eval()
            return model
        state, weights_path = weights
        report = _serialization.compare_keys(model, state)
        if not report.clean:
            message = f"weights in {weights_path} do not match {cls.__name__}: {report.describe()}"
            if strict:
                raise WeightsError(
                    message,
                    path=weights_path,
                    hint="check that config.json describes these weights, or pass strict=False "
                    "to load only the matching keys",
                )
            logger.warning("%s; loading the matching keys only (strict=False)", message)
            if report.missing:
                model = cls(config)
        _serialization.load_matching(model, state, report)

        target_dtype = _resolve_dtype(dtype, config)
        if target_dtype is not None:
            model.to(target_dtype)
        model.eval()
        logger.info("loaded %s from %s@%s", cls.__name__, snapshot.source.display(), snapshot.revision.commit)
        return model

    @classmethod
    def _resolve_config(
        cls, snapshot: Snapshot, config: PretrainedConfig | None, overrides: dict[str, Any]
    ) -> PretrainedConfig:
        config_class = cls.config_class or PretrainedConfig
        if config is None:
            return config_class._from_snapshot(snapshot, **overrides)  # type: ignore[return-value]  # no unused kwargs asked
        if not overrides:
            return config
        # Overrides go through __init__ again so validation and derived values see them.
        rebuilt = type(config).from_dict(config.to_dict(), **overrides)
        rebuilt._hubguard_code_revisions = dict(config._hubguard_code_revisions)
        return rebuilt  # type: ignore[return-value]  # no unused kwargs asked


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Make the ``torch.nn.init`` fill functions no-ops while a model is built for loading.

    NOTE: the patch is process-wide for the duration of the constructor call, so a model
    built at the same time in another thread is not initialised either. A plain tensor
    attribute (neither parameter nor buffer) filled by ``torch.nn.init`` keeps
    uninitialised memory.
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS if hasattr(torch.nn.init, name)}

    def _keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    try:
        for name in saved:
            setattr(torch.nn.init, name, _keep)
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def _same_config_class(given: type, expected: type) -> bool:
    """Tell whether ``given`` is another import of the class ``expected`` (same name and model_type).

    Loaders that import a repository's modules once per module (transformers' dynamic
    modules, for one) give the config and the model separate copies of the config class.
    """
    return (
        isinstance(given, type)
        and issubclass(given, PretrainedConfig)
        and given.__qualname__ == expected.__qualname__
        and given.__module__.rpartition(".")[2] == expected.__module__.rpartition(".")[2]
        and bool(given.model_type)
        and given.model_type == getattr(expected, "model_type", None)
    )


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _has_unsaved_buffers(model: torch.nn.Module) -> bool:
    """Tell whether any submodule registered a buffer with ``persistent=False``."""
    return any(module._non_persistent_buffers_set for module in model.modules())


def _resolve_dtype(dtype: torch.dtype | str | None, config: PretrainedConfig) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = dtype
    if dtype == "auto":
        name = getattr(config, "torch_dtype", None) or getattr(config, "dtype", None)
    if name is None:
        return None
    value = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ConfigurationError(
            f"dtype {name!r} is not a torch dtype",
            path=CONFIG_NAME if dtype == "auto" else None,
            hint='pass a torch.dtype such as torch.float16, or "auto"',
        )
    return value


__all__ = ["PreTrainedModel"]
