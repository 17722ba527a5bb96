"""Command-line faults a first-time user hit: exact exit codes and messages, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubguard.cli import main

CLEAN = "import torch\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the ``hubguard`` and root loggers; undo it for the next test."""
    package, root = logging.getLogger("hubguard"), logging.getLogger()
    saved = (package.level, package.handlers[:], package.propagate, root.level)
    yield
    package.setLevel(saved[0])
    package.handlers[:] = saved[1]
    package.propagate = saved[2]
    root.setLevel(saved[3])


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(CLEAN)
    return folder


def _no_traceback(err: str) -> str:
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("position", ["before", "after"])
def test_verbose_flag_before_or_after_the_subcommand(
    position: str, clean_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["-vv", "audit", str(clean_repo)] if position == "before" else ["audit", str(clean_repo), "-vv"]
    assert main(arguments) == 0
    err = _no_traceback(capsys.readouterr().err)
    assert logging.getLogger("hubguard").level == logging.DEBUG
    assert f"INFO hubguard.audit: audit of {clean_repo} with policy default: allow" in err


@pytest.mark.parametrize("position", ["before", "after"])
def test_quiet_flag_before_or_after_the_subcommand(
    position: str, clean_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["-q", "audit", str(clean_repo)] if position == "before" else ["audit", str(clean_repo), "-q"]
    assert main(arguments) == 0
    assert logging.getLogger("hubguard").level == logging.ERROR
    assert "INFO" not in capsys.readouterr().err


def test_no_verbosity_flag_logs_warnings(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(clean_repo)]) == 0
    assert logging.getLogger("hubguard").level == logging.WARNING
    assert capsys.readouterr().err == f"OK: {clean_repo}: allow (0 blocking of 0 findings)\n"
