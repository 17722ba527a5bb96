"""``PretrainedConfig``: the settings of a model, stored as ``config.json``.

A model author subclasses :class:`PretrainedConfig` with an ``__init__(..., **kwargs)``
that validates its own fields and then calls ``super().__init__(**kwargs)``. Loading
always goes through that ``__init__``: keys read from ``config.json`` and overrides given
to :meth:`PretrainedConfig.from_pretrained` are both passed as keyword arguments, so
validation runs and derived values are computed from the final inputs.

The JSON layout follows the Hugging Face convention (``model_type``, ``architectures``,
``auto_map``, ``_name_or_path``), so folders move between hubguard and transformers.
hubguard adds two keys: ``hubguard_version`` (the version that wrote the file) and
``hubguard`` (``{"code_revisions": {"org/repo": "<40-hex commit>"}}``, the pinned
commits of code repositories that cross-repository ``auto_map`` entries point to).

This module does not import torch, so configs can be read on the audit path.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from hubguard._version import __version__
from hubguard.errors import ConfigurationError

if TYPE_CHECKING:
    from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"

# Keys that PretrainedConfig.__init__ handles itself, so return_unused_kwargs never returns them.
_BASE_KEYS = frozenset({"name_or_path", "_name_or_path", "architectures", "auto_map", "model_type", "hubguard_version"})

# Keyword arguments that transformers passes to ``from_pretrained`` of remote-code classes.
# They describe how transformers fetched the files, not the model, so hubguard drops them
# instead of storing them as config values.
_TRANSFORMERS_LOADER_KEYS = frozenset(
    {
        "_commit_hash",
        "_from_auto",
        "_from_pipeline",
        "adapter_kwargs",
        "cache_dir",
        "code_revision",
        "force_download",
        "local_files_only",
        "proxies",
        "resume_download",
        "subfolder",
        "trust_remote_code",
        "use_auth_token",
    }
)

# A git commit id, or the content id that the loader gives a plain folder.
_COMMIT_RE = re.compile(r"[0-9a-f]{40}|sha256:[0-9a-f]{64}")

ConfigT = TypeVar("ConfigT", bound="PretrainedConfig")


class PretrainedConfig:
    """Base class of model configurations.

    Subclasses set the class attribute ``model_type`` and define
    ``__init__(self, <fields>, **kwargs)`` that validates the fields, stores them and
    calls ``super().__init__(**kwargs)``. Keys the subclass does not know are kept as
    attributes, so a ``config.json`` written by a newer version of the model still loads.

    Example:
        >>> class HeadsConfig(PretrainedConfig):
        ...     model_type = "heads"
        ...     def __init__(self, hidden=8, heads=2, **kwargs):
        ...         if hidden % heads:
        ...             raise ValueError("hidden must be a multiple of heads")
        ...         self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        ...         super().__init__(**kwargs)
        >>> HeadsConfig(heads=4).head_dim
        2
    """

    model_type: ClassVar[str] = ""
    # Set by ``register_for_auto_class``: the Auto class that ``auto_map`` names for this class.
    _auto_class: ClassVar[str | None] = None

    def __init__(self, **kwargs: Any) -> None:
        # Attributes a subclass set before calling super().__init__ win over stale
        # copies of the same key in kwargs (a derived value saved in an older config.json).
        preset = set(self.__dict__)

        name_or_path = kwargs.pop("name_or_path", None)
        stored_name = kwargs.pop("_name_or_path", None)
        self._name_or_path = str(name_or_path if name_or_path is not None else stored_name or "")
        self.architectures: list[str] | None = _string_list(kwargs.pop("architectures", None), "architectures")
        self.auto_map: dict[str, Any] | None = _auto_map(kwargs.pop("auto_map", None))
        self.hubguard_version: str | None = kwargs.pop("hubguard_version", None)
        # Pinned commits of code repositories that cross-repository auto_map entries name.
        # from_dict fills it from the "hubguard" key and the Auto classes from the loaded code.
        self._hubguard_code_revisions: dict[str, str] = {}

        model_type = kwargs.pop("model_type", None)
        if model_type is not None and model_type != type(self).model_type:
            if type(self).model_type:
                logger.warning(
                    "config.json has model_type %r but %s has model_type %r; keeping %r",
                    model_type,
                    type(self).__name__,
                    type(self).model_type,
                    type(self).model_type,
                )
            else:
                self.model_type = model_type  # type: ignore[misc]  # instance value for the untyped base class

        for key, value in kwargs.items():
            if key in preset:
                logger.debug("%s: keeping %s set by __init__ over the value in kwargs", type(self).__name__, key)
                continue
            if callable(getattr(type(self), key, None)):
                raise ConfigurationError(
                    f"config key {key!r} would replace the method {type(self).__name__}.{key}",
                    path=CONFIG_NAME,
                    hint=f"rename the key {key!r} in config.json",
                )
            setattr(self, key, value)

    # --- names and equality -----------------------------------------------------

    @property
    def name_or_path(self) -> str:
        """The source the config was loaded from (repo id or folder), or ``""``."""
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: str | os.PathLike[str]) -> None:
        self._name_or_path = str(value)

    def __eq__(self, other: object) -> bool:
        """Compare the settings; ``name_or_path`` (where a config was loaded from) is not one of them."""
        if not isinstance(other, PretrainedConfig):
            return NotImplemented
        if type(self) is not type(other):
            return False
        mine, theirs = self.to_dict(), other.to_dict()
        mine.pop("_name_or_path")
        theirs.pop("_name_or_path")
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]  # mutable settings object

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    # --- serialisation ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-compatible dict, in the layout of ``config.json``.

        Raises:
            ConfigurationError: a value cannot be written as JSON.
        """
        output: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            if key in ("architectures", "auto_map") and value is None:
                # transformers tests `"AutoConfig" in config["auto_map"]` whenever the key exists.
                continue
            output[key] = _json_value(value, key)
        output["_name_or_path"] = self._name_or_path
        output["model_type"] = getattr(self, "model_type", "")
        output["hubguard_version"] = __version__
        if self._hubguard_code_revisions:
            output["hubguard"] = {"code_revisions": dict(sorted(self._hubguard_code_revisions.items()))}
        return output

    def to_json_string(self) -> str:
        """Return ``to_dict()`` as JSON with sorted keys, so equal configs give equal bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Write ``to_json_string()`` to ``path`` as UTF-8."""
        Path(path).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_dict(
        cls: type[ConfigT],
        config_dict: Mapping[str, Any],
        *,
        return_unused_kwargs: bool = False,
        **overrides: Any,
    ) -> ConfigT | tuple[ConfigT, dict[str, Any]]:
        """Build a config from a ``config.json`` dict, passing ``overrides`` into ``__init__``.

        Args:
            config_dict: the parsed ``config.json``.
            return_unused_kwargs: when true, overrides that are neither ``__init__``
                parameters nor keys of ``config_dict`` are not stored. They are returned
                as the second item of a ``(config, unused)`` tuple.
            overrides: values that replace keys of ``config_dict``. They are passed to
                ``__init__``, so validation and derived values see them.

        Raises:
            ValueError: the subclass's own validation rejected a value; raised unchanged.
            ConfigurationError: the class's ``__init__`` does not accept ``**kwargs``,
                the ``hubguard`` key is malformed, or ``__init__`` raised ``TypeError``.
        """
        _check_accepts_kwargs(cls, config_dict)
        parameters = _init_parameters(cls)

        arguments = dict(config_dict)
        code_revisions = _code_revisions(arguments.pop("hubguard", None))
        unused: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in _TRANSFORMERS_LOADER_KEYS:
                logger.debug("ignoring transformers loader argument %s", key)
                continue
            known = key in parameters or key in config_dict or key in _BASE_KEYS
            if return_unused_kwargs and not known:
                unused[key] = value
            else:
                arguments[key] = value

        config = _construct(cls, arguments)
        config._hubguard_code_revisions = code_revisions
        if return_unused_kwargs:
            return config, unused
        return config

    # --- folders and sources ------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike[str]) -> list[str]:
        """Write ``config.json`` to ``folder``, with the code of classes registered for Auto classes.

        When the config class was registered with :meth:`register_for_auto_class`, the file
        that defines it and every file it imports relatively are copied next to
        ``config.json`` and ``auto_map`` names them, so the folder is a remote-code repository.

        Returns:
            The repository paths written, sorted.

        Raises:
            ConfigurationError: the class is defined in ``__main__`` or its file cannot be found.
        """
        from hubguard._code_export import export_code

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = export_code(self, [type(self)], folder)
        self.to_json_file(folder / CONFIG_NAME)
        written.append(CONFIG_NAME)
        logger.info("saved %s to %s", type(self).__name__, folder)
        return sorted(set(written))

    @classmethod
    def from_pretrained(
        cls: type[ConfigT],
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        lock: str | os.PathLike[str] | None = None,
        token: str | None = None,
        return_unused_kwargs: bool = False,
        **overrides: Any,
    ) -> ConfigT | tuple[ConfigT, dict[str, Any]]:
        """Load a config from a folder, Hub repo id or git URL at ``revision``.

        The files are read through :func:`hubguard.loader.fetch`, which pins and verifies
        them. ``overrides`` are passed to ``__init__`` together with the keys of
        ``config.json`` (see :meth:`from_dict`).

        Raises:
            ConfigurationError: ``config.json`` is missing or malformed.
            ValueError: the subclass's validation rejected a value; raised unchanged.
            FetchError: the source could not be fetched or verified.
        """
        snapshot = fetch_snapshot(source, revision=revision, lock=lock, token=token, include_weights=False)
        return cls._from_snapshot(snapshot, return_unused_kwargs=return_unused_kwargs, **overrides)

    @classmethod
    def _from_snapshot(
        cls: type[ConfigT],
        snapshot: Snapshot,
        *,
        return_unused_kwargs: bool = False,
        **overrides: Any,
    ) -> ConfigT | tuple[ConfigT, dict[str, Any]]:
        """Load the config from an already fetched snapshot (shared by the Auto and remote paths)."""
        result = cls.from_dict(snapshot.config(), return_unused_kwargs=return_unused_kwargs, **overrides)
        config = result[0] if isinstance(result, tuple) else result
        config.name_or_path = snapshot.source.display()
        # Kept so AutoModel.from_config can resolve auto_map against the same verified files.
        config._hubguard_snapshot = snapshot
        return result

    # --- Auto classes and publishing ----------------------------------------------------

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "AutoConfig") -> None:
        """Export this class's code on ``save_pretrained`` and name it in ``auto_map[auto_class]``."""
        cls._auto_class = _auto_class_name(auto_class, expected_prefix="AutoConfig")

    def push_to_hub(
        self,
        repo_id: str,
        *,
        branch: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        endpoint: str | None = None,
    ) -> str:
        """Save the config into a new commit of ``repo_id`` and return the commit id.

        The repository is created if needed; all files go into one commit.

        Raises:
            PublishError: the repository or the commit could not be created.
        """
        from hubguard._publish import push_folder

        return push_folder(
            self.save_pretrained,
            repo_id,
            branch=branch,
            commit_message=commit_message or "Upload config",
            private=private,
            token=token,
            endpoint=endpoint,
        )

    def copy(self: ConfigT) -> ConfigT:
        """Return a deep copy of the config."""
        return copy.deepcopy(self)


