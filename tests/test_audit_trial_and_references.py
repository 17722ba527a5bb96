"""``hubguard audit`` follows code in other repositories and, with ``--trial``, rehearses the load in the jail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hubguard
from _olah import commit_files, init_repo

CONFIG_CODE = """\
from hubguard import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "tiny-ref"

    def __init__(self, offset=10, **kwargs):
        self.offset = offset
        super().__init__(**kwargs)
"""

MODEL_CODE = """\
import torch

from hubguard import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Linear(1, 1)

    def forward(self, values):
        return values + self.config.offset
"""

# Opens a socket to the given port on 127.0.0.1 when the module is imported.
CONNECTING_MODEL_CODE = MODEL_CODE + """

import socket as _socket

_socket.create_connection(("127.0.0.1", {port}), timeout=1)
"""

WEIGHTS_CONFIG = {
    "model_type": "tiny-ref",
    "offset": 10,
    "auto_map": {
        "AutoConfig": "acme/tiny-code--configuration_tiny.TinyConfig",
        "AutoModel": "acme/tiny-code--modeling_tiny.TinyModel",
    },
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


def _publish_pair(root: Path, model_code: str) -> tuple[str, str, str]:
    """Create git repos acme/tiny-code and acme/tiny-weights; return (weights URL, weights commit, code commit)."""
    code_repo = init_repo(root / "acme" / "tiny-code")
    code_commit = commit_files(code_repo, {"configuration_tiny.py": CONFIG_CODE, "modeling_tiny.py": model_code})
    weights_repo = init_repo(root / "acme" / "tiny-weights")
    weights_commit = commit_files(weights_repo, {"config.json": json.dumps(WEIGHTS_CONFIG)})
    return f"git+file://{weights_repo}", weights_commit, code_commit


def test_audit_includes_referenced_code_repository(tmp_path: Path) -> None:
    source, commit, code_commit = _publish_pair(tmp_path, MODEL_CODE)
    report = hubguard.audit(source, revision=commit, code_revision=code_commit)
    audited = {(entry.source, entry.resolved_revision) for entry in report.sources}
    assert (source, commit) in audited
    assert any(location.endswith("acme/tiny-code") and revision == code_commit for location, revision in audited)
    paths = {file.path for file in report.files}
    assert any(path.endswith("modeling_tiny.py") for path in paths), paths
    assert report.verdict == "allow"


def test_audit_denies_hostile_referenced_code(tmp_path: Path) -> None:
    source, commit, code_commit = _publish_pair(tmp_path, CONNECTING_MODEL_CODE.format(port=9))
    report = hubguard.audit(source, revision=commit, code_revision=code_commit)
    assert report.verdict == "deny"
    denied = [finding for finding in report.blocking_findings() if finding.path.endswith("tiny-code::modeling_tiny.py")]
    assert denied, report.findings


def test_audit_without_code_pin_names_commit(tmp_path: Path) -> None:
    source, commit, code_commit = _publish_pair(tmp_path, MODEL_CODE)
    with pytest.raises(hubguard.UnpinnedRevisionError, match=code_commit):
        hubguard.audit(source, revision=commit)


@pytest.mark.slow
def test_trial_passes_benign_code(tmp_path: Path) -> None:
    source, commit, code_commit = _publish_pair(tmp_path, MODEL_CODE)
    report = hubguard.audit(source, revision=commit, code_revision=code_commit, trial=True)
    assert report.trial is not None
    assert report.trial["verdict"] == "pass", report.trial["reason"]
    assert report.verdict == "allow"


@pytest.mark.slow
def test_cli_trial_reports_connection_attempt(tmp_path: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    source, commit, code_commit = _publish_pair(tmp_path, CONNECTING_MODEL_CODE.format(port=port))
    policy = tmp_path / "warn-sockets.toml"
    # Lets the static audit pass the socket import, so only the trial can stop it.
    policy.write_text('extends = "default"\nname = "sockets-warn"\n\n[modules]\nwarn = ["socket"]\n')
    completed = subprocess.run(
        [sys.executable, "-m", "hubguard", "audit", source, "--revision", commit, "--code-revision", code_commit,
         "--policy", str(policy), "--trial", "--format", "json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HUBGUARD_CACHE": str(tmp_path / "cache")},
    )
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert completed.returncode == 1, completed.stderr
    data = json.loads(completed.stdout)
    assert data["trial"]["verdict"] == "deny"
    kinds = {event["kind"] for event in data["trial"]["events"]}
    assert kinds & {"socket.connect", "import:denied", "socket.__new__", "socket.create_connection"}, kinds
    assert "trial deny" in completed.stderr
