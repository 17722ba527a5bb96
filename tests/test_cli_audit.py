"""``hubguard audit``, ``scan`` and ``policy``: exit codes, output files, and no imports of audited code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubguard.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "custom_resnet"

CLEAN = "import torch\nimport torch.nn as nn\n\n\nclass Block(nn.Module):\n    pass\n"
HOSTILE = "import os\n\n\ndef run():\n    os.system('touch marker')\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(CLEAN)
    return folder


@pytest.fixture
def hostile_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(HOSTILE)
    return folder


def test_audit_allowed_exit_0(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(clean_repo), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["verdict"] == "allow"
    assert captured.err == f"OK: {clean_repo}: allow (0 blocking of 0 findings)\n"


def test_audit_denied_exit_1(hostile_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(hostile_repo)]) == 1
    captured = capsys.readouterr()
    assert "HG213" in captured.out
    assert captured.err == f"FAIL: {hostile_repo}: deny (3 blocking of 3 findings)\n"
    assert not (hostile_repo / "marker").exists()


def test_bad_policy_exit_2(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text('extends = "default"\n[code]\nmonkey_patch = "sometimes"\n')
    assert main(["audit", str(clean_repo), "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert f"[HG403] {policy}:3: code.monkey_patch: got 'sometimes'" in err
    assert 'fix: code.monkey_patch must be one of "allow", "warn", "deny"' in err


def test_unknown_format_exit_2(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["audit", str(clean_repo), "--format", "yaml"])
    assert caught.value.code == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_missing_source_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tmp_path / "nope")]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_fail_on_low(clean_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clean_repo / "modeling_x.py").write_text(CLEAN + "\n\ndef f():\n    return torch.jit.load('m.pt')\n")
    assert main(["audit", str(clean_repo)]) == 0
    assert main(["audit", str(clean_repo), "--fail-on", "low"]) == 1


def test_output_file(hostile_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "reports" / "audit.sarif"
    assert main(["audit", str(hostile_repo), "--format", "sarif", "--output", str(output)]) == 1
    assert capsys.readouterr().out == ""
    log = json.loads(output.read_text())
    assert [result["ruleId"] for result in log["runs"][0]["results"]] == ["B605", "B607", "HG213"]
    assert [path.name for path in output.parent.iterdir()] == ["audit.sarif"]


def test_scan_files_and_folders(clean_repo: Path, hostile_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(clean_repo)]) == 0
    assert main(["scan", str(EXAMPLE / "configuration_resnet.py"), str(EXAMPLE / "modeling_resnet.py"), "--policy", "strict"]) == 0
    capsys.readouterr()
    assert main(["scan", str(clean_repo), str(hostile_repo / "modeling_x.py"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [source["source"] for source in data["sources"]] == [str(clean_repo), str(hostile_repo / "modeling_x.py")]


def test_scan_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "absent.py")]) == 3
    assert "absent.py does not exist" in capsys.readouterr().err


def test_policy_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('extends = "strict"\nname = "ci"\n')
    assert main(["policy", "check", str(good)]) == 0
    assert capsys.readouterr().err.startswith(f"OK: {good}: policy 'ci', sha256 ")
    bad = tmp_path / "bad.toml"
    bad.write_text("extends = \n")
    assert main(["policy", "check", str(bad)]) == 2
    assert "policy file is not valid TOML" in capsys.readouterr().err


def test_policy_show_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "strict"]) == 0
    assert 'name = "strict"' in capsys.readouterr().out
    assert main(["policy", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "hubguard policy file"


def test_scan_imports_no_torch_timm_or_audited_code(tmp_path: Path) -> None:
    """``python -X importtime -m hubguard scan`` never imports torch, timm or the scanned modules."""
    marker = tmp_path / "imported-marker"
    folder = tmp_path / "probe_repo"
    folder.mkdir()
    (folder / "modeling_probe.py").write_text(
        f"import timm\nimport torch\nopen({str(marker)!r}, 'w').close()\n"
    )
    environment = {**os.environ, "HUBGUARD_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hubguard", "scan", str(folder), str(EXAMPLE / "modeling_resnet.py")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "hubguard.audit.engine" in imported
    assert [name for name in imported if name.split(".")[0] in {"torch", "timm", "modeling_probe", "modeling_resnet"}] == []
    assert not marker.exists()


def test_unsafe_skip_bandit(hostile_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(hostile_repo), "--unsafe-skip-bandit", "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert "WARNING hubguard.audit: UNSAFE: bandit is skipped on request" in captured.err
    data = json.loads(captured.out)
    assert data["unsafe"] is True
    assert data["tool"]["bandit"] == "skipped"
    assert [finding["rule_id"] for finding in data["findings"]] == ["HG213"]


def test_integrity_failure_exit_3(clean_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hubguard

    lock_file = tmp_path / "hubguard.lock"
    hubguard.lock(str(clean_repo)).write(lock_file)
    (clean_repo / "modeling_x.py").write_text(CLEAN + "\n# edited after the lock was written\n")
    assert main(["audit", str(clean_repo), "--lock", str(lock_file)]) == 3
    assert "[HG103] modeling_x.py: sha256 is " in capsys.readouterr().err