# --- helpers shared with modeling and auto -------------------------------------------


def fetch_snapshot(
    source: str | os.PathLike[str],
    *,
    revision: str | None,
    lock: str | os.PathLike[str] | None = None,
    token: str | None = None,
    include_weights: bool,
    policy: Any = None,
) -> Snapshot:
    """Fetch and verify ``source`` through the loader (the only way models read files).

    The policy (a ``Policy``, a name or a file; ``None`` is the default policy) decides
    through its ``[revisions]`` section whether branch and tag names may float and whether
    a local folder needs a lock file. The shipped policies require a full commit id.
    """
    from hubguard.audit.policy import Policy, load_policy
    from hubguard.loader import fetch

    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    allow_floating = policy.revisions.allow_floating
    require_lock = policy.revisions.local_requires_lock and os.path.isdir(source)
    return fetch(
        os.fspath(source),
        revision=revision,
        lock=lock,
        token=token,
        include_weights=include_weights,
        allow_floating=allow_floating,
        require_lock=require_lock,
    )


def _auto_class_name(auto_class: str | type, *, expected_prefix: str) -> str:
    name = auto_class if isinstance(auto_class, str) else auto_class.__name__
    if not name.startswith(expected_prefix):
        raise ConfigurationError(
            f"{name!r} is not a valid Auto class here",
            hint=f"pass an Auto class name starting with {expected_prefix!r}",
        )
    return name


