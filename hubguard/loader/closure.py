"""Find the code closure of a remote-code module: the entry file plus every file it imports relatively.

The closure is computed from the AST, never from text matching, so imports inside
docstrings or comments are ignored and every spelling of a relative import is seen:
``from . import x``, ``from .pkg.mod import y``, multi-line imports, imports inside
functions or ``try`` blocks, and ``..`` that stays inside the repository.
The same function serves the loader (what to fetch, audit and import) and
``save_pretrained`` (what to copy), so both always agree.
"""

from __future__ import annotations

import ast
import codecs
import io
import keyword
import logging
import tokenize
from collections.abc import Callable
from dataclasses import dataclass

from hubguard.errors import UnsafeRepositoryError

logger = logging.getLogger(__name__)

SOURCE_SUFFIX = ".py"


@dataclass(frozen=True)
class RelativeImport:
    """One relative import statement and the repository files it resolves to."""

    path: str
    line: int
    statement: str
    targets: tuple[str, ...]


def decode_source(data: bytes, path: str) -> str:
    """Decode Python source exactly as CPython would, accepting UTF-8 only.

    CPython reads a BOM and a PEP 263 coding cookie on the first two lines. hubguard
    refuses every encoding but UTF-8, so the audit and the interpreter always read the
    same text.

    Raises:
        UnsafeRepositoryError: the file declares another encoding or is not valid UTF-8.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        raise UnsafeRepositoryError(
            f"invalid source encoding declaration: {error.msg}",
            rule_id="HG108",
            path=path,
            hint="save the file as UTF-8 without a coding cookie for another encoding",
        ) from error
    if codecs.lookup(encoding).name not in {"utf-8", "utf-8-sig"}:
        raise UnsafeRepositoryError(
            f"source declares encoding {encoding!r}; only UTF-8 is accepted",
            rule_id="HG108",
            path=path,
            hint="re-encode the file as UTF-8 and remove the coding cookie",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UnsafeRepositoryError(
            f"source is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})",
            rule_id="HG108",
            path=path,
            line=line,
            hint="re-encode the file as UTF-8",
        ) from error
    return text


def check_module_path(path: str) -> None:
    """Check that a repository path names an importable module inside the repository.

    Raises:
        UnsafeRepositoryError: absolute path, ``..`` component, or a component that is
            not a Python identifier.
    """
    if not path or path.startswith("/") or "\\" in path or ":" in path.split("/")[0]:
        raise UnsafeRepositoryError(
            f"module path {path!r} is absolute or not a plain relative path",
            rule_id="HG105",
            hint="auto_map and relative imports may only name files inside the repository",
        )
    parts = path.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise UnsafeRepositoryError(
            f"module path {path!r} leaves the repository or has empty components",
            rule_id="HG105",
            hint="auto_map and relative imports may only name files inside the repository",
        )
    stems = parts[:-1] + [parts[-1].removesuffix(SOURCE_SUFFIX)]
    for stem in stems:
        if not stem.isidentifier() or keyword.iskeyword(stem):
            raise UnsafeRepositoryError(
                f"{stem!r} in {path!r} is not a valid Python module name",
                rule_id="HG106",
                hint="rename the file or folder to a Python identifier (letters, digits, underscores)",
            )


def module_to_path(module: str) -> str:
    """Turn ``configuration_x`` or ``utils.posenc`` into ``utils/posenc.py``."""
    path = module.replace(".", "/") + SOURCE_SUFFIX
    check_module_path(path)
    return path


def path_to_module(path: str) -> str:
    """Turn ``utils/posenc.py`` (or ``utils/__init__.py``) into ``utils.posenc`` (or ``utils``)."""
    check_module_path(path)
    stem = path.removesuffix(SOURCE_SUFFIX)
    if stem.endswith("/__init__"):
        stem = stem[: -len("/__init__")]
    return stem.replace("/", ".")


def _package_parts(path: str) -> list[str]:
    """Return the package a file's relative imports are resolved against, as folder parts."""
    return path.split("/")[:-1]


def _module_file(folder_parts: list[str], exists: Callable[[str], bool]) -> str | None:
    """Return the file that defines the module at ``folder_parts`` (``x.py`` or ``x/__init__.py``)."""
    if not folder_parts:
        return None
    as_file = "/".join(folder_parts) + SOURCE_SUFFIX
    if exists(as_file):
        return as_file
    as_package = "/".join(folder_parts + ["__init__.py"])
    if exists(as_package):
        return as_package
    return None


def _package_inits(folder_parts: list[str], exists: Callable[[str], bool]) -> list[str]:
    """Return the ``__init__.py`` files Python runs when it imports a module inside ``folder_parts``."""
    inits = []
    for depth in range(1, len(folder_parts) + 1):
        candidate = "/".join(folder_parts[:depth] + ["__init__.py"])
        if exists(candidate):
            inits.append(candidate)
    return inits


