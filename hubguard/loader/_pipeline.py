"""The fetch pipeline shared by every source: resolve, list, fetch code, fetch weights, verify.

Steps, each tagged below:

1. resolve: pin the revision once (names only when floating is allowed);
2. list: list the files at that commit (or take the verified listing from the cache) and
   check every name and the file count;
3. code: fetch top-level ``*.json`` files (other than ``config.json``, those over the
   size limit are left out), then the ``auto_map`` modules and their relative-import
   closure, checking sizes, git blob ids and LFS hashes;
4. weights: stream weight files into the content cache, checking the same ids;
5. verify and build: check the lock file, compute a plain folder's content id, then
   store the verified bytes and manifest in the cache and build the :class:`Snapshot`.

Nothing is written to the cache before step 4. Weight files are staged under the
cache's ``tmp/`` folder and moved under their sha256 name only after their own checks
pass; code, config and the manifest are stored in step 5, after every check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubguard.errors import FetchError, IntegrityError, RepositoryNotFoundError
from hubguard.loader._backend import Backend, CommitMismatchError
from hubguard.loader._files import FetchLimits, RepoFile, check_listing, check_size
from hubguard.loader._local import LocalFolderBackend, content_id, git_toplevel
from hubguard.loader.cache import ContentCache, StoredBlob
from hubguard.loader.closure import code_closure
from hubguard.loader.integrity import LockEntry, check_against_lock, check_git_blob, check_sha256
from hubguard.loader.revisions import is_content_id, is_full_commit
from hubguard.loader.snapshot import (
    PinnedRevision,
    Snapshot,
    SourceRef,
    auto_map_modules,
    build_snapshot,
    classify,
)

logger = logging.getLogger(__name__)

_GIT_SCHEMES = ("git+https://", "git+file://")
_REPO_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_source(source: str) -> SourceRef:
    """Classify a source string as a git URL, a local folder or a Hub repo id.

    A relative string that is both a valid repo id and an existing folder is ambiguous
    and refused; write ``./org/name`` for the folder.

    Raises:
        FetchError: unsupported URL scheme, ambiguous or malformed source.
    """
    if source.startswith(_GIT_SCHEMES):
        return SourceRef(kind="git", location=source)
    if "://" in source or source.startswith("git+"):
        raise FetchError(
            f"source {source!r} uses an unsupported scheme",
            rule_id="HG100",
            hint="use a Hub repo id (org/name), a local folder, git+https://… or git+file://…",
        )
    looks_like_repo_id = _REPO_ID.fullmatch(source) is not None and ".." not in source
    explicit_path = source.startswith(("/", "./", "../", "~")) or source in {".", ".."}
    if explicit_path or not looks_like_repo_id:
        return SourceRef(kind="local", location=os.path.realpath(os.path.expanduser(source)))
    if os.path.isdir(source):
        raise FetchError(
            f"source {source!r} is both a Hub repo id and a folder in the current directory",
            rule_id="HG100",
            hint=f"write ./{source} for the folder; rename or move the folder to fetch the Hub repo",
        )
    return SourceRef(kind="hub", location=source, endpoint=hub_endpoint())


def hub_endpoint() -> str:
    """Return the Hub endpoint: ``$HF_ENDPOINT`` read now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def open_backend(source: SourceRef, *, requested: str | None, token: str | None) -> Backend:
    """Return the backend for a source; a git checkout given with a revision reads its object database."""
    if source.kind == "hub":
        from hubguard.loader._hub import HubBackend

        return HubBackend(source, token=token)
    if source.kind == "git":
        from hubguard.loader._git import GitBackend

        return GitBackend(source)
    folder = Path(source.location)
    if requested is not None and not is_content_id(requested) and folder.is_dir() and git_toplevel(folder):
        from hubguard.loader._git import GitBackend

        return GitBackend(source, local_repository=folder)
    return LocalFolderBackend(source)


@dataclass(frozen=True)
class FetchRequest:
    """Everything one fetch needs besides the source."""

    requested: str | None
    lock_entry: LockEntry | None
    allow_floating: bool
    include_weights: bool
    limits: FetchLimits
    cache: ContentCache
    token: str | None
    # Entry modules of a code-only snapshot; ``None`` fetches config, code and weights.
    code_entries: tuple[str, ...] | None = None


