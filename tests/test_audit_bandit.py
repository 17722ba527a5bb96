"""bandit inside the audit: same text, ``# nosec`` ignored, ids decided by the policy's [bandit] section."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubguard.audit._bandit import run_bandit
from hubguard.audit.policy import load_policy

EXEC_SILENCED = 'def f(code):\n    exec(code)  # nosec\n'
ASSERT_ONLY = "def f(x):\n    assert x > 0\n    return x\n"
SHELL_CALL = "import subprocess\n\ndef f(cmd):\n    subprocess.call(cmd, shell=True)\n"


def bandit_ids(code: str, policy: str | Path = "default") -> list[tuple[str, int, str]]:
    return sorted((f.rule_id, f.line, f.verdict) for f in run_bandit(code, "m.py", load_policy(policy)))


def test_nosec_ignored() -> None:
    assert bandit_ids(EXEC_SILENCED) == [("B102", 2, "deny")]


def test_skipped_id_absent() -> None:
    assert bandit_ids(ASSERT_ONLY) == []


def test_findings_carry_bandit_source() -> None:
    (finding,) = run_bandit(EXEC_SILENCED, "m.py", load_policy("default"))
    assert finding.source == "bandit"
    assert finding.policy_key == 'bandit.warn["B102"]'
    assert finding.cwe == 78
    assert finding.snippet == "exec(code)  # nosec"
    assert finding.severity.label == "high"


def test_warn_list(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('extends = "default"\n[bandit]\nwarn = ["B102"]\n')
    assert bandit_ids(EXEC_SILENCED, policy) == [("B102", 2, "warn")]


def test_skip_list(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('extends = "default"\n[bandit]\nskips = ["B602", "B404", "B607"]\n')
    assert bandit_ids(SHELL_CALL, policy) == []


def test_policy_key_of_an_id_decided_by_unknown_names_the_id(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('extends = "default"\n[bandit]\nunknown = "warn"\n')
    keys = {f.rule_id: (f.verdict, f.policy_key) for f in run_bandit(SHELL_CALL, "m.py", load_policy(policy))}
    assert keys["B602"] == ("warn", 'bandit.skips["B602"]')
    denied = {f.rule_id: (f.verdict, f.policy_key) for f in run_bandit(SHELL_CALL, "m.py", load_policy("default"))}
    assert denied["B602"] == ("deny", 'bandit.warn["B602"]')


def test_thresholds(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('extends = "default"\n[bandit]\nmin_severity = "high"\n')
    assert bandit_ids(SHELL_CALL, policy) == [("B602", 4, "deny")]


def test_disabled(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('extends = "default"\n[bandit]\nenabled = false\n')
    assert bandit_ids(SHELL_CALL, policy) == []


def test_reads_no_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text("import pickle\n")
    assert bandit_ids("X = 1\n") == []


def test_bandit_failure_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from bandit.core import node_visitor

    def broken(self, data):
        raise KeyError("plugin bug")

    monkeypatch.setattr(node_visitor.BanditNodeVisitor, "process", broken)
    (finding,) = run_bandit("X = 1\n", "m.py", load_policy("default"))
    assert (finding.rule_id, finding.verdict, finding.policy_key) == ("HG233", "warn", "bandit.enabled")
    assert "KeyError" in finding.message
