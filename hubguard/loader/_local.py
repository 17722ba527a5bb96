"""Local folder source: a plain folder, or the working tree of a git checkout at its HEAD.

A plain folder has no commit; its identity is the content id ``sha256:<hex>`` over the
path and sha256 of every file hubguard may load (see :func:`content_id`). A folder that
is the top of a git checkout with a clean working tree reports its ``HEAD`` commit, and
each fetched file's bytes are checked against the blob id ``HEAD`` lists for it. A
checkout with uncommitted or untracked changes is loaded as a plain folder, with a
warning, because no commit describes those bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
from pathlib import Path

from hubguard.errors import RepositoryNotFoundError, RevisionNotFoundError, UnsafeRepositoryError
from hubguard.loader._backend import Backend
from hubguard.loader._files import FetchLimits, RepoFile, check_size, never_loaded_reason
from hubguard.loader.cache import ContentCache, StoredBlob
from hubguard.loader.integrity import git_blob_id_of_file, sha256_file
from hubguard.loader.revisions import is_content_id
from hubguard.loader.snapshot import PinnedRevision, SourceRef

logger = logging.getLogger(__name__)


def content_id(files: dict[str, str]) -> str:
    """Return ``sha256:<hex>`` over sorted ``path NUL sha256 LF`` lines of a folder's files."""
    digest = hashlib.sha256()
    for path, sha256 in sorted(files.items()):
        digest.update(path.encode("utf-8") + b"\0" + sha256.encode("ascii") + b"\n")
    return "sha256:" + digest.hexdigest()


def git_toplevel(folder: Path) -> Path | None:
    """Return the folder if it is the top of a git working tree, else ``None``."""
    if not (folder / ".git").exists():
        return None
    result = _git(folder, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        return None
    top = Path(result.stdout.decode("utf-8", "surrogateescape").strip())
    return folder if top.resolve() == folder.resolve() else None


# Settings for every git call on a checkout that someone else may have prepared: its
# .git/config could name an fsmonitor or hook program, and replace refs could swap the
# objects a commit id stands for. hubguard only runs plumbing commands that read objects
# and refs (rev-parse, ls-tree), never ones that look at the working tree.
_SAFE_GIT_OPTIONS = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
_SAFE_GIT_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *_SAFE_GIT_OPTIONS, "-C", str(folder), *args],
        capture_output=True,
        check=check,
        env={**os.environ, **_SAFE_GIT_ENVIRONMENT},
    )


