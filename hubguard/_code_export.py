"""Copy the code of classes registered with ``register_for_auto_class`` into a saved folder.

``save_pretrained`` calls :func:`export_code` so the folder becomes a remote-code
repository: each registered class's defining file and every file it imports relatively
(found from the AST by :func:`hubguard.loader.closure.code_closure`, the same function
the loader uses) are copied byte for byte, and ``config.auto_map[auto_class]`` names the
class as ``"module.Class"``. Unrelated files next to the code are not copied.

A class that hubguard's sandbox imported carries ``__hubguard_snapshot__`` (the
:class:`~hubguard.loader.snapshot.Snapshot` it came from) and ``__hubguard_module_path__``
(its module's repository path); its files are copied from the verified snapshot bytes,
never from disk. When such a class came from another repository and ``auto_map`` already
names it as ``"org/repo--module.Class"``, the reference is kept as it is and no code is
copied. The pinned commit of ``org/repo`` is then saved in ``config.json`` under
``hubguard.code_revisions``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hubguard.errors import ConfigurationError, UnsafeRepositoryError
from hubguard.loader.closure import code_closure, folder_closure, path_to_module

if TYPE_CHECKING:
    from hubguard.configuration import PretrainedConfig

logger = logging.getLogger(__name__)


def export_code(config: PretrainedConfig, classes: list[type], folder: Path) -> list[str]:
    """Copy the code of each registered class in ``classes`` into ``folder`` and update ``config.auto_map``.

    Classes without an Auto class registration are skipped.

    Returns:
        The repository paths of the copied files.

    Raises:
        ConfigurationError: a class is defined in ``__main__``, inside a function, or in
            a file that cannot be found, or its relative imports leave its folder.
    """
    written: list[str] = []
    for cls in classes:
        auto_class = getattr(cls, "_auto_class", None)
        if auto_class is None:
            continue
        if _keeps_cross_repo_reference(config, cls, auto_class):
            logger.debug("keeping the cross-repository reference of %s in auto_map", cls.__name__)
            continue
        module_path, files = _class_code(cls)
        for path, data in files.items():
            target = folder.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(path)
        config.auto_map = {**(config.auto_map or {}), auto_class: f"{path_to_module(module_path)}.{cls.__name__}"}
        logger.debug("exported %s with %d file(s) for %s", cls.__name__, len(files), auto_class)
    return written


def _keeps_cross_repo_reference(config: PretrainedConfig, cls: type, auto_class: str) -> bool:
    """Tell whether ``auto_map`` already names ``cls`` in the repository its code was loaded from."""
    existing = (config.auto_map or {}).get(auto_class)
    snapshot = vars(cls).get("__hubguard_snapshot__")
    if not isinstance(existing, str) or "--" not in existing or snapshot is None:
        return False
    repo, _, reference = existing.partition("--")
    return repo == snapshot.source.location and reference.rpartition(".")[2] == cls.__name__


def _class_code(cls: type) -> tuple[str, dict[str, bytes]]:
    """Return the repository path of ``cls``'s module and the bytes of its code closure."""
    snapshot = vars(cls).get("__hubguard_snapshot__")
    if snapshot is not None:
        module_path = cls.__hubguard_module_path__  # type: ignore[attr-defined]  # set by the sandbox
        paths = code_closure([module_path], snapshot.read_bytes, snapshot.has)
        return module_path, {path: snapshot.read_bytes(path) for path in paths}

    root, module_path = _defining_file(cls)
    try:
        paths = folder_closure(root, [module_path])
    except UnsafeRepositoryError as error:
        raise ConfigurationError(
            f"cannot export the code of {cls.__qualname__}: {error.message}",
            path=error.path,
            line=error.line,
            hint="keep the model's modules in one folder and import them with relative imports inside it",
        ) from error
    files = {}
    for path in paths:
        files[path] = Path(root).joinpath(*path.split("/")).read_bytes()
    return module_path, files


def _defining_file(cls: type) -> tuple[str, str]:
    """Return the folder of the file that defines ``cls`` and the file name inside it."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__ == "__main__":
        raise ConfigurationError(
            f"{cls.__qualname__} is defined in __main__, so its code cannot be saved with the model",
            hint=f"move {cls.__qualname__} into a module file such as modeling_x.py and import it from there",
        )
    if "<locals>" in cls.__qualname__:
        raise ConfigurationError(
            f"{name} is defined inside a function, so auto_map cannot name it",
            hint=f"define {cls.__name__} at the top level of its module",
        )
    module = sys.modules.get(cls.__module__)
    source_file = getattr(module, "__file__", None)
    if not source_file or not source_file.endswith(".py") or not os.path.isfile(source_file):
        raise ConfigurationError(
            f"cannot find the source file of {name} (module file: {source_file!r})",
            hint="define the class in a .py file on disk so save_pretrained can copy it",
        )
    return os.path.dirname(os.path.abspath(source_file)), os.path.basename(source_file)


__all__ = ["export_code"]
