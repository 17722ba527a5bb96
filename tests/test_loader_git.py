"""Loader tests for git URLs (``git+file://``, bare and non-bare) and checkouts read at a commit."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from _fixtures_loader import (
    CODE_FILES,
    blob_at,
    cache_entries,
    isolated_env,  # noqa: F401  # fixture
    make_two_commit_repo,
    tiny_model_files,
)
from _olah import commit_files, free_port, git, init_repo
from hubguard.errors import (
    FetchError,
    IntegrityError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    UnpinnedRevisionError,
    UnsafeRepositoryError,
)
from hubguard.loader import LockFile, fetch, lock, resolve_class_reference
from hubguard.loader.snapshot import PinnedRevision


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, Path]:
    """A non-bare repo with ONE and TWO (main, tag v-two), plus a bare clone of it."""
    root = tmp_path_factory.mktemp("git-two-commits")
    work = root / "acme" / "tiny"
    one, two = make_two_commit_repo(work)
    bare = root / "bare" / "tiny.git"
    bare.parent.mkdir()
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    return work, one, two, bare


@pytest.fixture(params=["non-bare", "bare"])
def git_source(request: pytest.FixtureRequest, two_commits: tuple[Path, str, str, Path]) -> tuple[str, str, str, Path]:
    work, one, two, bare = two_commits
    folder = work if request.param == "non-bare" else bare
    return f"git+file://{folder}", one, two, work


def test_pinned_older_commit_gives_that_commits_code(isolated_env: Path, git_source: tuple[str, str, str, Path]) -> None:
    """Step a: every code file comes from the pinned commit ONE and carries ONE's blob id."""
    source, one, _, work = git_source
    snapshot = fetch(source, revision=one)
    assert snapshot.revision == PinnedRevision(requested=one, commit=one, floating=False)
    assert snapshot.code_paths == CODE_FILES
    assert snapshot.config()["width"] == 1
    for path in CODE_FILES:
        assert '"one"' in snapshot.read_text(path)
        assert snapshot.files[path].git_blob == blob_at(work, one, path)
    assert snapshot.read_bytes("model.safetensors") == b"one" * 512


def test_branch_is_resolved_once_and_recorded(isolated_env: Path, git_source: tuple[str, str, str, Path]) -> None:
    """Step c: "main" with floating allowed records the full id of TWO for every file."""
    source, _, two, work = git_source
    snapshot = fetch(source, revision="main", allow_floating=True)
    assert snapshot.revision == PinnedRevision(requested="main", commit=two, floating=True)
    for path in CODE_FILES:
        assert snapshot.files[path].git_blob == blob_at(work, two, path)
        assert '"two"' in snapshot.read_text(path)


@pytest.mark.parametrize("name", ["v-two", "short-one", "main", None])
def test_unpinned_revision_refused_with_commit_to_pin(
    isolated_env: Path, git_source: tuple[str, str, str, Path], name: str | None
) -> None:
    """Step d, strict: tags, short ids, branches and no revision are refused, quoting the commit to pin."""
    source, one, two, _ = git_source
    requested = one[:7] if name == "short-one" else name
    expected = one if name == "short-one" else two
    with pytest.raises(UnpinnedRevisionError, match=f'pass revision="{expected}" \\(CLI: --revision {expected}\\)') as error:
        fetch(source, revision=requested)
    assert error.value.requested == requested
    assert error.value.resolved == expected
    assert error.value.rule_id == "HG101"
    assert cache_entries(isolated_env) == []


@pytest.mark.parametrize("name", ["v-two", "short-one"])
def test_floating_tag_and_short_id_record_full_commit(
    isolated_env: Path, git_source: tuple[str, str, str, Path], name: str
) -> None:
    """Step d, default: a tag and a short id resolve to, and record, the full commit id."""
    source, one, two, _ = git_source
    requested = one[:7] if name == "short-one" else name
    expected = one if name == "short-one" else two
    snapshot = fetch(source, revision=requested, allow_floating=True)
    assert snapshot.revision == PinnedRevision(requested=requested, commit=expected, floating=True)


def test_code_revision_takes_all_code_from_other_commit(
    isolated_env: Path, git_source: tuple[str, str, str, Path]
) -> None:
    """Step e: config values from TWO, every code file (and its imports) from ONE."""
    source, one, two, work = git_source
    snapshot = fetch(source, revision=two)
    reference = resolve_class_reference(snapshot, "modeling_tiny.TinyModel", code_revision=one)
    assert snapshot.config()["width"] == 2
    assert reference.snapshot.revision.commit == one
    assert reference.module_path == "modeling_tiny.py"
    assert reference.class_name == "TinyModel"
    assert reference.snapshot.code_paths == CODE_FILES
    for path in CODE_FILES:
        assert reference.snapshot.files[path].git_blob == blob_at(work, one, path)
    assert "config.json" not in reference.snapshot.files
    same = resolve_class_reference(snapshot, "configuration_tiny.TinyConfig", code_revision=one)
    assert same.snapshot.code_id() == reference.snapshot.code_id()


def test_code_revision_equal_to_revision_returns_same_snapshot(
    isolated_env: Path, git_source: tuple[str, str, str, Path]
) -> None:
    source, _, two, _ = git_source
    snapshot = fetch(source, revision=two)
    assert resolve_class_reference(snapshot, "modeling_tiny.TinyModel").snapshot is snapshot
    assert resolve_class_reference(snapshot, "modeling_tiny.TinyModel", code_revision=two).snapshot is snapshot


