"""A git checkout handed over by someone else: its settings, index flags and refs must not change what loads."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from hubguard.loader import fetch

_IDENTITY = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost",
}


def _git(folder: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, env={**os.environ, **_IDENTITY}
    )
    return completed.stdout.strip()


def _checkout(folder: Path, files: dict[str, bytes]) -> str:
    folder.mkdir(parents=True)
    _git(folder, "init", "-q", "-b", "main")
    for path, data in files.items():
        (folder / path).write_bytes(data)
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "one")
    return _git(folder, "rev-parse", "HEAD")


FILES = {
    "config.json": json.dumps({"model_type": "x", "auto_map": {"AutoModel": "modeling_x.X"}}).encode(),
    "modeling_x.py": b"class X:\n    pass\n",
    "model.safetensors": b"committed weights",
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


def test_fsmonitor_setting_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "fsmonitor-ran"
    work = tmp_path / "repo"
    commit = _checkout(work, FILES)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    _git(work, "config", "core.fsmonitor", str(hook))
    snapshot = fetch(str(work))
    assert snapshot.revision.commit == commit
    assert not marker.exists()


def test_assume_unchanged_weights_swap_detected(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    commit = _checkout(work, FILES)
    (work / "model.safetensors").write_bytes(b"swapped weights!!")
    _git(work, "update-index", "--assume-unchanged", "model.safetensors")
    snapshot = fetch(str(work))
    assert snapshot.revision.commit != commit
    assert snapshot.revision.commit.startswith("sha256:")


def test_ignored_weights_are_not_head(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    files = {**FILES, ".gitignore": b"extra.safetensors\n"}
    commit = _checkout(work, files)
    (work / "extra.safetensors").write_bytes(b"not in the commit")
    snapshot = fetch(str(work))
    assert snapshot.revision.commit != commit
    assert snapshot.revision.commit.startswith("sha256:")


def test_replace_ref_cannot_swap_pinned_commit(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    reviewed = _checkout(work, FILES)
    (work / "modeling_x.py").write_bytes(b"class X:\n    swapped = True\n")
    _git(work, "commit", "-q", "-am", "two")
    other = _git(work, "rev-parse", "HEAD")
    _git(work, "replace", reviewed, other)
    snapshot = fetch(str(work), revision=reviewed)
    assert snapshot.revision.commit == reviewed
    assert snapshot.read_text("modeling_x.py") == "class X:\n    pass\n"
