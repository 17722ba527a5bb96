"""The loader's output: an immutable, verified set of files at one pinned revision.

Every later stage (audit, sandbox, model loading) reads bytes through a
:class:`Snapshot`, never through a path that could change after the audit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hubguard.errors import ConfigurationError
from hubguard.loader.closure import decode_source

SourceKind = Literal["hub", "local", "git"]
FileKind = Literal["code", "config", "weights", "other"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".npz", ".npy")


@dataclass(frozen=True)
class SourceRef:
    """Where a snapshot came from.

    ``location`` is a Hub repo id (``org/name``), an absolute folder path, or a git URL
    (``git+https://…``, ``git+file://…``); ``endpoint`` is the Hub endpoint for Hub sources.
    """

    kind: SourceKind
    location: str
    endpoint: str | None = None

    def display(self) -> str:
        """Return the source as users spell it in messages and reports."""
        return self.location


@dataclass(frozen=True)
class PinnedRevision:
    """A revision as requested and the immutable commit it was resolved to.

    ``commit`` is a full 40-hex git commit id, or ``sha256:<64 hex>`` (the content id)
    for a plain folder. ``floating`` is true when ``requested`` was a name (branch, tag,
    short id) that a policy allowed to float; the resolved commit is still recorded.
    """

    requested: str | None
    commit: str
    floating: bool = False


@dataclass(frozen=True)
class SnapshotFile:
    """One verified file of a snapshot: repository path, size, sha256 and git blob id if known."""

    path: str
    size: int
    sha256: str
    kind: FileKind
    git_blob: str | None = None


@dataclass(frozen=True)
class RejectedFile:
    """A repository file hubguard never loads (``.pyc``, ``.so``, ``.pth``, ``sitecustomize.py`` …)."""

    path: str
    reason: str


def classify(path: str) -> FileKind:
    """Return the kind of a repository file from its name."""
    if path.endswith(".py"):
        return "code"
    if path.endswith(".json") and "/" not in path:
        return "config"
    if path.endswith(WEIGHT_SUFFIXES):
        return "weights"
    return "other"


@dataclass(frozen=True)
class Snapshot:
    """Verified files of one source at one pinned revision.

    ``contents`` holds the bytes of code and config files; weight files live in the
    content-addressed cache at ``blob_paths[path]`` (read-only, named by sha256).
    ``code_paths`` is the code closure of every ``auto_map`` entry of this repository.
    """

    source: SourceRef
    revision: PinnedRevision
    files: Mapping[str, SnapshotFile]
    contents: Mapping[str, bytes] = field(repr=False)
    blob_paths: Mapping[str, Path] = field(default_factory=dict, repr=False)
    code_paths: tuple[str, ...] = ()
    rejected: tuple[RejectedFile, ...] = ()

    def read_bytes(self, path: str) -> bytes:
        """Return the verified bytes of ``path``."""
        if path in self.contents:
            return self.contents[path]
        if path in self.blob_paths:
            return self.blob_paths[path].read_bytes()
        raise KeyError(f"{path} is not part of the snapshot of {self.source.display()}")

    def read_text(self, path: str) -> str:
        """Return the source text of a code file, decoded exactly as CPython decodes it."""
        return decode_source(self.read_bytes(path), path)

    def has(self, path: str) -> bool:
        """Tell whether ``path`` is a verified file of the snapshot."""
        return path in self.files

    def config(self) -> dict[str, Any]:
        """Return ``config.json`` parsed.

        Raises:
            ConfigurationError: ``config.json`` is missing, not JSON, or not an object.
        """
        if "config.json" not in self.files:
            raise ConfigurationError(
                f"config.json is missing from {self.source.display()}@{self.revision.commit}",
                path="config.json",
                hint="check that the source is a model repository",
            )
        try:
            value = json.loads(self.read_bytes("config.json"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            line = getattr(error, "lineno", None)
            raise ConfigurationError(
                f"config.json is not valid JSON: {error}", path="config.json", line=line, hint="fix the JSON syntax"
            ) from error
        if not isinstance(value, dict):
            raise ConfigurationError(
                "config.json must contain a JSON object", path="config.json", hint="wrap the settings in {...}"
            )
        return value

    def weight_files(self) -> list[SnapshotFile]:
        """Return the weight files, sorted by path."""
        return [f for path, f in sorted(self.files.items()) if f.kind == "weights"]

    def code_id(self) -> str:
        """Return the sha256 over the code closure's paths and hashes.

        Two snapshots get the same id only when every byte of their code closure is equal,
        so the id is safe as a module-cache key.
        """
        digest = hashlib.sha256()
        for path in sorted(self.code_paths):
            digest.update(path.encode() + b"\0" + self.files[path].sha256.encode() + b"\n")
        return digest.hexdigest()


def auto_map_modules(config: Mapping[str, Any]) -> list[str]:
    """Return the repository paths of the same-repo modules that ``auto_map`` names.

    Entries are ``"module.Class"`` strings or lists/tuples of them (tokenizers); entries
    of the form ``"org/repo--module.Class"`` point into another repository and are skipped.
    """
    from hubguard.loader.closure import module_to_path

    auto_map = config.get("auto_map") or {}
    if not isinstance(auto_map, dict):
        raise ConfigurationError(
            "auto_map in config.json must be an object", path="config.json", hint='use {"AutoConfig": "module.Class"}'
        )
    references: list[str] = []
    for value in auto_map.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is None:
                continue
            if not isinstance(item, str) or "." not in item:
                raise ConfigurationError(
                    f"auto_map entry {item!r} is not of the form 'module.Class'",
                    path="config.json",
                    hint='write entries such as "modeling_x.XModel"',
                )
            references.append(item)
    paths = []
    for reference in references:
        if "--" in reference:
            continue
        module, _, _ = reference.rpartition(".")
        paths.append(module_to_path(module))
    return sorted(set(paths))


def build_snapshot(
    source: SourceRef,
    revision: PinnedRevision,
    contents: Mapping[str, bytes],
    *,
    blob_files: Mapping[str, tuple[Path, int, str]] | None = None,
    git_blobs: Mapping[str, str] | None = None,
    code_entries: list[str] | None = None,
    rejected: tuple[RejectedFile, ...] = (),
) -> Snapshot:
    """Build a :class:`Snapshot` from verified bytes and compute its code closure.

    Args:
        contents: repository path -> bytes, for code, config and other small files.
        blob_files: repository path -> (cache path, size, sha256) for weight files.
        git_blobs: repository path -> git blob id, where the source exposes it.
        code_entries: entry modules; ``None`` means the ``auto_map`` modules of
            ``config.json``, or every ``.py`` file when there is no ``config.json``.

    Raises:
        UnsafeRepositoryError: the closure leaves the repository or names a missing file.
        ConfigurationError: ``config.json`` or its ``auto_map`` is malformed.
    """
    from hubguard.loader.closure import code_closure

    git_blobs = git_blobs or {}
    files: dict[str, SnapshotFile] = {}
    for path, data in sorted(contents.items()):
        files[path] = SnapshotFile(
            path=path,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            kind=classify(path),
            git_blob=git_blobs.get(path),
        )
    blob_paths: dict[str, Path] = {}
    for path, (cache_path, size, sha256) in sorted((blob_files or {}).items()):
        files[path] = SnapshotFile(path=path, size=size, sha256=sha256, kind=classify(path), git_blob=git_blobs.get(path))
        blob_paths[path] = cache_path
    snapshot = Snapshot(
        source=source, revision=revision, files=files, contents=dict(contents), blob_paths=blob_paths, rejected=rejected
    )
    if code_entries is None:
        if "config.json" in files:
            code_entries = auto_map_modules(snapshot.config())
        else:
            code_entries = [path for path in files if path.endswith(".py")]
    closure = code_closure(code_entries, snapshot.read_bytes, lambda path: path in contents)
    return Snapshot(
        source=source,
        revision=revision,
        files=files,
        contents=dict(contents),
        blob_paths=blob_paths,
        code_paths=tuple(closure),
        rejected=rejected,
    )


__all__ = [
    "auto_map_modules",
    "build_snapshot",
    "FileKind",
    "PinnedRevision",
    "RejectedFile",
    "Snapshot",
    "SnapshotFile",
    "SourceKind",
    "SourceRef",
    "classify",
]
