"""A content-addressed cache of verified bytes, shared by every process of one user.

Layout under the cache root (``$HUBGUARD_CACHE``, else ``~/.cache/hubguard``)::

    blobs/sha256/<first 2 hex>/<64 hex>     file bytes, named by their sha256, read-only
    snapshots/<64 hex>.json                 manifest of one verified (source, commit)
    tmp/                                    files being written

Every write goes to a fresh file under ``tmp/`` and is moved into place with
``os.replace``, which is atomic on one file system. Concurrent writers of the same blob
write identical bytes to the same name, so the last rename wins harmlessly, and a
failed or interrupted write leaves at most a stray file under ``tmp/``, never a
half-written blob or manifest. The cache is keyed by the hash of the content, so a
blob is only ever stored under the name of its own sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

CACHE_ENV = "HUBGUARD_CACHE"
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


def default_cache_root() -> Path:
    """Return ``$HUBGUARD_CACHE`` if set, else ``~/.cache/hubguard``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "hubguard"


@dataclass(frozen=True)
class StoredBlob:
    """A blob in the cache: its path, size in bytes and sha256.

    A staged blob (``staged=True``) is still a temporary file under ``tmp/``: its bytes are
    hashed but not yet checked by the caller, who either installs or discards it.
    """

    path: Path
    size: int
    sha256: str
    staged: bool = False


class ContentCache:
    """Store and look up verified bytes by sha256, and verified snapshots by (source, commit)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    # --- blobs ---------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Return where the blob with this sha256 lives (it may not exist)."""
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def find_blob(self, sha256: str, size: int) -> StoredBlob | None:
        """Return the cached blob if one of the expected size exists, without reading it."""
        path = self.blob_path(sha256)
        try:
            if path.stat().st_size == size:
                return StoredBlob(path=path, size=size, sha256=sha256)
        except FileNotFoundError:
            return None
        return None

    def put_bytes(self, data: bytes) -> StoredBlob:
        """Store ``data`` under its sha256 and return the stored blob.

        An existing blob of that name is replaced, because it may be the damaged copy
        that made the caller fetch the bytes again.
        """
        return self.install(self.stage_bytes(data))

    def put_stream(self, reader: IO[bytes]) -> StoredBlob:
        """Copy a binary stream into the cache while hashing it, and return the stored blob.

        An existing blob of that name is replaced, as in :meth:`put_bytes`.
        """
        return self.install(self.stage_stream(reader))

    def stage_stream(self, reader: IO[bytes]) -> StoredBlob:
        """Copy a binary stream to a temporary file while hashing it; install or discard the result."""
        digest = hashlib.sha256()
        size = 0
        with self._temporary_file() as (handle, temporary):
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        return StoredBlob(path=temporary, size=size, sha256=digest.hexdigest(), staged=True)

    def stage_bytes(self, data: bytes) -> StoredBlob:
        """Write ``data`` to a temporary file; install or discard the result."""
        with self._temporary_file() as (handle, temporary):
            handle.write(data)
        return StoredBlob(path=temporary, size=len(data), sha256=hashlib.sha256(data).hexdigest(), staged=True)

    def install(self, blob: StoredBlob) -> StoredBlob:
        """Move a staged blob under its sha256 name; a blob already installed is returned as is."""
        if not blob.staged:
            return blob
        return self._install(blob.path, blob.sha256, blob.size)

    def discard(self, blob: StoredBlob) -> None:
        """Remove a staged blob's temporary file; installed blobs are left alone."""
        if blob.staged:
            blob.path.unlink(missing_ok=True)

    def read_verified(self, sha256: str, size: int) -> bytes | None:
        """Return a cached blob's bytes after re-hashing them, or ``None`` if absent or damaged."""
        path = self.blob_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("cached blob %s is damaged; it will be fetched again", path)
            return None
        return data

    def verify_blob(self, sha256: str, size: int) -> StoredBlob | None:
        """Re-hash a cached blob in chunks; return it when intact, ``None`` if absent or damaged."""
        stored = self.find_blob(sha256, size)
        if stored is None:
            return None
        digest = hashlib.sha256()
        with open(stored.path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            logger.warning("cached blob %s is damaged; it will be fetched again", stored.path)
            return None
        return stored

    # --- snapshot manifests -----------------------------------------------------

    def manifest_path(self, key: tuple[str, ...]) -> Path:
        """Return where the manifest for a (source kind, location, endpoint, commit, …) key lives."""
        digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()
        return self.root / "snapshots" / f"{digest}.json"

    def read_manifest(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        """Return a stored manifest, or ``None`` when missing, unreadable or for another key."""
        path = self.manifest_path(key)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("cached manifest %s is unreadable; the snapshot will be fetched again", path)
            return None
        if not isinstance(document, dict) or document.get("key") != list(key):
            return None
        if document.get("manifest_version") != MANIFEST_VERSION:
            return None
        return document

    def write_manifest(self, key: tuple[str, ...], document: dict[str, Any]) -> Path:
        """Store a manifest for ``key`` atomically and return its path."""
        body = dict(document, key=list(key), manifest_version=MANIFEST_VERSION)
        target = self.manifest_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._temporary_file() as (handle, temporary):
            handle.write(json.dumps(body, sort_keys=True).encode("utf-8"))
            handle.flush()
            os.replace(temporary, target)
        return target

    # --- helpers ---------------------------------------------------------------

    @contextmanager
    def _temporary_file(self) -> Iterator[tuple[IO[bytes], Path]]:
        """Open a new file under ``tmp/``; it is removed on error, else the caller moves or removes it."""
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=folder, prefix="partial-")
        temporary = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                yield handle, temporary
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _install(self, temporary: Path, sha256: str, size: int) -> StoredBlob:
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temporary, 0o444)
        os.replace(temporary, target)
        logger.debug("cached blob %s (%d bytes)", sha256, size)
        return StoredBlob(path=target, size=size, sha256=sha256)


__all__ = ["CACHE_ENV", "ContentCache", "StoredBlob", "default_cache_root"]