def fetch_snapshot(source: SourceRef, request: FetchRequest) -> Snapshot:
    """Run the five fetch steps for one source; see the module docstring."""
    requested = request.requested
    lock_entry = request.lock_entry
    if lock_entry is not None:
        requested = _requested_with_lock(source, requested, lock_entry)

    with open_backend(source, requested=requested, token=request.token) as backend:
        backend.lock_verifies = lock_entry is not None

        # (1) resolve
        pinned = backend.pin(requested, allow_floating=request.allow_floating)
        if lock_entry is not None and not backend.content_addressed and pinned.commit != lock_entry.commit:
            raise IntegrityError(
                f"{source.display()} resolved to commit {pinned.commit}, but the lock file pins {lock_entry.commit}",
                rule_id="HG102",
                hint="pass the locked commit as the revision, or recreate the lock",
            )
        logger.info("fetching %s at %s", source.display(), pinned.commit or "(plain folder)")

        # (2) list
        key = (source.kind, source.location, source.endpoint or "", pinned.commit)
        manifest = request.cache.read_manifest(key) if backend.cacheable else None
        if manifest is not None:
            listing, known = _listing_from_manifest(manifest)
            logger.debug("using the verified listing of %s@%s from the cache", source.display(), pinned.commit)
        else:
            listing, known = _list_with_lock_fallback(backend, pinned, lock_entry), {}
        rejected = check_listing(listing, request.limits, source=source.display())
        rejected_paths = {item.path for item in rejected}
        available = {f.path: f for f in listing if f.path not in rejected_paths}

        # (3) code
        reader = _VerifyingReader(backend, pinned, available, known, request)
        if request.code_entries is None:
            for path in sorted(available):
                if "/" not in path and path.endswith(".json"):
                    if path != "config.json" and available[path].size > request.limits.max_file_size:
                        # Optional files such as a large tokenizer.json are left out rather than
                        # failing the fetch; config.json and code files must fit the limit.
                        logger.info("not fetching %s (%d bytes, over max_file_size)", path, available[path].size)
                        continue
                    reader.read(path)
            if "config.json" in reader.contents:
                entries = auto_map_modules(_parse_config(source, reader.contents, pinned))
            else:
                entries = [path for path in available if path.endswith(".py")]
        else:
            entries = list(request.code_entries)
        closure = code_closure(entries, reader.read, available.__contains__)

        # (4) weights
        blob_files: dict[str, tuple[Path, int, str]] = {}
        if request.code_entries is None and request.include_weights:
            for path, repo_file in sorted(available.items()):
                if classify(path) == "weights":
                    blob_files[path] = reader.store_weights(repo_file)

        # (5) verify and build
        received = {path: (len(data), _sha256(reader, path)) for path, data in reader.contents.items()}
        received.update({path: (size, sha256) for path, (_, size, sha256) in blob_files.items()})
        if lock_entry is not None:
            check_against_lock(lock_entry, received, complete=False)
            _check_lock_complete(lock_entry, received, request)
        if backend.content_addressed:
            pinned = _pin_content_id(backend, pinned, available, received, lock_entry, source)
        contents = dict(reader.contents)
        if backend.cacheable:
            fresh = {path: data for path, data in contents.items() if path not in reader.from_cache}
            _store(request.cache, key, listing, received, fresh, known)
        snapshot = build_snapshot(
            source,
            pinned,
            contents,
            blob_files=blob_files,
            git_blobs={path: f.git_blob for path, f in available.items() if f.git_blob},
            code_entries=entries,
            rejected=rejected,
        )
        logger.info(
            "verified %d files of %s at %s (code closure: %s)",
            len(snapshot.files),
            source.display(),
            pinned.commit,
            ", ".join(closure) or "none",
        )
        return snapshot


def _requested_with_lock(source: SourceRef, requested: str | None, lock_entry: LockEntry) -> str:
    if requested is None:
        return lock_entry.commit
    if (is_full_commit(requested) or is_content_id(requested)) and requested.lower() != lock_entry.commit:
        raise IntegrityError(
            f"revision {requested} of {source.display()} differs from the commit the lock file pins, "
            f"{lock_entry.commit}",
            rule_id="HG102",
            hint="pass the locked commit, or recreate the lock for the new commit",
        )
    return requested


