"""Repositories and environment fixtures for the loader tests.

``tiny_model_files(word, width)`` is a small remote-code model: ``config.json`` with an
``auto_map``, ``configuration_tiny.py``, ``modeling_tiny.py`` that imports
``configuration_tiny`` and ``helpers`` relatively, and a weights file. Each version word
appears in every code file, so a test can tell which commit each file came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _olah import commit_files, free_port, git, init_repo

CODE_FILES = ("configuration_tiny.py", "helpers.py", "modeling_tiny.py")


def tiny_model_files(word: str, width: int, *, weights: bytes | None = None) -> dict[str, str | bytes]:
    """Return the files of the tiny model at version ``word`` with config width ``width``."""
    config = {
        "model_type": "acme-tiny",
        "width": width,
        "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"},
    }
    return {
        "config.json": json.dumps(config, indent=2),
        "configuration_tiny.py": f'CODE_VERSION = "{word}"\n\n\nclass TinyConfig:\n    width = {width}\n',
        "helpers.py": f'HELPER_VERSION = "{word}"\n',
        "modeling_tiny.py": (
            "from .configuration_tiny import TinyConfig\n"
            "from .helpers import HELPER_VERSION\n\n"
            f'CODE_VERSION = "{word}"\n\n\nclass TinyModel:\n    config_class = TinyConfig\n'
        ),
        "model.safetensors": weights if weights is not None else word.encode() * 512,
    }


def make_two_commit_repo(folder: Path) -> tuple[str, str]:
    """Create a git repo with commit ONE (word "one", width 1) and main = TWO ("two", 2), tag ``v-two``."""
    init_repo(folder)
    one = commit_files(folder, tiny_model_files("one", 1), message="first version")
    two = commit_files(folder, tiny_model_files("two", 2), message="second version")
    git(folder, "tag", "v-two", two)
    return one, two


def blob_at(folder: Path, commit: str, path: str) -> str:
    """Return the git blob id of ``path`` at ``commit``, as git itself reports it."""
    return git(folder, "rev-parse", f"{commit}:{path}")


def sha256_hex(data: bytes) -> str:
    """Return the sha256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def cache_entries(cache_root: Path) -> list[str]:
    """List every blob and manifest in a hubguard cache, relative to its root."""
    found = []
    for folder in ("blobs", "snapshots"):
        base = cache_root / folder
        if base.exists():
            found += [p.relative_to(cache_root).as_posix() for p in base.rglob("*") if p.is_file()]
    return sorted(found)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the hubguard and huggingface_hub caches into ``tmp_path`` and the Hub at a closed local port.

    Returns the hubguard cache root. Nothing can reach a host other than 127.0.0.1.
    """
    cache = tmp_path / "hubguard-cache"
    monkeypatch.setenv("HUBGUARD_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield cache


__all__ = [
    "CODE_FILES",
    "blob_at",
    "cache_entries",
    "isolated_env",
    "make_two_commit_repo",
    "sha256_hex",
    "tiny_model_files",
]
