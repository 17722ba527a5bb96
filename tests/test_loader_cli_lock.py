"""Tests of ``hubguard lock``: the file it writes and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _fixtures_loader import isolated_env, make_two_commit_repo  # noqa: F401  # fixture
from hubguard.cli import main


def test_lock_writes_every_file(isolated_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "acme" / "tiny"
    one, _ = make_two_commit_repo(work)
    output = tmp_path / "out.lock"
    assert main(["lock", f"git+file://{work}", "--revision", one, "--output", str(output)]) == 0
    document = json.loads(output.read_text())
    entry = document["repositories"][0]
    assert document["hubguard_lock"] == 1
    assert entry["source"] == f"git+file://{work}"
    assert entry["commit"] == one
    assert [f["path"] for f in entry["files"]] == [
        "config.json",
        "configuration_tiny.py",
        "helpers.py",
        "model.safetensors",
        "modeling_tiny.py",
    ]
    assert capsys.readouterr().out == f"{output}\n"


def test_lock_refuses_branch_with_exit_code_3(isolated_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "acme" / "tiny"
    _, two = make_two_commit_repo(work)
    assert main(["lock", f"git+file://{work}", "--revision", "main", "--output", str(tmp_path / "x.lock")]) == 3
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"hubguard: error: [HG101] Revision 'main' is not pinned for git+file://{work}: it resolves to {two} now")
    assert not (tmp_path / "x.lock").exists()


@pytest.mark.parametrize("command", ["lock", "audit"])
def test_unpinned_hint_names_the_python_keyword_and_the_cli_ways(
    command: str, isolated_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "acme" / "tiny"
    make_two_commit_repo(work)
    assert main([command, f"git+file://{work}", "--revision", "main", "-o", str(tmp_path / "out")]) == 3
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert (
        "allow floating revisions: allow_floating=True in Python, --allow-floating for hubguard lock, "
        "or a policy file with [revisions] allow_floating = true (--policy FILE) for hubguard audit and hubguard load"
    ) in stderr


def test_missing_revision_hint_also_names_floating() -> None:
    from hubguard.loader.revisions import unpinned_error

    error = unpinned_error(None, None, source="acme/tiny")
    assert error.rule_id == "HG101"
    assert error.hint is not None
    assert error.hint.startswith('pass revision="<commit>" (CLI: --revision <commit>) with a full commit id; ')
    assert "--allow-floating for hubguard lock" in error.hint
