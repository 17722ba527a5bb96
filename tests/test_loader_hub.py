"""Loader tests for Hub repo ids, through the real huggingface_hub client and olah on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _fixtures_loader import (
    CODE_FILES,
    blob_at,
    cache_entries,
    isolated_env,  # noqa: F401  # fixture
    sha256_hex,
    tiny_model_files,
)
from _olah import OlahServer, RewritingProxy, commit_files, free_port, git, olah_server  # noqa: F401  # fixture
from hubguard.errors import (
    FetchError,
    IntegrityError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    UnpinnedRevisionError,
)
from hubguard.loader import LockFile, fetch, lock, resolve_class_reference
from hubguard.loader.snapshot import PinnedRevision

pytestmark = pytest.mark.olah

REPO = "acme/tiny-hub"


@pytest.fixture(scope="module")
def hub_repo(olah_server: OlahServer) -> tuple[OlahServer, str, str]:  # noqa: F811  # fixture argument
    """``acme/tiny-hub`` with commit ONE and main = TWO, served by olah."""
    folder = olah_server.create_repo(REPO)
    one = commit_files(folder, tiny_model_files("one", 1), message="first version")
    two = commit_files(folder, tiny_model_files("two", 2), message="second version")
    return olah_server, one, two


@pytest.fixture
def hub(isolated_env: Path, hub_repo: tuple[OlahServer, str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[OlahServer, str, str]:
    server, one, two = hub_repo
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    return server, one, two


@pytest.fixture
def misreporting_proxy(hub: tuple[OlahServer, str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[RewritingProxy]:
    """A proxy that reports the head commit TWO for every request, as olah 0.5.x does."""
    server, _, two = hub
    proxy = RewritingProxy(server.endpoint)
    proxy.report_commit[REPO] = two
    monkeypatch.setenv("HF_ENDPOINT", proxy.endpoint)
    yield proxy
    proxy.close()


def snapshot_folders(tmp_path: Path) -> list[str]:
    """List the huggingface_hub cache's snapshot folders of the test repo."""
    base = tmp_path / "hf-home" / "hub" / ("models--" + REPO.replace("/", "--")) / "snapshots"
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_pinned_head_commit_loads(hub: tuple[OlahServer, str, str]) -> None:
    server, _, two = hub
    snapshot = fetch(REPO, revision=two)
    assert snapshot.source.kind == "hub"
    assert snapshot.source.endpoint == server.endpoint
    assert snapshot.revision == PinnedRevision(requested=two, commit=two, floating=False)
    assert snapshot.code_paths == CODE_FILES
    assert snapshot.config()["width"] == 2
    for path in CODE_FILES:
        assert snapshot.files[path].git_blob == blob_at(server.repo_folder(REPO), two, path)
    assert snapshot.read_bytes("model.safetensors") == b"two" * 512


def test_older_commit_served_faithfully_loads(hub: tuple[OlahServer, str, str]) -> None:
    _, one, _ = hub
    snapshot = fetch(REPO, revision=one)
    assert snapshot.revision.commit == one
    assert snapshot.read_text("helpers.py") == 'HELPER_VERSION = "one"\n'


def test_older_commit_refused_when_server_reports_head(
    hub: tuple[OlahServer, str, str], misreporting_proxy: RewritingProxy, isolated_env: Path, tmp_path: Path
) -> None:
    """The olah 0.5.x response (head commit for an older pin) is refused before anything is cached."""
    _, one, two = hub
    with pytest.raises(IntegrityError, match=f"reported commit {two} .* but commit {one} was requested") as error:
        fetch(REPO, revision=one)
    assert error.value.rule_id == "HG102"
    assert cache_entries(isolated_env) == []
    assert snapshot_folders(tmp_path) == []


