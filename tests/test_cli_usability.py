"""Command-line faults a first-time user hit: exact exit codes and messages, never a traceback."""

from __future__ import annotations

import json
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


# --- output files: folders created, unwritable paths exit 2 --------------------------------


def test_lock_creates_the_output_folder(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "missing" / "dir" / "x.lock"
    assert main(["lock", str(clean_repo), "-o", str(output)]) == 0
    assert json.loads(output.read_text())["repositories"][0]["source"] == str(clean_repo)
    assert capsys.readouterr().out == f"{output}\n"
    assert sorted(path.name for path in output.parent.iterdir()) == ["x.lock"]


@pytest.mark.parametrize(
    "command",
    [
        ["lock", "{source}", "-o", "{output}"],
        ["audit", "{source}", "-o", "{output}"],
        ["scan", "{source}", "--format", "json", "-o", "{output}"],
    ],
    ids=["lock", "audit", "scan"],
)
def test_unwritable_output_exits_2(
    command: list[str], clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    output = blocker / "out.txt"
    arguments = [part.format(source=clean_repo, output=output) for part in command]
    assert main(arguments) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert "cannot write the " in err
    assert f" to {output}: " in err
    assert "fix: pass an output path in a folder you can write to" in err


def test_output_path_that_is_a_folder_exits_2(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(clean_repo), "-o", str(tmp_path)]) == 2
    err = _no_traceback(capsys.readouterr().err)
    assert f"cannot write the text report to {tmp_path}: {tmp_path} is a directory" in err
    assert not any(path.name.endswith(".tmp") for path in tmp_path.iterdir())


def test_lock_file_write_raises_output_file_error(clean_repo: Path, tmp_path: Path) -> None:
    import hubguard

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(hubguard.OutputFileError, match=r"^cannot write the lock file to .*a-file/x\.lock: "):
        hubguard.lock(str(clean_repo)).write(blocker / "x.lock")
