"""Hub source: a repo id fetched through ``huggingface_hub`` from ``$HF_ENDPOINT``.

What the server reports is checked, not trusted:

* ``/api/models/<repo>/revision/<commit>`` must report the pinned commit;
* every file's ``X-Repo-Commit`` header must be the pinned commit, checked with a
  metadata request before the download, so a wrong answer never reaches the
  ``huggingface_hub`` cache folder of another commit;
* every file's bytes must hash to the git blob id (or LFS sha256) the tree listing gives.

olah 0.5.x, asked for an older commit, serves that commit's bytes but reports the head
commit in both places; such a source is refused with :class:`CommitMismatchError`, unless
a lock file checks every byte. Files are then downloaded into a temporary folder, not
into the ``huggingface_hub`` cache, whose snapshot folder would be the wrong commit's.

NOTE: the Hub exposes no tree or commit objects, so a server that reports the pinned
commit but consistently lists and serves another commit's files and blob ids cannot be
detected without a lock file.

In offline mode (``HF_HUB_OFFLINE=1``) files come from the ``huggingface_hub`` cache
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``): each cached file is checked against its blob
name there, which is the git blob id or LFS sha256 the server sent when it was downloaded.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from hubguard.errors import FetchError, RepositoryNotFoundError, RevisionNotFoundError
from hubguard.loader._backend import Backend, CommitMismatchError, HashingReader
from hubguard.loader._files import FetchLimits, RepoFile, check_size
from hubguard.loader.cache import ContentCache, StoredBlob
from hubguard.loader.revisions import pin_revision
from hubguard.loader.snapshot import PinnedRevision, SourceRef

logger = logging.getLogger(__name__)

_TRUE_VALUES = {"1", "on", "yes", "true"}
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _transport_errors() -> tuple[type[BaseException], ...]:
    try:
        import httpx2

        return (ConnectionError, TimeoutError, httpx2.TransportError)
    except ImportError:  # older huggingface_hub releases use httpx or requests
        try:
            import httpx

            return (ConnectionError, TimeoutError, httpx.TransportError)
        except ImportError:
            return (ConnectionError, TimeoutError)


def hub_offline() -> bool:
    """Tell whether ``huggingface_hub`` offline mode is on (``HF_HUB_OFFLINE``, read now)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in _TRUE_VALUES
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """Return the ``huggingface_hub`` cache folder, reading ``HF_HUB_CACHE`` and ``HF_HOME`` now."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


class HubBackend(Backend):
    """List and download one Hub repository through ``huggingface_hub``."""

    cacheable = True

    def __init__(self, source: SourceRef, *, token: str | None) -> None:
        super().__init__(source)
        from huggingface_hub import HfApi

        self.repo_id = source.location
        self.endpoint = source.endpoint
        self.token = token
        self.offline = hub_offline()
        self.cache_dir = hub_cache_dir()
        self._api = HfApi(endpoint=self.endpoint, token=token)
        self._transport_errors = _transport_errors()
        self._temporary: str | None = None

    # --- resolve ------------------------------------------------------------------------

    def pin(self, requested: str | None, *, allow_floating: bool) -> PinnedRevision:
        return pin_revision(requested, source=self.repo_id, resolve=self._resolve_name, allow_floating=allow_floating)

    def _resolve_name(self, name: str | None) -> str:
        if self.offline:
            return self._resolve_offline(name)
        info = self._call(lambda: self._api.model_info(self.repo_id, revision=name or "main"), revision=name)
        commit = str(getattr(info, "sha", "") or "")
        if _HEX40.fullmatch(commit) is None:
            raise FetchError(
                f"{self.endpoint} did not report a commit id for {self.repo_id}@{name or 'main'}",
                rule_id="HG100",
                hint="pass a full 40-character commit id",
            )
        return commit

    def _resolve_offline(self, name: str | None) -> str:
        ref = self._cache_repo() / "refs" / (name or "main")
        try:
            commit = ref.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise RevisionNotFoundError(
                f"offline mode: revision {name or 'main'!r} of {self.repo_id} is not in the huggingface_hub cache",
                rule_id="HG100",
                hint="pass a full commit id that was downloaded before, or unset HF_HUB_OFFLINE",
            ) from error
        return commit

    # --- list ---------------------------------------------------------------------------

    def list_files(self, pinned: PinnedRevision) -> list[RepoFile]:
        if self.offline:
            return self._list_offline(pinned.commit)
        info = self._call(lambda: self._api.model_info(self.repo_id, revision=pinned.commit), revision=pinned.commit)
        reported = str(getattr(info, "sha", "") or "")
        if reported != pinned.commit:
            # A server that misreports the commit may list the wrong tree as well, so its
            # listing is never used; the pipeline takes the lock file's listing instead.
            raise self._mismatch_error(pinned.commit, reported, what="the revision information")
        tree = self._call(
            lambda: list(self._api.list_repo_tree(self.repo_id, revision=pinned.commit, recursive=True)),
            revision=pinned.commit,
        )
        files = []
        for entry in tree:
            size = getattr(entry, "size", None)
            if size is None:
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            lfs_sha256 = _lfs_sha256(lfs)
            files.append(
                RepoFile(
                    path=entry.path,
                    size=int(lfs.size if lfs is not None and getattr(lfs, "size", None) else size),
                    git_blob=None if lfs_sha256 else getattr(entry, "blob_id", None),
                    lfs_sha256=lfs_sha256,
                )
            )
        return sorted(files, key=lambda item: item.path)

    def _list_offline(self, commit: str) -> list[RepoFile]:
        folder = self._cache_repo() / "snapshots" / commit
        if not folder.is_dir():
            raise RevisionNotFoundError(
                f"offline mode: commit {commit} of {self.repo_id} is not in the huggingface_hub cache at {folder}",
                rule_id="HG100",
                hint="download it once with HF_HUB_OFFLINE unset, or pass a commit that is cached",
            )
        blobs = (self._cache_repo() / "blobs").resolve()
        files = []
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            etag = path.resolve().name if path.resolve().parent == blobs else ""
            relative = path.relative_to(folder).as_posix()
            files.append(
                RepoFile(
                    path=relative,
                    size=path.stat().st_size,
                    git_blob=etag if _HEX40.fullmatch(etag) else None,
                    lfs_sha256=etag if _HEX64.fullmatch(etag) else None,
                )
            )
        logger.warning(
            "offline mode: %s@%s is read from the huggingface_hub cache; bytes are checked against the cached "
            "blob ids, but which files belong to the commit is what that cache recorded",
            self.repo_id,
            commit,
        )
        return files

    # --- download -----------------------------------------------------------------------

    def read_small(self, repo_file: RepoFile, pinned: PinnedRevision, limits: FetchLimits) -> bytes:
        local = self._download(repo_file, pinned)
        check_size(repo_file.path, local.stat().st_size, weights=False, limits=limits)
        return local.read_bytes()

    def store_large(
        self, repo_file: RepoFile, pinned: PinnedRevision, cache: ContentCache, limits: FetchLimits
    ) -> tuple[StoredBlob, str | None]:
        local = self._download(repo_file, pinned)
        size = local.stat().st_size
        check_size(repo_file.path, size, weights=True, limits=limits)
        with open(local, "rb") as handle:
            reader = HashingReader(handle, declared_size=size, limit=limits.max_weight_size)
            stored = cache.stage_stream(reader)  # type: ignore[arg-type]  # HashingReader has read()
        return stored, reader.git_blob_id()

    def _download(self, repo_file: RepoFile, pinned: PinnedRevision) -> Path:
        """Download one file at the pinned commit after checking the commit the server reports for it."""
        if self.offline:
            return self._cache_repo() / "snapshots" / pinned.commit / repo_file.path
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

        url = hf_hub_url(self.repo_id, repo_file.path, revision=pinned.commit, endpoint=self.endpoint)
        metadata = self._call(lambda: get_hf_file_metadata(url, token=self.token), revision=pinned.commit)
        reported = metadata.commit_hash
        if reported != pinned.commit:
            self._mismatch(pinned.commit, reported, what=f"the download of {repo_file.path}")
            # hf_hub_download would follow the reported commit and file the bytes under its
            # snapshot folder; request the pinned commit's URL itself, into a private folder.
            return self._call(lambda: self._download_url(url, repo_file.path), revision=pinned.commit)
        downloaded = self._call(
            lambda: hf_hub_download(
                self.repo_id,
                repo_file.path,
                revision=pinned.commit,
                endpoint=self.endpoint,
                token=self.token,
                cache_dir=self.cache_dir,
            ),
            revision=pinned.commit,
        )
        return Path(str(downloaded))

    def _download_url(self, url: str, path: str) -> Path:
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        target = Path(self._temporary_dir()) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        headers = build_hf_headers(token=self.token)
        with get_session().stream("GET", url, headers=headers, follow_redirects=True) as response:
            hf_raise_for_status(response)
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return target

    def _mismatch(self, requested: str, reported: str | None, *, what: str) -> None:
        """Raise on a misreported commit, or only log it when a lock file checks every byte."""
        error = self._mismatch_error(requested, reported, what=what)
        if not self.lock_verifies:
            raise error
        logger.warning("%s; the lock file checks every byte instead", error.message)

    def _mismatch_error(self, requested: str, reported: str | None, *, what: str) -> CommitMismatchError:
        return CommitMismatchError(
            f"{self.endpoint} reported commit {reported or '(none)'} for {what} of {self.repo_id}, "
            f"but commit {requested} was requested",
            rule_id="HG102",
            hint="the server does not serve pinned commits faithfully (olah 0.5.x reports the head commit); "
            "pin the bytes with a lock file made from a trusted source (hubguard lock), or use another server",
        )

    def _temporary_dir(self) -> str:
        if self._temporary is None:
            self._temporary = tempfile.mkdtemp(prefix="hubguard-hub-")
        return self._temporary

    def _cache_repo(self) -> Path:
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))

    def _call(self, action: Any, *, revision: str | None) -> Any:
        """Run one ``huggingface_hub`` call and turn its errors into hubguard's."""
        from huggingface_hub import errors as hf_errors

        try:
            return action()
        except hf_errors.RevisionNotFoundError as error:
            self._raise_revision_not_found(revision, error)
        except (hf_errors.RepositoryNotFoundError, hf_errors.GatedRepoError) as error:
            self._raise_repository_not_found(error)
        except hf_errors.HfHubHTTPError as error:
            status = getattr(getattr(error, "response", None), "status_code", None)
            self._raise_for_status(status, revision, error)
        except hf_errors.OfflineModeIsEnabled as error:
            raise FetchError(
                f"offline mode is on and {self.repo_id} is not in the caches",
                rule_id="HG100",
                hint="unset HF_HUB_OFFLINE to download it",
            ) from error
        except self._transport_errors as error:
            raise FetchError(
                f"could not reach {self.endpoint} for {self.repo_id}: {error}",
                rule_id="HG100",
                hint="check HF_ENDPOINT and that the server is running",
            ) from error
        except OSError as error:
            raise FetchError(
                f"download from {self.endpoint} for {self.repo_id} failed: {error}",
                rule_id="HG100",
                hint="fetch again; if it keeps failing, the server sends other bytes than it announces",
            ) from error

    def _raise_for_status(self, status: int | None, revision: str | None, error: Exception) -> NoReturn:
        if status in {401, 403}:
            raise FetchError(
                f"{self.endpoint} refused access to {self.repo_id} (HTTP {status})",
                rule_id="HG100",
                hint="pass token= (CLI: HF_TOKEN) for private or gated repositories",
            ) from error
        # A mirror may return 404 for a missing repository, and 404 or 500 for an unknown commit,
        # so a request for the default branch tells the two apart.
        if self._repository_exists():
            self._raise_revision_not_found(revision, error)
        self._raise_repository_not_found(error)

    def _repository_exists(self) -> bool:
        from huggingface_hub import errors as hf_errors

        # Some servers drop the kept-alive connection after an error response, so one
        # transport failure is retried on a fresh request.
        for attempt in range(2):
            try:
                self._api.model_info(self.repo_id, revision="main")
            except hf_errors.HfHubHTTPError:
                return False
            except self._transport_errors:
                if attempt == 1:
                    return False
                continue
            return True
        return False

    def _raise_revision_not_found(self, revision: str | None, error: Exception) -> NoReturn:
        raise RevisionNotFoundError(
            f"revision {revision} was not found in {self.repo_id} at {self.endpoint}",
            rule_id="HG100",
            hint="check the commit id; it must be a commit of this repository",
        ) from error

    def _raise_repository_not_found(self, error: Exception) -> NoReturn:
        raise RepositoryNotFoundError(
            f"repository {self.repo_id} was not found at {self.endpoint}",
            rule_id="HG100",
            hint="check the repo id and HF_ENDPOINT; private repositories need a token",
        ) from error

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def _lfs_sha256(lfs: Any) -> str | None:
    if lfs is None:
        return None
    value = getattr(lfs, "sha256", None) or (lfs.get("sha256") if isinstance(lfs, dict) else None)
    return str(value) if value else None


__all__ = ["HubBackend", "hub_cache_dir", "hub_offline"]
