"""git source: a ``git+https://`` or ``git+file://`` URL cloned bare into a temporary folder,
or a local checkout read through its object database.

Files are read as blobs of the pinned commit's tree (``git ls-tree`` and ``git cat-file``),
never from a working tree, and every blob's bytes are hashed again and compared with the
id the tree lists. The pin is looked up as the object ``<sha>^{commit}``: git reads a full
40-hex argument as an object id before any ref name, so a branch or tag named like the
commit cannot capture it. Only ``https`` and ``file`` transports are enabled, for the clone
and for anything the repository's configuration might point git at.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import subprocess
import tempfile
from pathlib import Path

from hubguard.errors import FetchError, RepositoryNotFoundError, RevisionNotFoundError, UnsafeRepositoryError
from hubguard.loader._backend import Backend, HashingReader
from hubguard.loader._files import FetchLimits, RepoFile, check_size
from hubguard.loader.cache import ContentCache, StoredBlob
from hubguard.loader.integrity import git_blob_id
from hubguard.loader.revisions import pin_revision
from hubguard.loader.snapshot import PinnedRevision, SourceRef

logger = logging.getLogger(__name__)

_GIT_TIMEOUT = 600
_SYMLINK_MODE = "120000"
_MAX_SYMLINK_HOPS = 40
_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
_LFS_POINTER_MAX_SIZE = 1024
_SAFE_TRANSPORTS = (
    "-c", "protocol.allow=never",
    "-c", "protocol.https.allow=always",
    "-c", "protocol.file.allow=always",
)  # fmt: skip
# Never prompt for credentials, never take locks in the source repository, never run LFS.
_GIT_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_LFS_SKIP_SMUDGE": "1",
    # Replace refs would let another commit's objects stand for the pinned commit id.
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class GitBackend(Backend):
    """Read a pinned commit's tree from a git repository."""

    cacheable = True

    def __init__(self, source: SourceRef, *, local_repository: Path | None = None) -> None:
        super().__init__(source)
        self._url = source.location.removeprefix("git+") if local_repository is None else None
        self._repository = local_repository
        self._temporary: str | None = None

    # --- repository access --------------------------------------------------------------

    def _repo(self) -> Path:
        """Return the repository folder, cloning the URL on first use."""
        if self._repository is not None:
            return self._repository
        if self._url is None:
            raise FetchError(f"no repository for {self.source.display()}", rule_id="HG100")
        if self._url.startswith("file://"):
            path = self._url.removeprefix("file://")
            if not path.startswith("/"):
                raise RepositoryNotFoundError(
                    f"{self.source.display()} does not name an absolute path",
                    rule_id="HG100",
                    hint=f"write git+file:// followed by the absolute path, e.g. git+file://{os.path.abspath(path)}",
                )
            if not os.path.isdir(path):
                raise RepositoryNotFoundError(
                    f"git repository {self.source.display()} was not found: {path} is not a folder",
                    rule_id="HG100",
                    hint="check the path after git+file://",
                )
        self._temporary = tempfile.mkdtemp(prefix="hubguard-git-")
        target = Path(self._temporary) / "repo.git"
        logger.info("cloning %s", self.source.display())
        result = self._run_git(None, "clone", "--bare", "--quiet", "--", self._url, str(target), check=False)
        if result.returncode != 0:
            raise FetchError(
                f"git could not clone {self.source.display()}: {_last_line(result.stderr)}",
                rule_id="HG100",
                hint="check the URL, your network and credentials; run `git clone` on it to see git's full output",
            )
        self._repository = target
        return target

    def _run_git(
        self, repository: Path | None, *args: str, check: bool = True, stdout: int | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                _git_command(repository, *args),
                capture_output=stdout is None,
                stdout=stdout,
                check=check,
                env=dict(os.environ) | _GIT_ENVIRONMENT,
                timeout=_GIT_TIMEOUT,
            )
        except FileNotFoundError as error:
            raise FetchError("the git command is not installed", rule_id="HG100", hint="install git") from error
        except subprocess.TimeoutExpired as error:
            raise FetchError(
                f"git timed out after {_GIT_TIMEOUT} s on {self.source.display()}", rule_id="HG100"
            ) from error

    def _commit_of(self, spec: str) -> str | None:
        result = self._run_git(self._repo(), "rev-parse", "--verify", "--quiet", "--end-of-options", spec, check=False)
        if result.returncode != 0:
            return None
        return result.stdout.decode("ascii").strip()

    # --- Backend ------------------------------------------------------------------------

    def pin(self, requested: str | None, *, allow_floating: bool) -> PinnedRevision:
        return pin_revision(requested, source=self.source.display(), resolve=self._resolve_name, allow_floating=allow_floating)

    def _resolve_name(self, name: str | None) -> str:
        commit = self._commit_of(f"{name or 'HEAD'}^{{commit}}")
        if commit is None:
            raise RevisionNotFoundError(
                f"revision {name or 'HEAD'!r} was not found in {self.source.display()}",
                rule_id="HG100",
                hint="pass a full 40-character commit id that exists in the repository",
            )
        return commit

    def list_files(self, pinned: PinnedRevision) -> list[RepoFile]:
        commit = self._existing_commit(pinned.commit)
        tree = self._run_git(self._repo(), "ls-tree", "-r", "-z", "--long", "--full-tree", commit).stdout
        blobs: dict[str, tuple[str, str, int]] = {}
        for record in tree.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode("ascii").split()
            path = raw_path.decode("utf-8", "surrogateescape")
            if kind != "blob":
                logger.debug("skipping %s %s in %s (not a file)", kind, path, self.source.display())
                continue
            blobs[path] = (mode, oid, int(size))
        files = []
        for path, (mode, oid, size) in blobs.items():
            if mode == _SYMLINK_MODE:
                target = self._follow_symlink(path, blobs)
                if target is None:
                    continue
                mode, oid, size = blobs[target]
            files.append(RepoFile(path=path, size=size, git_blob=oid))
        return sorted(files, key=lambda item: item.path)

    def _existing_commit(self, commit: str) -> str:
        found = self._commit_of(f"{commit}^{{commit}}")
        if found is None and self._url is not None:
            # The commit may be unreachable from the cloned refs; ask the server for it by id.
            self._run_git(self._repo(), "fetch", "--quiet", "--no-tags", "--", self._url, commit, check=False)
            found = self._commit_of(f"{commit}^{{commit}}")
        if found is None:
            raise RevisionNotFoundError(
                f"commit {commit} was not found in {self.source.display()}",
                rule_id="HG100",
                hint="check the commit id; `git ls-remote` lists the commits of branches and tags",
            )
        if found != commit:
            raise RevisionNotFoundError(
                f"{commit} in {self.source.display()} is a tag object pointing to commit {found}, not a commit",
                rule_id="HG100",
                hint=f'pin the commit itself: revision="{found}"',
            )
        return commit

    def _follow_symlink(self, path: str, blobs: dict[str, tuple[str, str, int]]) -> str | None:
        """Return the regular file a symlink resolves to inside the tree, or ``None`` if it dangles."""
        current = path
        for _ in range(_MAX_SYMLINK_HOPS):
            mode, oid, _ = blobs[current]
            if mode != _SYMLINK_MODE:
                return current
            link = self._run_git(self._repo(), "cat-file", "blob", oid).stdout.decode("utf-8", "surrogateescape")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(current), link))
            if link.startswith("/") or target == ".." or target.startswith("../"):
                raise UnsafeRepositoryError(
                    f"symlink points outside the repository, to {link!r}",
                    rule_id="HG109",
                    path=path,
                    hint="do not load a repository whose symlinks leave it",
                )
            if target not in blobs:
                logger.debug("symlink %s in %s points to %s, which is not a file", path, self.source.display(), link)
                return None
            current = target
        raise UnsafeRepositoryError(
            f"symlink chain is longer than {_MAX_SYMLINK_HOPS} links", rule_id="HG109", path=path
        )

    def read_small(self, repo_file: RepoFile, pinned: PinnedRevision, limits: FetchLimits) -> bytes:
        check_size(repo_file.path, repo_file.size, weights=False, limits=limits)
        return self._run_git(self._repo(), "cat-file", "blob", str(repo_file.git_blob)).stdout

    def store_large(
        self, repo_file: RepoFile, pinned: PinnedRevision, cache: ContentCache, limits: FetchLimits
    ) -> tuple[StoredBlob, str | None]:
        check_size(repo_file.path, repo_file.size, weights=True, limits=limits)
        if repo_file.size <= _LFS_POINTER_MAX_SIZE:
            data = self._run_git(self._repo(), "cat-file", "blob", str(repo_file.git_blob)).stdout
            if data.startswith(_LFS_POINTER_PREFIX):
                raise FetchError(
                    "is a git LFS pointer; git sources do not fetch LFS objects",
                    rule_id="HG100",
                    path=repo_file.path,
                    hint="fetch the repository from the Hub, or commit the weights without LFS",
                )
            return cache.stage_bytes(data), git_blob_id(data)
        command = _git_command(self._repo(), "cat-file", "blob", str(repo_file.git_blob))
        environment = dict(os.environ) | _GIT_ENVIRONMENT
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment) as process:
            stream = process.stdout
            if stream is None:
                raise FetchError("git produced no output stream", rule_id="HG100", path=repo_file.path)
            reader = HashingReader(stream, declared_size=repo_file.size, limit=limits.max_weight_size)
            try:
                stored = cache.stage_stream(reader)  # type: ignore[arg-type]  # HashingReader has read()
            except OverflowError:
                process.kill()
                check_size(repo_file.path, reader.size, weights=True, limits=limits)
                raise
        if process.returncode != 0:
            raise FetchError(f"git could not read blob {repo_file.git_blob}", rule_id="HG100", path=repo_file.path)
        return stored, reader.git_blob_id()

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def _git_command(repository: Path | None, *args: str) -> list[str]:
    command = ["git", *_SAFE_TRANSPORTS]
    if repository is not None:
        command += ["-C", str(repository)]
    return command + list(args)


def _last_line(stderr: bytes) -> str:
    """Return git's error lines (those starting with ``fatal:`` or ``error:``), else its last line."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    if errors:
        return " ".join(errors)
    return lines[-1] if lines else "no message from git"


__all__ = ["GitBackend"]