def _construct(cls: type[ConfigT], arguments: dict[str, Any]) -> ConfigT:
    try:
        return cls(**arguments)
    except TypeError as error:
        raise ConfigurationError(
            f"{cls.__module__}.{cls.__qualname__}(...) failed with the keys of config.json: {error}",
            path=CONFIG_NAME,
            hint="check the keys of config.json against the parameters of the config class",
        ) from error


def _init_parameters(cls: type) -> set[str]:
    signature = inspect.signature(cls.__init__)
    return {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    } - {"self"}


def _check_accepts_kwargs(cls: type, config_dict: Mapping[str, Any]) -> None:
    """Raise unless ``cls.__init__`` takes ``**kwargs``, which loading needs for unknown keys."""
    signature = inspect.signature(cls.__init__)
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in signature.parameters.values()):
        return
    unexpected = sorted(set(config_dict) - _init_parameters(cls))
    detail = f" (config.json also has {', '.join(repr(key) for key in unexpected)})" if unexpected else ""
    try:
        source_file = inspect.getsourcefile(cls)
    except TypeError:
        source_file = None
    raise ConfigurationError(
        f"{cls.__qualname__}.__init__ must accept **kwargs and pass them to super().__init__{detail}",
        path=os.path.basename(source_file) if source_file else None,
        hint=f"declare {cls.__qualname__}.__init__(self, ..., **kwargs) and call super().__init__(**kwargs)",
    )