class LocalFolderBackend(Backend):
    """Read files from a folder on disk, never following a symlink out of it."""

    def __init__(self, source: SourceRef) -> None:
        super().__init__(source)
        self.root = Path(source.location)
        if not self.root.is_dir():
            raise RepositoryNotFoundError(
                f"folder {source.location} does not exist",
                rule_id="HG100",
                hint="check the path, or pass a Hub repo id (org/name) or a git+https:// URL",
            )
        self._real_root = os.path.realpath(self.root)
        self._head_blobs: dict[str, str] | None = None
        self._head: str | None = None
        top = git_toplevel(self.root)
        if top is not None:
            self._read_head()
        self.content_addressed = self._head is None

    def _read_head(self) -> None:
        head = _git(self.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        if head.returncode != 0:
            return  # a checkout without commits is a plain folder
        commit = head.stdout.decode("ascii").strip()
        head_blobs: dict[str, str] = {}
        head_sizes: dict[str, int] = {}
        tree = _git(self.root, "ls-tree", "-r", "-z", "--long", "--full-tree", commit).stdout
        for record in tree.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode("ascii").split()
            if kind == "blob" and mode != "120000":
                path = raw_path.decode("utf-8", "surrogateescape")
                head_blobs[path] = oid
                head_sizes[path] = int(size)
        # hubguard compares the working tree with HEAD itself (git status would read the
        # checkout's own settings and index flags such as assume-unchanged). Every regular
        # file, ignored ones included, must be HEAD's blob; otherwise the folder is a plain
        # folder named by its content id.
        changed = self._differences_from(head_blobs, head_sizes)
        if changed:
            logger.warning(
                "%s is a git checkout whose files differ from HEAD %s (%s); loading it as a plain folder "
                "identified by its content id",
                self.source.location,
                commit,
                ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else ""),
            )
            return
        self._head = commit
        self._head_blobs = head_blobs

    def _differences_from(self, head_blobs: dict[str, str], head_sizes: dict[str, int]) -> list[str]:
        """Return the working-tree paths that are not HEAD's blobs, and HEAD's files that are missing."""
        seen: set[str] = set()
        changed: list[str] = []
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            relative_folder = os.path.relpath(folder, self.root)
            relative_folder = "" if relative_folder == "." else relative_folder
            if ".git" in dirnames:
                dirnames.remove(".git")
            for name in filenames:
                full = os.path.join(folder, name)
                path = _join(relative_folder, name)
                if os.path.islink(full):
                    continue  # symlinks are checked by list_files and read through their target
                seen.add(path)
                expected = head_blobs.get(path)
                # A size that differs from HEAD's settles it without reading the file.
                if expected is None or os.path.getsize(full) != head_sizes[path]:
                    changed.append(path)
                elif git_blob_id_of_file(Path(full)) != expected:
                    changed.append(path)
        changed.extend(sorted(path for path in head_blobs if path not in seen and not os.path.islink(self._full_unchecked(path))))
        return changed

    def _full_unchecked(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def pin(self, requested: str | None, *, allow_floating: bool) -> PinnedRevision:
        if self._head is not None:
            return PinnedRevision(requested=requested, commit=self._head)
        if requested is not None and not is_content_id(requested):
            raise RevisionNotFoundError(
                f"folder {self.source.location} is not a git checkout, so revision {requested!r} cannot be found",
                rule_id="HG100",
                hint="omit the revision, pass the folder's content id (sha256:…), or pin it with a lock file",
            )
        # The content id is only known once every file is hashed; the pipeline fills it in.
        return PinnedRevision(requested=requested, commit="")

    def list_files(self, pinned: PinnedRevision) -> list[RepoFile]:
        files = []
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            relative_folder = os.path.relpath(folder, self.root)
            if relative_folder == ".":
                relative_folder = ""
            for name in list(dirnames):
                full = os.path.join(folder, name)
                if name == ".git":
                    dirnames.remove(name)
                elif os.path.islink(full):
                    self._check_symlink(full, _join(relative_folder, name))
                    logger.debug("not following symlinked folder %s", full)
                    dirnames.remove(name)
            for name in filenames:
                full = os.path.join(folder, name)
                path = _join(relative_folder, name)
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    self._check_symlink(full, path)
                    info = os.stat(full)
                if not stat.S_ISREG(info.st_mode):
                    raise UnsafeRepositoryError(
                        "is not a regular file (device, socket or pipe)",
                        rule_id="HG109",
                        path=path,
                        hint="remove it from the folder",
                    )
                blob = None if self._head_blobs is None else self._head_blobs.get(path)
                files.append(RepoFile(path=path, size=info.st_size, git_blob=blob))
        return sorted(files, key=lambda item: item.path)

    def _check_symlink(self, full: str, path: str) -> None:
        target = os.path.realpath(full)
        if target != self._real_root and not target.startswith(self._real_root + os.sep):
            raise UnsafeRepositoryError(
                f"symlink points outside the folder, to {target}",
                rule_id="HG109",
                path=path,
                hint="replace the symlink with the file itself, or remove it",
            )

    def read_small(self, repo_file: RepoFile, pinned: PinnedRevision, limits: FetchLimits) -> bytes:
        with open(self._full(repo_file.path), "rb") as handle:
            data = handle.read(limits.max_file_size + 1)
        check_size(repo_file.path, len(data), weights=False, limits=limits)
        if self._head_blobs is not None and repo_file.git_blob is None and never_loaded_reason(repo_file.path) is None:
            raise UnsafeRepositoryError(
                f"is not part of HEAD {pinned.commit} of the checkout",
                rule_id="HG103",
                path=repo_file.path,
                hint="commit the file, or load the folder as a plain folder without its .git",
            )
        return data

    def store_large(
        self, repo_file: RepoFile, pinned: PinnedRevision, cache: ContentCache, limits: FetchLimits
    ) -> tuple[StoredBlob, str | None]:
        full = self._full(repo_file.path)
        check_size(repo_file.path, os.path.getsize(full), weights=True, limits=limits)
        size, sha256 = sha256_file(Path(full))
        check_size(repo_file.path, size, weights=True, limits=limits)
        # NOTE: a blob already in the cache is trusted by its name and size, because only
        # hubguard writes the cache and its files are read-only. A cold copy is hashed again
        # while it is written, so the blob's name always matches the bytes it holds.
        stored = cache.find_blob(sha256, size)
        if stored is None:
            with open(full, "rb") as handle:
                stored = cache.stage_stream(handle)
        # In a checkout at HEAD, the bytes that will be loaded (the cache copy) must be HEAD's blob.
        git_blob = git_blob_id_of_file(stored.path) if self._head_blobs is not None else None
        return stored, git_blob

    def hash_unfetched(self, repo_file: RepoFile) -> str:
        return sha256_file(Path(self._full(repo_file.path)))[1]

    def _full(self, path: str) -> str:
        full = os.path.join(self.root, *path.split("/"))
        self._check_symlink(full, path)
        return full


def _join(folder: str, name: str) -> str:
    return f"{folder.replace(os.sep, '/')}/{name}" if folder else name


__all__ = ["LocalFolderBackend", "content_id", "git_toplevel"]