def test_branch_named_like_commit_cannot_capture_pin(isolated_env: Path, tmp_path: Path) -> None:
    """A branch called like ONE's id but pointing at TWO does not change what ONE fetches."""
    work = tmp_path / "acme" / "tiny"
    one, two = make_two_commit_repo(work)
    git(work, "branch", one, two)
    snapshot = fetch(f"git+file://{work}", revision=one)
    assert snapshot.revision.commit == one
    assert snapshot.read_text("helpers.py") == 'HELPER_VERSION = "one"\n'


def test_unknown_commit_raises_and_caches_nothing(isolated_env: Path, git_source: tuple[str, str, str, Path]) -> None:
    source, _, _, _ = git_source
    with pytest.raises(RevisionNotFoundError, match="commit 0{40} was not found in git\\+file://"):
        fetch(source, revision="0" * 40)
    assert cache_entries(isolated_env) == []


def test_missing_repository_raises_and_caches_nothing(isolated_env: Path, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError, match="was not found: .* is not a folder"):
        fetch(f"git+file://{tmp_path}/nowhere", revision="a" * 40)
    assert cache_entries(isolated_env) == []


def test_temporary_clone_is_removed(
    isolated_env: Path, git_source: tuple[str, str, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, one, _, _ = git_source
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    fetch(source, revision=one)
    with pytest.raises(RevisionNotFoundError):
        fetch(source, revision="1" * 40)
    assert list(scratch.iterdir()) == []


def test_symlink_leaving_repository_refused(isolated_env: Path, tmp_path: Path) -> None:
    work = init_repo(tmp_path / "acme" / "linky")
    (work / "helpers_link.py").symlink_to("../../../../etc/passwd")
    commit = commit_files(work, tiny_model_files("one", 1))
    with pytest.raises(UnsafeRepositoryError, match="symlink points outside the repository") as error:
        fetch(f"git+file://{work}", revision=commit)
    assert error.value.rule_id == "HG109"
    assert error.value.path == "helpers_link.py"


def test_symlink_inside_repository_reads_target(isolated_env: Path, tmp_path: Path) -> None:
    work = init_repo(tmp_path / "acme" / "linky")
    files = tiny_model_files("one", 1)
    files["real_helpers.py"] = files.pop("helpers.py")
    (work / "helpers.py").symlink_to("real_helpers.py")
    commit = commit_files(work, files)
    snapshot = fetch(f"git+file://{work}", revision=commit)
    assert snapshot.read_text("helpers.py") == 'HELPER_VERSION = "one"\n'


def test_cross_repo_reference_needs_pin(isolated_env: Path, tmp_path: Path) -> None:
    """org/other--module.Class maps to the sibling URL and is refused without a code pin."""
    weights = init_repo(tmp_path / "srv" / "acme" / "tiny-weights")
    config = {
        "width": 10,
        "auto_map": {
            "AutoConfig": "acme/tiny-code--configuration_tiny.TinyConfig",
            "AutoModel": "acme/tiny-code--modeling_tiny.TinyModel",
        },
    }
    weights_commit = commit_files(weights, {"config.json": json.dumps(config)})
    code = init_repo(tmp_path / "srv" / "acme" / "tiny-code")
    code_files = {k: v for k, v in tiny_model_files("x", 1).items() if k.endswith(".py")}
    code_commit = commit_files(code, code_files)

    snapshot = fetch(f"git+file://{weights}", revision=weights_commit)
    assert snapshot.code_paths == ()
    assert sorted(snapshot.files) == ["config.json"]
    with pytest.raises(UnpinnedRevisionError, match=f'default branch is at {code_commit} now. Pass code_revision="{code_commit}"') as error:
        resolve_class_reference(snapshot, "acme/tiny-code--modeling_tiny.TinyModel")
    assert error.value.resolved == code_commit

    reference = resolve_class_reference(snapshot, "acme/tiny-code--modeling_tiny.TinyModel", code_revision=code_commit)
    assert reference.snapshot.source.location == f"git+file://{tmp_path}/srv/acme/tiny-code"
    assert reference.snapshot.revision.commit == code_commit
    assert reference.snapshot.code_paths == CODE_FILES
    assert reference.module_path == "modeling_tiny.py"

    locked = lock(f"git+file://{weights}", revision=weights_commit, code_revision=code_commit)
    assert [entry.source for entry in locked.entries] == [f"git+file://{weights}", f"git+file://{code}"]
    assert [entry.commit for entry in locked.entries] == [weights_commit, code_commit]
    from_lock = resolve_class_reference(snapshot, "acme/tiny-code--modeling_tiny.TinyModel", lock=locked)
    assert from_lock.snapshot.revision.commit == code_commit


def test_lock_roundtrip_and_commit_mismatch(isolated_env: Path, git_source: tuple[str, str, str, Path], tmp_path: Path) -> None:
    source, one, two, _ = git_source
    path = lock(source, revision=one).write(tmp_path / "hubguard.lock")
    snapshot = fetch(source, lock=path)
    assert snapshot.revision.commit == one
    assert LockFile.read(path).main.commit == one
    with pytest.raises(IntegrityError, match=f"revision {two} of .* differs from the commit the lock file pins, {one}"):
        fetch(source, revision=two, lock=path)


def test_unreachable_https_url_raises_fetch_error(isolated_env: Path) -> None:
    port = free_port()
    with pytest.raises(FetchError, match=f"git could not clone git\\+https://127.0.0.1:{port}/acme/tiny.git: .*") as error:
        fetch(f"git+https://127.0.0.1:{port}/acme/tiny.git", revision="a" * 40)
    assert error.value.rule_id == "HG100"
    assert cache_entries(isolated_env) == []