def _list_with_lock_fallback(backend: Backend, pinned: PinnedRevision, lock_entry: LockEntry | None) -> list[RepoFile]:
    """List the files; when the source misreports its commit, a lock file supplies the listing."""
    try:
        return backend.list_files(pinned)
    except CommitMismatchError as error:
        if lock_entry is None:
            raise
        logger.warning(
            "%s; every byte is checked against the lock file instead", error.message.rstrip(".")
        )
        return [RepoFile(path=f.path, size=f.size) for f in lock_entry.files]


class _VerifyingReader:
    """Fetch small files once, checking sizes and the ids the listing gives, and keep their bytes."""

    def __init__(
        self,
        backend: Backend,
        pinned: PinnedRevision,
        available: dict[str, RepoFile],
        known: dict[str, str],
        request: FetchRequest,
    ) -> None:
        self.backend = backend
        self.pinned = pinned
        self.available = available
        self.known = known
        self.request = request
        self.contents: dict[str, bytes] = {}
        self.hashes: dict[str, str] = {}
        # Paths whose bytes came from the content cache, so need not be stored again.
        self.from_cache: set[str] = set()

    def read(self, path: str) -> bytes:
        if path in self.contents:
            return self.contents[path]
        repo_file = self.available[path]
        limits = self.request.limits
        check_size(path, repo_file.size, weights=False, limits=limits)
        data = None
        if path in self.known:
            data = self.request.cache.read_verified(self.known[path], repo_file.size)
            if data is not None:
                self.from_cache.add(path)
        if data is None:
            data = self.backend.read_small(repo_file, self.pinned, limits)
        check_size(path, len(data), weights=False, limits=limits)
        self._check_lock(path, len(data), _sha256_bytes(data))
        _check_ids(repo_file, data, source=self.backend.source.display())
        self.contents[path] = data
        logger.debug("verified %s (%d bytes)", path, len(data))
        return data

    def _check_lock(self, path: str, size: int, sha256: str) -> None:
        """Check one file against the lock first, so a lock mismatch is reported as such."""
        if self.request.lock_entry is not None:
            check_against_lock(self.request.lock_entry, {path: (size, sha256)}, complete=False)

    def store_weights(self, repo_file: RepoFile) -> tuple[Path, int, str]:
        limits = self.request.limits
        check_size(repo_file.path, repo_file.size, weights=True, limits=limits)
        stored = None
        if repo_file.path in self.known:
            stored = self.request.cache.verify_blob(self.known[repo_file.path], repo_file.size)
            git_blob = repo_file.git_blob if stored is not None else None
        if stored is None:
            stored, git_blob = self.backend.store_large(repo_file, self.pinned, self.request.cache, limits)
        try:
            self._check_weights(repo_file, stored, git_blob)
        except BaseException:
            self.request.cache.discard(stored)
            raise
        stored = self.request.cache.install(stored)
        logger.debug("verified %s (%d bytes)", repo_file.path, stored.size)
        return stored.path, stored.size, stored.sha256

    def _check_weights(self, repo_file: RepoFile, stored: StoredBlob, git_blob: str | None) -> None:
        """Check a weight file's size, lock entry, LFS sha256 and git blob id before it is installed."""
        limits = self.request.limits
        check_size(repo_file.path, stored.size, weights=True, limits=limits)
        self._check_lock(repo_file.path, stored.size, stored.sha256)
        if repo_file.lfs_sha256 is not None:
            check_sha256(repo_file.path, stored.sha256, repo_file.lfs_sha256, what="the LFS pointer of the pinned commit")
        if repo_file.git_blob is not None and git_blob is not None and git_blob != repo_file.git_blob:
            raise IntegrityError(
                f"git blob id of the received bytes is {git_blob}, but the pinned commit lists {repo_file.git_blob}",
                rule_id="HG103",
                path=repo_file.path,
                hint="the source served other bytes than the pinned commit holds; do not use this source",
            )
        if stored.size != repo_file.size and not self.backend.content_addressed:
            raise IntegrityError(
                f"received {stored.size} bytes, but the source listed {repo_file.size}",
                rule_id="HG103",
                path=repo_file.path,
                hint="the download was cut short or altered; fetch again",
            )


