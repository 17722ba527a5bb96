"""Auto classes: pick the config and model class for a checkpoint from its ``model_type``.

``AutoConfig.register(model_type, ConfigClass)`` and ``AutoModel.register(ConfigClass,
ModelClass)`` fill a process-wide registry. When ``config.json`` names code of its own in
``auto_map`` (``"AutoModel": "modeling_x.XModel"``), that code is used only with
``trust_remote_code=True`` (or ``None``, which lets the remote-code pipeline ask), and it
is loaded through :mod:`hubguard._remote` (fetch, audit, sandbox). Classes loaded that
way never enter the process-wide registry, and a ``register`` call in repository code is
refused: the audit denies it (HG216, ``[code] registry_write``), the sandbox refuses it at
run time even when the policy only warns (HG313), and the import runs inside
:func:`isolated_registry` besides.

Which class is used:

1. ``auto_map`` names a class and ``trust_remote_code`` is ``True``: the remote class.
2. Otherwise a class registered locally for the ``model_type`` (or config class).
3. ``auto_map`` names a class, nothing is registered and ``trust_remote_code`` is
   ``None``: the remote-code pipeline decides (it may prompt).
4. ``auto_map`` names a class and ``trust_remote_code`` is ``False``:
   :class:`~hubguard.errors.RemoteCodeNotTrustedError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubguard.configuration import CONFIG_NAME, PretrainedConfig, fetch_snapshot
from hubguard.errors import ConfigurationError, RegistryError, RemoteCodeNotTrustedError

if TYPE_CHECKING:
    from hubguard.loader.snapshot import Snapshot
    from hubguard.modeling import PreTrainedModel

logger = logging.getLogger(__name__)


@dataclass
class _Registry:
    """Config classes by ``model_type`` and, per Auto model class, model classes by config class."""

    configs: dict[str, type[PretrainedConfig]] = field(default_factory=dict)
    models: dict[str, dict[type[PretrainedConfig], type[PreTrainedModel]]] = field(default_factory=dict)

    def copy(self) -> _Registry:
        return _Registry(
            configs=dict(self.configs), models={name: dict(mapping) for name, mapping in self.models.items()}
        )


_PROCESS_REGISTRY = _Registry()
_scoped_registry: contextvars.ContextVar[_Registry | None] = contextvars.ContextVar("hubguard_registry", default=None)


def _registry() -> _Registry:
    return _scoped_registry.get() or _PROCESS_REGISTRY


@contextlib.contextmanager
def isolated_registry() -> Iterator[None]:
    """Confine Auto-class registrations made inside the block to the block.

    Inside the block lookups see the process-wide registrations plus those made in the
    block; after it, the process-wide registry is as it was. The remote-code pipeline
    runs imports of repository code inside this block, so a ``register`` call in that
    code cannot change what later, unrelated loads resolve to.
    """
    token = _scoped_registry.set(_registry().copy())
    try:
        yield
    finally:
        _scoped_registry.reset(token)


# --- AutoConfig ---------------------------------------------------------------------


class AutoConfig:
    """Load or build a config whose class is chosen by ``model_type``."""

    def __init__(self) -> None:
        raise TypeError("AutoConfig is not instantiated; use AutoConfig.from_pretrained or AutoConfig.for_model")

    @staticmethod
    def register(model_type: str, config_class: type[PretrainedConfig], *, exist_ok: bool = False) -> None:
        """Register ``config_class`` for ``model_type``.

        Raises:
            RegistryError: ``config_class`` is not a ``PretrainedConfig`` subclass, its
                ``model_type`` differs from ``model_type``, or ``model_type`` is already
                registered to another class and ``exist_ok`` is false.
        """
        if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
            raise RegistryError(
                f"{config_class!r} is not a subclass of hubguard.PretrainedConfig",
                hint="register a class that derives from hubguard.PretrainedConfig",
            )
        if config_class.model_type != model_type:
            raise RegistryError(
                f"cannot register {config_class.__name__} under {model_type!r}: "
                f"its model_type is {config_class.model_type!r}",
                hint=f"call AutoConfig.register({config_class.model_type!r}, {config_class.__name__}) "
                f"or set {config_class.__name__}.model_type = {model_type!r}",
            )
        registry = _registry()
        current = registry.configs.get(model_type)
        if current is not None and current is not config_class and not exist_ok:
            raise RegistryError(
                f"model_type {model_type!r} is already registered to {current.__module__}.{current.__qualname__}",
                hint="pass exist_ok=True to replace it, or choose another model_type",
            )
        registry.configs[model_type] = config_class

    @staticmethod
    def for_model(model_type: str, **kwargs: Any) -> PretrainedConfig:
        """Build the config class registered for ``model_type`` with ``kwargs``.

        Raises:
            ConfigurationError: ``model_type`` is not registered.
        """
        return _config_class(model_type, source=None)(**kwargs)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        trust_remote_code: bool | None = False,
        policy: Any = None,
        lock: str | os.PathLike[str] | None = None,
        code_revision: str | None = None,
        token: str | None = None,
        return_unused_kwargs: bool = False,
        **overrides: Any,
    ) -> PretrainedConfig | tuple[PretrainedConfig, dict[str, Any]]:
        """Load the config of ``source`` with the class its ``model_type`` or ``auto_map`` names.

        Args:
            trust_remote_code: ``True`` lets the repository's own code (``auto_map``) run
                through audit and sandbox; ``None`` lets the remote-code pipeline ask.
            policy: passed to the remote-code pipeline; its ``[revisions]`` section also
                decides whether ``revision`` may be a branch or tag name (without a
                policy it must be a full commit id).
            lock, code_revision: passed to the remote-code pipeline.
            overrides: passed into the config class's ``__init__``.

        Raises:
            RemoteCodeNotTrustedError: only remote code can read this config and trust
                was not granted.
            ConfigurationError: ``config.json`` is missing or malformed, or its
                ``model_type`` is missing or unknown.
        """
        snapshot = fetch_snapshot(
            source, revision=revision, lock=lock, token=token, include_weights=False, policy=policy
        )
        return cls._from_snapshot(
            snapshot,
            trust_remote_code=trust_remote_code,
            policy=policy,
            lock=lock,
            code_revision=code_revision,
            return_unused_kwargs=return_unused_kwargs,
            **overrides,
        )

    @classmethod
    def _from_snapshot(
        cls,
        snapshot: Snapshot,
        *,
        trust_remote_code: bool | None = False,
        policy: Any = None,
        lock: Any = None,
        code_revision: str | None = None,
        return_unused_kwargs: bool = False,
        **overrides: Any,
    ) -> PretrainedConfig | tuple[PretrainedConfig, dict[str, Any]]:
        config_dict = snapshot.config()
        model_type = config_dict.get("model_type")
        reference = _auto_map_entry(config_dict.get("auto_map"), "AutoConfig")
        local = _registry().configs.get(model_type) if isinstance(model_type, str) else None
        remote_options = {
            "policy": policy,
            "lock": lock,
            "code_revision": code_revision,
            "trust_remote_code": trust_remote_code,
        }

        config_class = _choose_class(snapshot, "AutoConfig", reference, local, remote_options)
        if config_class is None:
            config_class = _config_class(model_type, source=snapshot)
        if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
            raise ConfigurationError(
                f"auto_map AutoConfig {reference!r} is not a subclass of hubguard.PretrainedConfig",
                path=CONFIG_NAME,
                hint="the configuration class must derive from PretrainedConfig",
            )

        result = config_class._from_snapshot(snapshot, return_unused_kwargs=return_unused_kwargs, **overrides)
        config = result[0] if isinstance(result, tuple) else result
        _record_code_revision(config, config_class, reference)
        return result


# --- AutoModel classes ------------------------------------------------------------------


class _AutoModelClass:
    """Shared behaviour of the Auto model classes; the subclass name is the ``auto_map`` key."""

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use from_pretrained or from_config")

    @classmethod
    def register(
        cls,
        config_class: type[PretrainedConfig],
        model_class: type[PreTrainedModel],
        *,
        exist_ok: bool = False,
    ) -> None:
        """Register ``model_class`` as the model for configs of class ``config_class``.

        Raises:
            RegistryError: the classes have the wrong bases, ``model_class.config_class``
                is not ``config_class``, or ``config_class`` already has another model
                class here and ``exist_ok`` is false.
        """
        from hubguard.modeling import PreTrainedModel

        if not (isinstance(config_class, type) and issubclass(config_class, PretrainedConfig)):
            raise RegistryError(
                f"{config_class!r} is not a subclass of hubguard.PretrainedConfig",
                hint=f"call {cls.__name__}.register(ConfigClass, ModelClass)",
            )
        if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
            raise RegistryError(
                f"{model_class!r} is not a subclass of hubguard.PreTrainedModel",
                hint=f"call {cls.__name__}.register(ConfigClass, ModelClass)",
            )
        if model_class.config_class is not config_class:
            declared = model_class.config_class.__name__ if model_class.config_class else None
            raise RegistryError(
                f"{model_class.__name__}.config_class is {declared}, not {config_class.__name__}",
                hint=f"set {model_class.__name__}.config_class = {config_class.__name__}",
            )
        mapping = _registry().models.setdefault(cls.__name__, {})
        current = mapping.get(config_class)
        if current is not None and current is not model_class and not exist_ok:
            raise RegistryError(
                f"{cls.__name__} already maps {config_class.__name__} to {current.__module__}.{current.__qualname__}",
                hint="pass exist_ok=True to replace it",
            )
        mapping[config_class] = model_class

    @classmethod
    def from_config(
        cls,
        config: PretrainedConfig,
        *,
        trust_remote_code: bool | None = False,
        policy: Any = None,
        lock: Any = None,
        code_revision: str | None = None,
    ) -> PreTrainedModel:
        """Build a model with fresh weights for ``config``.

        Raises:
            RemoteCodeNotTrustedError: only the config's remote code defines the model
                and trust was not granted.
            ConfigurationError: no model class is known for the config.
        """
        local = cls._lookup(type(config))
        reference = _auto_map_entry(config.auto_map, cls.__name__)
        # The snapshot whose config.json the config was read from names the model class.
        snapshot = getattr(config, "_hubguard_snapshot", None)
        remote_options = {
            "policy": policy,
            "lock": lock,
            "code_revision": code_revision,
            "trust_remote_code": trust_remote_code,
        }
        if reference is not None and snapshot is not None:
            remote_options = _with_config_pin(config, reference, remote_options, snapshot)
            model_class = _choose_class(snapshot, cls.__name__, reference, local, remote_options)
        elif local is not None:
            model_class = local
        elif reference is not None:
            raise RemoteCodeNotTrustedError(
                f"{cls.__name__} for {type(config).__name__} is defined only by remote code ({reference})",
                hint="load the config with AutoConfig.from_pretrained(source, trust_remote_code=True, "
                "revision=...) first, so its code is fetched, audited and sandboxed",
            )
        else:
            raise _unknown_model_error(cls.__name__, config)
        return model_class(config)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        config: PretrainedConfig | None = None,
        trust_remote_code: bool | None = False,
        policy: Any = None,
        lock: str | os.PathLike[str] | None = None,
        code_revision: str | None = None,
        token: str | None = None,
        dtype: Any = None,
        strict: bool = True,
        **config_overrides: Any,
    ) -> PreTrainedModel:
        """Load the model of ``source`` with the class its config maps to.

        Args:
            trust_remote_code: ``True`` lets the repository's own code (``auto_map``) run
                through audit and sandbox; ``None`` lets the remote-code pipeline ask.
            policy: passed to the remote-code pipeline; its ``[revisions]`` section also
                decides whether ``revision`` may be a branch or tag name (without a
                policy it must be a full commit id).
            lock, code_revision: passed to the remote-code pipeline.
            dtype, strict: as in :meth:`PreTrainedModel.from_pretrained`.
            config_overrides: passed into the config class's ``__init__``.

        Raises:
            RemoteCodeNotTrustedError: only remote code defines the model and trust was
                not granted.
            ConfigurationError: ``config.json`` is missing or malformed, or no class is
                registered for its ``model_type``.
            WeightsError: the weights are not safetensors or do not match the model.
        """
        snapshot = fetch_snapshot(
            source, revision=revision, lock=lock, token=token, include_weights=True, policy=policy
        )
        return cls._from_snapshot(
            snapshot,
            config=config,
            trust_remote_code=trust_remote_code,
            policy=policy,
            lock=lock,
            code_revision=code_revision,
            dtype=dtype,
            strict=strict,
            **config_overrides,
        )

    @classmethod
    def _from_snapshot(
        cls,
        snapshot: Snapshot,
        *,
        config: PretrainedConfig | None = None,
        trust_remote_code: bool | None = False,
        policy: Any = None,
        lock: Any = None,
        code_revision: str | None = None,
        dtype: Any = None,
        strict: bool = True,
        **config_overrides: Any,
    ) -> PreTrainedModel:
        from hubguard.modeling import PreTrainedModel

        remote_options = {
            "policy": policy,
            "lock": lock,
            "code_revision": code_revision,
            "trust_remote_code": trust_remote_code,
        }
        if config is None:
            config = AutoConfig._from_snapshot(snapshot, **remote_options, **config_overrides)  # type: ignore[assignment]  # no unused kwargs asked
            config_overrides = {}

        reference = _auto_map_entry(config.auto_map, cls.__name__)
        local = cls._lookup(type(config))
        remote_options = _with_config_pin(config, reference, remote_options, snapshot)
        model_class = _choose_class(snapshot, cls.__name__, reference, local, remote_options)
        if model_class is None:
            raise _unknown_model_error(cls.__name__, config)
        if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
            raise ConfigurationError(
                f"auto_map {cls.__name__} {reference!r} is not a subclass of hubguard.PreTrainedModel",
                path=CONFIG_NAME,
                hint="the model class must derive from PreTrainedModel",
            )
        _record_code_revision(config, model_class, reference)
        return model_class._from_snapshot(
            snapshot, config=config, dtype=dtype, strict=strict, policy=remote_options["policy"], **config_overrides
        )

    @classmethod
    def _lookup(cls, config_class: type[PretrainedConfig]) -> type[PreTrainedModel] | None:
        mapping = _registry().models.get(cls.__name__, {})
        for candidate in config_class.__mro__:
            if candidate in mapping:
                return mapping[candidate]
        return None


class AutoModel(_AutoModelClass):
    """Load or build the base model (features, no task head) registered for a config."""


class AutoModelForImageClassification(_AutoModelClass):
    """Load or build the image-classification model registered for a config."""


# --- shared decisions ---------------------------------------------------------------------


def _choose_class(
    snapshot: Snapshot | None,
    auto_class_name: str,
    reference: str | None,
    local: type | None,
    remote_options: dict[str, Any],
) -> type | None:
    """Pick the remote or the local class (see the module docstring); ``None`` if neither exists."""
    trust = remote_options["trust_remote_code"]
    use_remote = reference is not None and (trust is True or (trust is None and local is None))
    if use_remote and snapshot is not None:
        from hubguard import _remote

        remote_options = {**remote_options, "code_revision": _code_revision(snapshot, reference, remote_options)}
        # Registrations that the repository's code makes while it is imported end with the import.
        with isolated_registry():
            remote_class = _remote.load_class(snapshot, auto_class_name, **remote_options)
        if isinstance(remote_class, type) and hasattr(remote_class, "register_for_auto_class"):
            # Saving the loaded object then copies this code, as for a locally registered class.
            remote_class.register_for_auto_class(auto_class_name)
        logger.info("using remote class %s for %s", reference, auto_class_name)
        return remote_class
    if local is not None:
        if reference is not None:
            logger.info("using registered %s for %s instead of remote code %s", local.__name__, auto_class_name, reference)
        return local
    if reference is not None and snapshot is not None:
        raise _not_trusted_error(snapshot, auto_class_name, reference)
    return None


def _code_revision(snapshot: Snapshot, reference: str | None, remote_options: dict[str, Any]) -> str | None:
    """Return the caller's ``code_revision``, else the pin config.json records for a cross-repository reference.

    A config saved after a cross-repository load stores the code commit it used under
    ``hubguard.code_revisions``. Passing that pin keeps a reload on the same code even
    after the code repository's branch has moved.
    """
    if remote_options["code_revision"] is not None or reference is None or "--" not in reference:
        return remote_options["code_revision"]
    recorded = snapshot.config().get("hubguard")
    revisions = recorded.get("code_revisions") if isinstance(recorded, dict) else None
    if not isinstance(revisions, dict):
        return None
    pin = revisions.get(reference.partition("--")[0])
    return pin if isinstance(pin, str) else None


def _with_config_pin(
    config: PretrainedConfig, reference: str | None, remote_options: dict[str, Any], snapshot: Snapshot
) -> dict[str, Any]:
    """Take the code commit the config's own class came from, so config and model code match.

    For ``org/repo--module.Class`` that is the pin recorded for ``org/repo``. For a class
    in ``snapshot``'s own repository it is the commit of the config class's code when that
    code came from the same source at another commit (a ``code_revision`` load), so a model
    built from the config does not fall back to the code at the config's commit.
    """
    if remote_options["code_revision"] is not None or reference is None:
        return remote_options
    if "--" in reference:
        pin = config._hubguard_code_revisions.get(reference.partition("--")[0])
    else:
        code_snapshot = vars(type(config)).get("__hubguard_snapshot__")
        same_source = code_snapshot is not None and code_snapshot.source == snapshot.source
        pin = code_snapshot.revision.commit if same_source else None
        if pin == snapshot.revision.commit:
            pin = None
    return {**remote_options, "code_revision": pin} if pin is not None else remote_options


def _not_trusted_error(snapshot: Snapshot, auto_class_name: str, reference: str) -> RemoteCodeNotTrustedError:
    source = snapshot.source.display()
    commit = snapshot.revision.commit
    audit_command = f"hubguard audit {source} --revision {commit}"
    load_call = f'trust_remote_code=True, revision="{commit}"'
    return RemoteCodeNotTrustedError(
        f"{source} defines {auto_class_name} only in its own code ({reference}), "
        "and trust_remote_code is not set",
        path=CONFIG_NAME,
        hint=f"read the audit of that code with `{audit_command}`, then load it with {load_call}",
    )


def _config_class(model_type: Any, *, source: Snapshot | None) -> type[PretrainedConfig]:
    where = f" in config.json of {source.source.display()}" if source is not None else ""
    if not isinstance(model_type, str) or not model_type:
        raise ConfigurationError(
            f"no model_type{where}, so no config class can be chosen",
            path=CONFIG_NAME if source is not None else None,
            hint='add "model_type" to config.json, or load it with the config class itself',
        )
    config_class = _registry().configs.get(model_type)
    if config_class is None:
        known = ", ".join(sorted(_registry().configs)) or "none"
        raise ConfigurationError(
            f"model_type {model_type!r}{where} is not registered (registered: {known})",
            path=CONFIG_NAME if source is not None else None,
            hint=f"register a config class with AutoConfig.register({model_type!r}, ConfigClass)",
        )
    return config_class


def _unknown_model_error(auto_class_name: str, config: PretrainedConfig) -> ConfigurationError:
    return ConfigurationError(
        f"no {auto_class_name} class is registered for {type(config).__name__} "
        f"(model_type {getattr(config, 'model_type', '')!r})",
        hint=f"register one with {auto_class_name}.register({type(config).__name__}, ModelClass)",
    )


def _auto_map_entry(auto_map: Any, auto_class_name: str) -> str | None:
    if not isinstance(auto_map, dict):
        return None
    value = auto_map.get(auto_class_name)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _record_code_revision(config: PretrainedConfig, loaded_class: type, reference: str | None) -> None:
    """Keep the commit of a cross-repository class's code, so a saved config pins it."""
    snapshot = vars(loaded_class).get("__hubguard_snapshot__")
    if reference is None or "--" not in reference or snapshot is None:
        return
    repo = reference.partition("--")[0]
    config._hubguard_code_revisions[repo] = snapshot.revision.commit


__all__ = ["AutoConfig", "AutoModel", "AutoModelForImageClassification", "isolated_registry"]