def _string_list(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{key} must be a list of class names, got {value!r}", path=CONFIG_NAME)
    return list(value)


def _auto_map(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"auto_map must be an object, got {type(value).__name__}",
            path=CONFIG_NAME,
            hint='use {"AutoConfig": "module.Class"}',
        )
    return dict(value)


def _code_revisions(value: Any) -> dict[str, str]:
    """Parse the ``hubguard`` key of config.json: ``{"code_revisions": {"org/repo": "<40 hex>"}}``."""
    if value is None:
        return {}
    revisions = value.get("code_revisions", {}) if isinstance(value, Mapping) else None
    if not isinstance(revisions, Mapping) or not all(
        isinstance(repo, str) and isinstance(commit, str) and _COMMIT_RE.fullmatch(commit)
        for repo, commit in revisions.items()
    ):
        raise ConfigurationError(
            f"hubguard.code_revisions must map repo ids to full commit ids, got {value!r}",
            path=CONFIG_NAME,
            hint='write {"hubguard": {"code_revisions": {"org/code-repo": "<full commit id>"}}}',
        )
    return dict(revisions)


def _json_value(value: Any, key: str) -> Any:
    """Convert a config value to plain JSON types (tuples to lists, dtypes to their names)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, key) for item in value]
    if isinstance(value, Mapping):
        return {str(name): _json_value(item, key) for name, item in value.items()}
    if isinstance(value, PretrainedConfig):
        return value.to_dict()
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    raise ConfigurationError(
        f"config value {key!r} of type {type(value).__name__} cannot be written to config.json",
        hint="store plain JSON values (numbers, strings, lists, dicts) in the config",
    )


__all__ = ["CONFIG_NAME", "PretrainedConfig"]