def _resolve_import(
    node: ast.ImportFrom, path: str, exists: Callable[[str], bool]
) -> list[str]:
    """Return the repository files one relative ``from`` import needs."""
    base = _package_parts(path)
    climb = node.level - 1
    if climb > len(base):
        raise UnsafeRepositoryError(
            f"relative import {'.' * node.level}{node.module or ''} leaves the repository root",
            rule_id="HG107",
            path=path,
            line=node.lineno,
            hint="remote code may only import files inside its own repository",
        )
    package = base[: len(base) - climb] if climb else list(base)
    spelled = "." * node.level + (node.module or "")

    targets: list[str] = []
    if node.module:
        module_parts = package + node.module.split(".")
        for part in node.module.split("."):
            if not part.isidentifier():
                raise UnsafeRepositoryError(
                    f"relative import {spelled} names an invalid module", rule_id="HG106", path=path, line=node.lineno
                )
        found = _module_file(module_parts, exists)
        if found is None:
            raise UnsafeRepositoryError(
                f"relative import {spelled} does not match a file in the repository",
                rule_id="HG104",
                path=path,
                line=node.lineno,
                hint=f"add {'/'.join(module_parts)}.py to the repository or fix the import",
            )
        targets.extend(_package_inits(module_parts[:-1], exists))
        targets.append(found)
        # ``from .pkg import sub`` may name submodules of a package.
        if found.endswith("/__init__.py"):
            for alias in node.names:
                sub = _module_file(module_parts + [alias.name], exists)
                if sub is not None:
                    targets.append(sub)
        return targets

    # ``from . import a, b``: each name is a submodule or a name defined in the package.
    targets.extend(_package_inits(package, exists))
    for alias in node.names:
        if alias.name == "*":
            continue
        sub = _module_file(package + [alias.name], exists)
        if sub is not None:
            targets.append(sub)
            continue
        # At the repository root the package is the root ``__init__.py``, if the repository has one.
        package_init = "/".join(package + ["__init__.py"])
        if not exists(package_init):
            raise UnsafeRepositoryError(
                f"relative import 'from {spelled} import {alias.name}' does not match a file in the repository",
                rule_id="HG104",
                path=path,
                line=node.lineno,
                hint=f"add {'/'.join(package + [alias.name])}.py to the repository or fix the import",
            )
        targets.append(package_init)
    return targets


def relative_imports(path: str, source: str) -> list[RelativeImport]:
    """List the relative imports in one file, without resolving them against a repository.

    Raises:
        SyntaxError: the file does not parse; the caller reports it.
    """
    tree = ast.parse(source, filename=path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            names = ", ".join(alias.name for alias in node.names)
            statement = f"from {'.' * node.level}{node.module or ''} import {names}"
            found.append(RelativeImport(path=path, line=node.lineno, statement=statement, targets=()))
    return found


def code_closure(
    entries: list[str],
    read: Callable[[str], bytes],
    exists: Callable[[str], bool],
) -> list[str]:
    """Return the sorted repository paths of ``entries`` and every file they import relatively.

    Args:
        entries: repository paths of the entry modules, such as ``modeling_x.py``.
        read: returns the bytes of a repository path.
        exists: tells whether a repository path is a file of the repository.

    A file that does not parse stays in the closure without its imports being followed;
    the audit reports it, and the load is denied.

    Raises:
        UnsafeRepositoryError: an import leaves the repository, names a missing file,
            or a path is not a valid module path.
    """
    seen: set[str] = set()
    pending = list(entries)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        check_module_path(path)
        if not exists(path):
            raise UnsafeRepositoryError(
                f"module file {path} is not in the repository",
                rule_id="HG104",
                path=path,
                hint="check the module names in auto_map",
            )
        seen.add(path)
        folder = _package_parts(path)
        pending.extend(_package_inits(folder, exists))
        source = decode_source(read(path), path)
        try:
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            # The file stays in the closure; the audit reports it as a blocking parse
            # finding, so nothing that cannot be parsed is ever imported.
            logger.info("cannot follow the imports of %s: %s", path, error)
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                pending.extend(_resolve_import(node, path, exists))
    return sorted(seen)


def folder_closure(root: str, entries: list[str]) -> list[str]:
    """Return :func:`code_closure` for files in a folder on disk (used by ``save_pretrained``)."""
    import os

    real_root = os.path.realpath(root)

    def _full(path: str) -> str:
        return os.path.join(real_root, *path.split("/"))

    def exists(path: str) -> bool:
        full = _full(path)
        return os.path.isfile(full) and os.path.realpath(full).startswith(real_root + os.sep)

    def read(path: str) -> bytes:
        with open(_full(path), "rb") as handle:
            return handle.read()

    return code_closure(entries, read, exists)


__all__ = [
    "RelativeImport",
    "check_module_path",
    "code_closure",
    "decode_source",
    "folder_closure",
    "module_to_path",
    "path_to_module",
    "relative_imports",
]
