"""Fetch remote code and weights at a pinned revision and prove the bytes are the pinned ones.

Public entry points:

* :func:`fetch` turns a source (Hub repo id, local folder, ``git+https://`` or
  ``git+file://`` URL) and a revision into a verified, immutable :class:`Snapshot`;
* :func:`resolve_class_reference` finds the snapshot that contains the code of an
  ``auto_map`` entry, fetching a second repository (``org/other--module.Class``) or the
  same repository at another commit (``code_revision``);
* :func:`lock` records every file's path, size and sha256 in a :class:`LockFile`.

Cross-repository references (``org/other--module.Class``) are fetched from the same kind
of source as the snapshot that names them:

* Hub: repo ``org/other`` at the same endpoint;
* git URL: the URL with its last two path components replaced by ``org/other``
  (a ``.git`` suffix is kept), so ``git+file:///srv/acme/tiny-weights.git`` maps
  ``acme/tiny-code`` to ``git+file:///srv/acme/tiny-code.git``;
* local folder: the folder ``org/other`` two levels up (``/x/acme/tiny-weights`` ->
  ``/x/acme/tiny-code``) when it exists, else the Hub repo ``org/other``.

``code_sources={"org/other": "<source>"}`` overrides the mapping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubguard.errors import ConfigurationError, IntegrityError, UnpinnedRevisionError
from hubguard.loader._files import FetchLimits
from hubguard.loader._pipeline import FetchRequest, fetch_snapshot, parse_source
from hubguard.loader.cache import ContentCache
from hubguard.loader.closure import module_to_path
from hubguard.loader.integrity import LockEntry, LockFile, lock_entry_from_files
from hubguard.loader.revisions import is_content_id, is_full_commit
from hubguard.loader.snapshot import PinnedRevision, Snapshot, SourceRef, auto_map_modules

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassReference:
    """Where the code of one ``auto_map`` entry lives.

    ``snapshot`` contains the code (the referencing snapshot itself, the same repository at
    ``code_revision``, or a second repository); ``module_path`` is the module's repository
    path (``modeling_x.py``) and ``class_name`` the class to take from it.
    """

    snapshot: Snapshot
    module_path: str
    class_name: str


def fetch(
    source: str,
    *,
    revision: str | None = None,
    lock: str | Path | LockFile | None = None,
    allow_floating: bool = False,
    require_lock: bool = False,
    token: str | None = None,
    include_weights: bool = True,
    limits: FetchLimits | None = None,
    cache: ContentCache | None = None,
) -> Snapshot:
    """Fetch ``source`` at a pinned revision and return its verified files.

    Args:
        source: a Hub repo id (``org/name``), a local folder, or a ``git+https://`` /
            ``git+file://`` URL.
        revision: a full 40-hex commit id. Names (branch, tag, short id) and ``None`` are
            refused unless ``allow_floating``; local folders load without one, and a
            plain folder also accepts its content id ``sha256:…``.
        lock: a lock file (path or :class:`LockFile`) whose first entry pins this source;
            every fetched byte is checked against it, and it supplies the revision.
        allow_floating: resolve a name once and record the commit it resolved to.
        require_lock: refuse to fetch without ``lock``.
        token: Hub token for private repositories.
        include_weights: also fetch weight files into the content cache.
        limits: file count and size limits; see :class:`FetchLimits` for the defaults.
        cache: the content cache; defaults to ``$HUBGUARD_CACHE`` or ``~/.cache/hubguard``.

    Raises:
        UnpinnedRevisionError: the revision is not pinned, or a lock is required but missing.
        RepositoryNotFoundError: the repository, folder or URL does not exist.
        RevisionNotFoundError: the pinned commit does not exist in the source.
        IntegrityError: bytes or the reported commit differ from the pin or the lock.
        UnsafeRepositoryError: unsafe names, symlinks, sizes, counts or source encodings.
        FetchError: the source could not be reached.

    Example:
        >>> snapshot = fetch("acme/tiny", revision="3f2a…")  # doctest: +SKIP
        >>> snapshot.revision.commit, snapshot.code_paths  # doctest: +SKIP
        ('3f2a…', ('configuration_tiny.py', 'modeling_tiny.py'))
    """
    source_ref = parse_source(source)
    lock_file = _read_lock(lock)
    if require_lock and lock_file is None:
        raise UnpinnedRevisionError(
            f"a lock file is required to fetch {source_ref.display()}, and none was given",
            requested=revision,
            resolved=None,
            rule_id="HG113",
            hint=f"run `hubguard lock {source} --output hubguard.lock`, review it, then pass lock=\"hubguard.lock\" "
            "(CLI: --lock hubguard.lock)",
        )
    lock_entry = None
    if lock_file is not None:
        lock_entry = lock_file.entry_for(source_ref.location) or lock_file.main
        if lock_entry.source != source_ref.location:
            raise IntegrityError(
                f"the lock file pins {lock_entry.source}, not {source_ref.location}",
                rule_id="HG113",
                hint=f"create a lock for this source with `hubguard lock {source}`",
            )
    request = FetchRequest(
        requested=revision,
        lock_entry=lock_entry,
        allow_floating=allow_floating,
        include_weights=include_weights,
        limits=limits or FetchLimits(),
        cache=cache or ContentCache(),
        token=token,
    )
    return fetch_snapshot(source_ref, request)


def resolve_class_reference(
    snapshot: Snapshot,
    reference: str,
    *,
    code_revision: str | None = None,
    allow_floating: bool = False,
    lock: str | Path | LockFile | None = None,
    code_sources: Mapping[str, str] | None = None,
    token: str | None = None,
    limits: FetchLimits | None = None,
    cache: ContentCache | None = None,
) -> ClassReference:
    """Return the snapshot, module path and class name for an ``auto_map`` reference.

    ``"module.Class"`` is taken from ``snapshot`` itself, or, when ``code_revision``
    names another commit, from the same source at that commit: config values then
    come from ``snapshot`` and all code from ``code_revision``. ``"org/other--module.Class"``
    is fetched from repository ``org/other`` at ``code_revision`` or at the commit the
    lock file pins for it; see the module docstring for where ``org/other`` is looked up.

    The code snapshot holds the closure of every ``auto_map`` module that points into the
    same repository, so the config and model classes always come from one snapshot.

    Raises:
        UnpinnedRevisionError: a second repository has no pin and floating is not allowed.
        ConfigurationError: the reference is malformed.
        FetchError: as for :func:`fetch`.
    """
    repo_id, module, class_name = _split_reference(reference)
    module_path = module_to_path(module)
    lock_file = _read_lock(lock)
    request_args = {
        "allow_floating": allow_floating,
        "include_weights": False,
        "limits": limits or FetchLimits(),
        "cache": cache or ContentCache(),
        "token": token,
    }

    if repo_id is None:
        if code_revision is None or code_revision == snapshot.revision.commit:
            return ClassReference(snapshot=snapshot, module_path=module_path, class_name=class_name)
        entries = tuple(auto_map_modules(snapshot.config())) or (module_path,)
        lock_entry = None
        if lock_file is not None:
            lock_entry = _lock_entry_for(lock_file, snapshot.source.location, code_revision)
        request = FetchRequest(requested=code_revision, lock_entry=lock_entry, code_entries=entries, **request_args)
        code_snapshot = fetch_snapshot(snapshot.source, request)
        return ClassReference(snapshot=code_snapshot, module_path=module_path, class_name=class_name)

    code_source = code_source_for(snapshot.source, repo_id, code_sources=code_sources)
    lock_entry = lock_file.entry_for(code_source.location) if lock_file is not None else None
    revision = code_revision
    if revision is None and lock_entry is not None:
        revision = lock_entry.commit
    if revision is None and not allow_floating:
        raise _unpinned_code_error(code_source, reference, token=token)
    entries = tuple(_modules_in_repository(snapshot, repo_id)) or (module_path,)
    request = FetchRequest(requested=revision, lock_entry=lock_entry, code_entries=entries, **request_args)
    code_snapshot = fetch_snapshot(code_source, request)
    return ClassReference(snapshot=code_snapshot, module_path=module_path, class_name=class_name)


def lock(
    source: str,
    *,
    revision: str | None = None,
    code_revision: str | None = None,
    allow_floating: bool = False,
    code_sources: Mapping[str, str] | None = None,
    token: str | None = None,
    cache: ContentCache | None = None,
) -> LockFile:
    """Fetch ``source`` and return a lock of every file it loads, plus its code repositories.

    Cross-repository ``auto_map`` references get their own entry, fetched at
    ``code_revision``; without one they raise :class:`UnpinnedRevisionError`.

    Example:
        >>> lock("acme/tiny", revision="3f2a…").write("hubguard.lock")  # doctest: +SKIP
    """
    snapshot = fetch(source, revision=revision, allow_floating=allow_floating, token=token, cache=cache)
    entries = [_entry_of(snapshot)]
    seen = {(snapshot.source.location, snapshot.revision.commit)}
    for reference in _references(snapshot):
        resolved = resolve_class_reference(
            snapshot,
            reference,
            code_revision=code_revision,
            allow_floating=allow_floating,
            code_sources=code_sources,
            token=token,
            cache=cache,
        )
        identity = (resolved.snapshot.source.location, resolved.snapshot.revision.commit)
        if identity not in seen:
            seen.add(identity)
            entries.append(_entry_of(resolved.snapshot))
    return LockFile(entries=tuple(entries))


def code_source_for(source: SourceRef, repo_id: str, *, code_sources: Mapping[str, str] | None = None) -> SourceRef:
    """Return where repository ``repo_id`` is fetched from, for references made by ``source``."""
    if code_sources and repo_id in code_sources:
        return parse_source(code_sources[repo_id])
    if source.kind == "hub":
        return SourceRef(kind="hub", location=repo_id, endpoint=source.endpoint)
    if source.kind == "git":
        base, _, last = source.location.rstrip("/").rpartition("/")
        parent = base.rpartition("/")[0]
        suffix = ".git" if last.endswith(".git") else ""
        return SourceRef(kind="git", location=f"{parent}/{repo_id}{suffix}")
    sibling = Path(source.location).parent.parent / repo_id
    if sibling.is_dir():
        return SourceRef(kind="local", location=str(sibling))
    return parse_source(repo_id)


def _unpinned_code_error(code_source: SourceRef, reference: str, *, token: str | None) -> UnpinnedRevisionError:
    """Build the error for a code repository without a pin, naming the commit its default branch has now."""
    from hubguard.errors import FetchError
    from hubguard.loader._pipeline import open_backend

    resolved = None
    try:
        with open_backend(code_source, requested=None, token=token) as backend:
            resolved = backend.pin(None, allow_floating=True).commit or None
    except FetchError as error:
        logger.debug("could not resolve the default branch of %s: %s", code_source.display(), error)
    where = f"code repository {code_source.display()} (auto_map entry {reference!r})"
    if resolved is None:
        message = f"{where} has no pinned commit."
        commit = "<commit>"
    else:
        message = f"{where} has no pinned commit; its default branch is at {resolved} now."
        commit = resolved
    return UnpinnedRevisionError(
        f'{message} Pass code_revision="{commit}" (CLI: --code-revision {commit}).',
        requested=None,
        resolved=resolved,
        rule_id="HG101",
        hint=f'pin the code with code_revision="{commit}", or with a lock file that has an entry for '
        f"{code_source.display()} (hubguard lock SOURCE --code-revision {commit})",
    )


def _split_reference(reference: str) -> tuple[str | None, str, str]:
    repo_id = None
    target = reference
    if "--" in reference:
        repo_id, _, target = reference.partition("--")
        if parse_source(repo_id).kind != "hub" or repo_id.count("/") != 1:
            raise ConfigurationError(
                f"auto_map reference {reference!r} names {repo_id!r}, which is not a repo id (org/name)",
                path="config.json",
                hint='write cross-repository references as "org/name--module.Class"',
            )
    module, _, class_name = target.rpartition(".")
    if not module or not class_name.isidentifier():
        raise ConfigurationError(
            f"auto_map reference {reference!r} is not of the form 'module.Class'",
            path="config.json",
            hint='write entries such as "modeling_x.XModel" or "org/name--modeling_x.XModel"',
        )
    return repo_id, module, class_name


def _references(snapshot: Snapshot) -> list[str]:
    if "config.json" not in snapshot.files:
        return []
    auto_map = snapshot.config().get("auto_map") or {}
    references = []
    for value in auto_map.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str):
                references.append(item)
    return sorted(set(references))


def _modules_in_repository(snapshot: Snapshot, repo_id: str) -> list[str]:
    paths = set()
    for reference in _references(snapshot):
        other, module, _ = _split_reference(reference)
        if other == repo_id:
            paths.add(module_to_path(module))
    return sorted(paths)


def _lock_entry_for(lock_file: LockFile, location: str, commit: str) -> LockEntry | None:
    for entry in lock_file.entries:
        if entry.source == location and entry.commit == commit.lower():
            return entry
    return None


def _entry_of(snapshot: Snapshot) -> LockEntry:
    return lock_entry_from_files(
        source=snapshot.source.location,
        kind=snapshot.source.kind,
        commit=snapshot.revision.commit,
        files=[(f.path, f.size, f.sha256) for f in snapshot.files.values()],
    )


def _read_lock(lock: str | Path | LockFile | None) -> LockFile | None:
    if lock is None or isinstance(lock, LockFile):
        return lock
    return LockFile.read(os.fspath(lock))


__all__ = [
    "ClassReference",
    "ContentCache",
    "FetchLimits",
    "LockFile",
    "PinnedRevision",
    "Snapshot",
    "code_source_for",
    "fetch",
    "is_content_id",
    "is_full_commit",
    "lock",
    "resolve_class_reference",
]