def test_older_commit_verified_by_lock_despite_misreport(
    hub: tuple[OlahServer, str, str], misreporting_proxy: RewritingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, one, _ = hub
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    path = lock(REPO, revision=one).write(tmp_path / "hubguard.lock")
    monkeypatch.setenv("HF_ENDPOINT", misreporting_proxy.endpoint)
    snapshot = fetch(REPO, lock=path)
    assert snapshot.revision.commit == one
    for path_in_repo in CODE_FILES:
        assert '"one"' in snapshot.read_text(path_in_repo)
    assert snapshot.config()["width"] == 1
    # The misreported download is kept out of huggingface_hub's snapshot folder of TWO.
    assert misreporting_proxy.report_commit[REPO] not in snapshot_folders(tmp_path)


def test_lock_mismatch_names_file_and_hashes(
    hub: tuple[OlahServer, str, str], misreporting_proxy: RewritingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, one, _ = hub
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    path = lock(REPO, revision=one).write(tmp_path / "hubguard.lock")
    expected = LockFile.read(path).main.file_map()["helpers.py"].sha256
    tampered = b'HELPER_VERSION = "bad"\n'  # same length, so only the hash can tell
    misreporting_proxy.replace_body["helpers.py"] = tampered
    monkeypatch.setenv("HF_ENDPOINT", misreporting_proxy.endpoint)
    with pytest.raises(IntegrityError, match=f"sha256 is {sha256_hex(tampered)} but the lock file expects {expected}") as error:
        fetch(REPO, lock=path)
    assert error.value.path == "helpers.py"


def test_altered_bytes_fail_blob_id_check(
    hub: tuple[OlahServer, str, str], misreporting_proxy: RewritingProxy, isolated_env: Path
) -> None:
    server, _, two = hub
    misreporting_proxy.replace_body["helpers.py"] = b'HELPER_VERSION = "bad"\n'
    expected = blob_at(server.repo_folder(REPO), two, "helpers.py")
    with pytest.raises(IntegrityError, match=f"git blob id of the received bytes is .* lists {expected}") as error:
        fetch(REPO, revision=two)
    assert error.value.path == "helpers.py"
    assert [entry for entry in cache_entries(isolated_env) if entry.startswith("snapshots/")] == []


def test_branch_refused_with_commit_to_pin(hub: tuple[OlahServer, str, str]) -> None:
    _, _, two = hub
    with pytest.raises(UnpinnedRevisionError, match=f'resolves to {two} now; pass revision="{two}" \\(CLI: --revision {two}\\)'):
        fetch(REPO, revision="main")
    assert fetch(REPO, revision="main", allow_floating=True).revision == PinnedRevision("main", two, floating=True)


def test_unknown_commit_raises_and_caches_nothing(hub: tuple[OlahServer, str, str], isolated_env: Path) -> None:
    with pytest.raises(RevisionNotFoundError, match=f"revision {'0' * 40} was not found in {REPO}"):
        fetch(REPO, revision="0" * 40)
    assert cache_entries(isolated_env) == []


def test_missing_repository_raises_and_caches_nothing(hub: tuple[OlahServer, str, str], isolated_env: Path) -> None:
    _, one, _ = hub
    with pytest.raises(RepositoryNotFoundError, match="repository acme/does-not-exist was not found at http://127.0.0.1:"):
        fetch("acme/does-not-exist", revision=one)
    assert cache_entries(isolated_env) == []


def test_stopped_server_raises_and_caches_nothing(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(FetchError, match=f"could not reach http://127.0.0.1:{port} for {REPO}") as error:
        fetch(REPO, revision="a" * 40)
    assert type(error.value) is FetchError
    assert cache_entries(isolated_env) == []


def test_warm_cache_needs_no_server(hub: tuple[OlahServer, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, one, _ = hub
    first = fetch(REPO, revision=one)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr("hubguard.loader._pipeline.hub_endpoint", lambda: first.source.endpoint)
    again = fetch(REPO, revision=one)
    assert again.files == first.files
    assert again.read_bytes("model.safetensors") == b"one" * 512


def test_offline_mode_reads_huggingface_cache(hub: tuple[OlahServer, str, str], isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, one, _ = hub
    first = fetch(REPO, revision=one)
    monkeypatch.setenv("HUBGUARD_CACHE", str(isolated_env.parent / "fresh-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = fetch(REPO, revision=one)
    assert {p: f.sha256 for p, f in again.files.items()} == {p: f.sha256 for p, f in first.files.items()}


def test_repo_ids_with_dot_and_underscore_are_distinct(olah_server: OlahServer, hub: tuple[OlahServer, str, str]) -> None:  # noqa: F811
    commits = {}
    for repo_id, magic in (("acme/tiny-resnet-v1.5", 15), ("acme/tiny-resnet-v1_5", 99)):
        folder = olah_server.repo_folder(repo_id)
        if not folder.exists():
            olah_server.create_repo(repo_id)
        files = tiny_model_files("one", 1)
        files["helpers.py"] = f"MAGIC = {magic}\n"
        commits[repo_id] = commit_files(folder, files)
    dotted = fetch("acme/tiny-resnet-v1.5", revision=commits["acme/tiny-resnet-v1.5"])
    underscored = fetch("acme/tiny-resnet-v1_5", revision=commits["acme/tiny-resnet-v1_5"])
    assert dotted.read_text("helpers.py") == "MAGIC = 15\n"
    assert underscored.read_text("helpers.py") == "MAGIC = 99\n"
    assert dotted.source.location == "acme/tiny-resnet-v1.5"
    assert dotted.code_id() != underscored.code_id()


def test_cross_repo_reference_at_same_endpoint(olah_server: OlahServer, hub: tuple[OlahServer, str, str]) -> None:  # noqa: F811
    weights_folder = olah_server.repo_folder("acme/tiny-weights")
    code_folder = olah_server.repo_folder("acme/tiny-code")
    for folder in (weights_folder, code_folder):
        if not folder.exists():
            olah_server.create_repo(folder.relative_to(olah_server.mirrors / "models").as_posix())
    config = {
        "width": 10,
        "auto_map": {
            "AutoConfig": "acme/tiny-code--configuration_tiny.TinyConfig",
            "AutoModel": "acme/tiny-code--modeling_tiny.TinyModel",
        },
    }
    weights_commit = commit_files(weights_folder, {"config.json": json.dumps(config)})
    code_commit = commit_files(code_folder, {k: v for k, v in tiny_model_files("x", 1).items() if k.endswith(".py")})
    commit_files(code_folder, {"helpers.py": 'HELPER_VERSION = "moved on"\n'})

    snapshot = fetch("acme/tiny-weights", revision=weights_commit)
    assert snapshot.code_paths == ()
    head = git(code_folder, "rev-parse", "HEAD")
    with pytest.raises(UnpinnedRevisionError, match=f'code repository acme/tiny-code .* default branch is at {head} now'):
        resolve_class_reference(snapshot, "acme/tiny-code--modeling_tiny.TinyModel")
    reference = resolve_class_reference(snapshot, "acme/tiny-code--modeling_tiny.TinyModel", code_revision=code_commit)
    assert reference.snapshot.source.location == "acme/tiny-code"
    assert reference.snapshot.source.endpoint == olah_server.endpoint
    assert reference.snapshot.revision.commit == code_commit
    assert reference.snapshot.read_text("helpers.py") == 'HELPER_VERSION = "x"\n'
    assert git(code_folder, "rev-parse", "HEAD") != code_commit


def test_code_revision_takes_code_from_older_commit(hub: tuple[OlahServer, str, str]) -> None:
    """Config values from TWO, every code file from ONE, each with ONE's blob id."""
    server, one, two = hub
    snapshot = fetch(REPO, revision=two)
    reference = resolve_class_reference(snapshot, "modeling_tiny.TinyModel", code_revision=one)
    assert snapshot.config()["width"] == 2
    assert reference.snapshot.revision.commit == one
    assert reference.snapshot.code_paths == CODE_FILES
    for path in CODE_FILES:
        assert reference.snapshot.files[path].git_blob == blob_at(server.repo_folder(REPO), one, path)


def test_altered_weights_fail_blob_id_check(
    hub: tuple[OlahServer, str, str], misreporting_proxy: RewritingProxy, isolated_env: Path
) -> None:
    server, _, two = hub
    misreporting_proxy.replace_body["model.safetensors"] = b"bad" * 512
    expected = blob_at(server.repo_folder(REPO), two, "model.safetensors")
    with pytest.raises(IntegrityError, match=f"git blob id of the received bytes is .* lists {expected}") as error:
        fetch(REPO, revision=two)
    assert error.value.path == "model.safetensors"
    assert [entry for entry in cache_entries(isolated_env) if entry.startswith("snapshots/")] == []
    assert sha256_hex(b"bad" * 512) not in [Path(entry).name for entry in cache_entries(isolated_env)]
    assert list((isolated_env / "tmp").iterdir()) == []
