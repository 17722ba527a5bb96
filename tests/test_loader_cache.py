"""Tests of the content-addressed cache: concurrent loads, damaged blobs, interrupted writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _fixtures_loader import cache_entries, isolated_env, tiny_model_files  # noqa: F401  # fixture
from _olah import commit_files, init_repo
from hubguard.loader import fetch
from hubguard.loader.cache import ContentCache, default_cache_root

LOAD_AND_PRINT = """
import json, sys
from hubguard.loader import fetch
snapshot = fetch(sys.argv[1], revision=sys.argv[2])
print(json.dumps({"code_id": snapshot.code_id(), "weights": snapshot.files["model.safetensors"].sha256,
                  "bytes": len(snapshot.read_bytes("model.safetensors"))}))
"""


@pytest.fixture
def weighty_repo(tmp_path: Path) -> tuple[str, str, bytes]:
    """A git repo whose weights file is 4 MiB, so concurrent writes overlap."""
    work = init_repo(tmp_path / "acme" / "weighty")
    weights = os.urandom(4 * 1024 * 1024)
    commit = commit_files(work, tiny_model_files("one", 1, weights=weights))
    return f"git+file://{work}", commit, weights


def test_four_processes_load_same_repo(isolated_env: Path, weighty_repo: tuple[str, str, bytes]) -> None:
    source, commit, weights = weighty_repo
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AND_PRINT, source, commit], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
        )
        for _ in range(4)
    ]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr.decode()
    outputs = [json.loads(stdout) for stdout, _ in results]
    assert all(output == outputs[0] for output in outputs)
    assert outputs[0]["weights"] == hashlib.sha256(weights).hexdigest()
    assert outputs[0]["bytes"] == len(weights)
    for entry in cache_entries(isolated_env):
        if entry.startswith("blobs/"):
            assert hashlib.sha256((isolated_env / entry).read_bytes()).hexdigest() == Path(entry).name
        else:
            json.loads((isolated_env / entry).read_text())
    assert os.listdir(isolated_env / "tmp") == []


def test_damaged_blob_is_fetched_again(isolated_env: Path, weighty_repo: tuple[str, str, bytes]) -> None:
    source, commit, weights = weighty_repo
    first = fetch(source, revision=commit)
    blob = first.blob_paths["model.safetensors"]
    blob.chmod(0o644)
    blob.write_bytes(b"\0" * len(weights))
    again = fetch(source, revision=commit)
    assert again.read_bytes("model.safetensors") == weights
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == first.files["model.safetensors"].sha256


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    class FailingStream(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection lost")
            return b"x" * 1024

    cache = ContentCache(tmp_path / "cache")
    with pytest.raises(OSError, match="connection lost"):
        cache.put_stream(FailingStream())
    assert cache_entries(cache.root) == []
    assert os.listdir(cache.root / "tmp") == []


def test_blob_is_read_only_and_named_by_sha256(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path / "cache")
    stored = cache.put_bytes(b"hello")
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert stored.path == tmp_path / "cache" / "blobs" / "sha256" / stored.sha256[:2] / stored.sha256
    assert stored.path.stat().st_mode & 0o777 == 0o444
    assert cache.put_bytes(b"hello") == stored


def test_default_root_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUBGUARD_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / ".cache" / "hubguard"
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_root() == tmp_path / "elsewhere"
