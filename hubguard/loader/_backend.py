"""The interface every source (Hub, local folder, git URL) implements for the fetch pipeline.

A backend only lists and reads; the pipeline in ``_pipeline.py`` decides which files are
needed and checks every byte against the ids the backend reported, the lock and the limits.
"""

from __future__ import annotations

import hashlib
from typing import IO

from hubguard.errors import IntegrityError
from hubguard.loader._files import FetchLimits, RepoFile
from hubguard.loader.cache import ContentCache, StoredBlob
from hubguard.loader.snapshot import PinnedRevision, SourceRef

_CHUNK = 1 << 20


class Backend:
    """Base class of the source backends; a backend is used for one fetch, then closed.

    Attributes:
        source: where the files come from.
        content_addressed: the source has no commits, so the pipeline computes the
            content id (``sha256:…``) from every listed file once they are hashed.
        cacheable: verified files may be served from the content cache next time,
            keyed by (source, commit), without contacting the source.
        lock_verifies: set by the pipeline when a lock file checks every byte; a
            backend may then accept a source that misreports its commit.
    """

    content_addressed = False
    cacheable = False

    def __init__(self, source: SourceRef) -> None:
        self.source = source
        self.lock_verifies = False

    def pin(self, requested: str | None, *, allow_floating: bool) -> PinnedRevision:
        """Pin the requested revision (see :func:`hubguard.loader.revisions.pin_revision`)."""
        raise NotImplementedError

    def list_files(self, pinned: PinnedRevision) -> list[RepoFile]:
        """List every file at the pinned commit, confirming that the commit exists."""
        raise NotImplementedError

    def read_small(self, repo_file: RepoFile, pinned: PinnedRevision, limits: FetchLimits) -> bytes:
        """Return a file's bytes; the caller checks them."""
        raise NotImplementedError

    def store_large(
        self, repo_file: RepoFile, pinned: PinnedRevision, cache: ContentCache, limits: FetchLimits
    ) -> tuple[StoredBlob, str | None]:
        """Stage a large file in the cache; return the blob and its git blob id if it was computed.

        The pipeline installs the staged blob once its checks pass, and discards it otherwise.
        """
        raise NotImplementedError

    def hash_unfetched(self, repo_file: RepoFile) -> str:
        """Return the sha256 of a file that is not fetched (content-addressed sources only)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release temporary files and connections."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CommitMismatchError(IntegrityError):
    """Raised by a backend when the source reports another commit than the pinned one.

    The pipeline accepts the source anyway only when a lock file checks every byte.
    """


class HashingReader:
    """Wrap a binary stream and hash what is read: sha1 in git's blob framing, and the size.

    Used to check a git blob id while the bytes stream into the content cache.
    """

    def __init__(self, stream: IO[bytes], *, declared_size: int, limit: int) -> None:
        self._stream = stream
        self._git = hashlib.sha1(b"blob %d\0" % declared_size, usedforsecurity=False)
        self._limit = limit
        self.size = 0

    def read(self, size: int = _CHUNK) -> bytes:
        """Read up to ``size`` bytes; raises ``OverflowError`` past the size limit."""
        chunk = self._stream.read(size)
        self.size += len(chunk)
        if self.size > self._limit:
            raise OverflowError(self.size)
        self._git.update(chunk)
        return chunk

    def git_blob_id(self) -> str:
        """Return the git blob id of the bytes read, valid when the declared size was right."""
        return self._git.hexdigest()


__all__ = ["Backend", "CommitMismatchError", "HashingReader"]
