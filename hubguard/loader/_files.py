"""Rules for repository file names: which files are never loaded, which are unsafe, and the limits.

Every source lists its files as :class:`RepoFile` records first; these rules run on the
listing before any byte is fetched, and the size limits run again on the bytes received,
because a listing is only what the source claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hubguard.errors import UnsafeRepositoryError
from hubguard.loader.snapshot import RejectedFile

# File names CPython or the platform may load or execute on their own; hubguard never
# loads them and lists them in ``Snapshot.rejected`` for the audit to report.
_NATIVE_EXTENSION = re.compile(r"\.(so(\.\d+)*|pyd|dylib|dll)$", re.IGNORECASE)
_STARTUP_FILES = {"sitecustomize.py", "usercustomize.py"}


@dataclass(frozen=True)
class FetchLimits:
    """Limits applied to every fetched repository.

    Attributes:
        max_files: most files the repository listing may contain at the pinned commit.
        max_file_size: largest code, config or other non-weight file fetched, in bytes.
        max_weight_size: largest single weight file fetched, in bytes.
    """

    max_files: int = 10_000
    max_file_size: int = 16 * 1024 * 1024
    max_weight_size: int = 64 * 1024**3


@dataclass(frozen=True)
class RepoFile:
    """One file as a source lists it at the pinned commit.

    ``git_blob`` and ``lfs_sha256`` are the ids the source claims for the bytes, when it
    exposes them; the bytes received are checked against them.
    """

    path: str
    size: int
    git_blob: str | None = None
    lfs_sha256: str | None = None


def never_loaded_reason(path: str) -> str | None:
    """Return why a repository file is never loaded (compiled, native, ``.pth`` …), or ``None``."""
    parts = path.split("/")
    name = parts[-1]
    if "__pycache__" in parts[:-1]:
        return "compiled Python cache folder (__pycache__)"
    if name.lower().endswith((".pyc", ".pyo")):
        return "compiled Python bytecode"
    if _NATIVE_EXTENSION.search(name):
        return "native extension module"
    if name.lower().endswith(".pth"):
        return "path configuration file (.pth) that site.py may execute"
    if name in _STARTUP_FILES:
        return f"{name} runs at interpreter start-up"
    return None


def check_repository_path(path: str) -> None:
    """Check that a listed file name is a plain relative path inside the repository.

    Raises:
        UnsafeRepositoryError: absolute path, drive letter, backslash, ``.``/``..`` or
            empty components, or control characters.
    """
    unsafe = (
        not path
        or path.startswith("/")
        or "\\" in path
        or re.match(r"^[A-Za-z]:", path) is not None
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)
        or any(part in {"", ".", ".."} for part in path.split("/"))
    )
    if unsafe:
        raise UnsafeRepositoryError(
            f"file name {path!r} is absolute or leaves the repository",
            rule_id="HG105",
            path=path,
            hint="a repository may only contain plain relative file names; do not load it",
        )


def check_listing(files: list[RepoFile], limits: FetchLimits, *, source: str) -> tuple[RejectedFile, ...]:
    """Check every listed name and the file count; return the files that are never loaded.

    Raises:
        UnsafeRepositoryError: an unsafe file name, or more files than ``limits.max_files``.
    """
    if len(files) > limits.max_files:
        raise UnsafeRepositoryError(
            f"{source} lists {len(files)} files at this commit, more than the limit of {limits.max_files}",
            rule_id="HG111",
            hint="raise FetchLimits.max_files if the repository is known to be this large",
        )
    rejected = []
    for repo_file in files:
        check_repository_path(repo_file.path)
        reason = never_loaded_reason(repo_file.path)
        if reason is not None:
            rejected.append(RejectedFile(path=repo_file.path, reason=reason))
    return tuple(sorted(rejected, key=lambda item: item.path))


def check_size(path: str, size: int, *, weights: bool, limits: FetchLimits) -> None:
    """Check one file's size against the limit for its kind.

    Raises:
        UnsafeRepositoryError: the file is larger than the limit.
    """
    limit = limits.max_weight_size if weights else limits.max_file_size
    if size > limit:
        setting = "max_weight_size" if weights else "max_file_size"
        raise UnsafeRepositoryError(
            f"file is {size} bytes, more than the limit of {limit} bytes",
            rule_id="HG110",
            path=path,
            hint=f"raise FetchLimits.{setting} if this file is expected to be this large",
        )


__all__ = ["FetchLimits", "RepoFile", "check_listing", "check_repository_path", "check_size", "never_loaded_reason"]