def _check_ids(repo_file: RepoFile, data: bytes, *, source: str) -> None:
    if repo_file.git_blob is not None:
        check_git_blob(repo_file.path, data, repo_file.git_blob, source=source)
    if repo_file.lfs_sha256 is not None:
        check_sha256(repo_file.path, _sha256_bytes(data), repo_file.lfs_sha256, what="the LFS pointer of the pinned commit")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256(reader: _VerifyingReader, path: str) -> str:
    if path not in reader.hashes:
        reader.hashes[path] = _sha256_bytes(reader.contents[path])
    return reader.hashes[path]


def _parse_config(source: SourceRef, contents: dict[str, bytes], pinned: PinnedRevision) -> dict[str, Any]:
    placeholder = build_snapshot(source, pinned, {"config.json": contents["config.json"]}, code_entries=[])
    return placeholder.config()


def _check_lock_complete(lock_entry: LockEntry, received: dict[str, tuple[int, str]], request: FetchRequest) -> None:
    """Check that every locked file this kind of fetch loads was received."""
    wanted: Callable[[str], bool]
    if request.code_entries is not None:
        wanted = lambda path: path.endswith(".py")  # noqa: E731  # one-line predicate
    elif request.include_weights:
        wanted = lambda path: True  # noqa: E731  # one-line predicate
    else:
        wanted = lambda path: classify(path) != "weights"  # noqa: E731  # one-line predicate
    missing = sorted(f.path for f in lock_entry.files if wanted(f.path) and f.path not in received)
    if missing:
        raise IntegrityError(
            f"files listed in the lock file were not received from {lock_entry.source}: {', '.join(missing)}",
            rule_id="HG103",
            path=missing[0],
            hint="the source no longer serves the locked files at this commit, or the lock belongs to another fetch",
        )


def _pin_content_id(
    backend: Backend,
    pinned: PinnedRevision,
    available: dict[str, RepoFile],
    received: dict[str, tuple[int, str]],
    lock_entry: LockEntry | None,
    source: SourceRef,
) -> PinnedRevision:
    hashes = {path: received[path][1] if path in received else backend.hash_unfetched(f) for path, f in available.items()}
    identity = content_id(hashes)
    expected = lock_entry.commit if lock_entry is not None else pinned.requested
    if expected is not None and expected != identity:
        what = "the lock file pins" if lock_entry is not None else "the requested revision is"
        raise IntegrityError(
            f"content id of folder {source.display()} is {identity}, but {what} {expected}",
            rule_id="HG102",
            hint="a file of the folder changed, was added or removed since it was pinned",
        )
    return PinnedRevision(requested=pinned.requested, commit=identity)


def _listing_from_manifest(manifest: dict[str, Any]) -> tuple[list[RepoFile], dict[str, str]]:
    listing = []
    known = {}
    for item in manifest["files"]:
        listing.append(
            RepoFile(path=item["path"], size=item["size"], git_blob=item.get("git_blob"), lfs_sha256=item.get("lfs_sha256"))
        )
        if item.get("sha256"):
            known[item["path"]] = item["sha256"]
    return listing, known


def _store(
    cache: ContentCache,
    key: tuple[str, ...],
    listing: list[RepoFile],
    received: dict[str, tuple[int, str]],
    contents: dict[str, bytes],
    known: dict[str, str],
) -> None:
    for data in contents.values():
        cache.put_bytes(data)
    hashes = dict(known)
    hashes.update({path: sha256 for path, (_, sha256) in received.items()})
    files = [
        {
            "path": f.path,
            "size": f.size,
            "git_blob": f.git_blob,
            "lfs_sha256": f.lfs_sha256,
            "sha256": hashes.get(f.path),
        }
        for f in listing
    ]
    cache.write_manifest(key, {"files": files})


def missing_source_error(source: SourceRef, detail: str) -> RepositoryNotFoundError:
    """Build the error for a source that does not exist."""
    return RepositoryNotFoundError(
        f"{source.display()} was not found: {detail}",
        rule_id="HG100",
        hint="check the repo id, folder or URL, and the token for private repositories",
    )


__all__ = ["FetchRequest", "fetch_snapshot", "hub_endpoint", "missing_source_error", "open_backend", "parse_source"]
