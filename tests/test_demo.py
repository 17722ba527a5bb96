"""``hubguard demo`` end to end, and git+file:// URLs that do not name an absolute path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hubguard


@pytest.mark.slow
def test_demo_small_with_relative_work_dir(tmp_path: Path) -> None:
    env = {**os.environ, "HUBGUARD_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, "-m", "hubguard", "demo", "--small", "--work-dir", "demo"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "demo finished: 4/4 steps behaved as expected" in completed.stdout
    assert f"git+file://{tmp_path / 'demo' / 'custom-resnet'}" in completed.stdout
    assert "logits equal to the directly built module: True" in completed.stdout
    assert not (tmp_path / "demo" / "hostile-marker").exists()
    assert "Traceback" not in completed.stderr


def test_relative_git_file_url_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repo").mkdir()
    with pytest.raises(hubguard.RepositoryNotFoundError, match="does not name an absolute path") as caught:
        hubguard.audit("git+file://repo", revision="0" * 40)
    assert f"git+file://{tmp_path / 'repo'}" in caught.value.diagnostics()
