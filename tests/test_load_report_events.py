"""The report of a load records the sandbox's runtime decisions, also for imports whose failure the code caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hubguard
from hubguard.audit import render

CONFIG_CODE = """\
from hubguard import PretrainedConfig


class FallbackConfig(PretrainedConfig):
    model_type = "test-fallback"

    def __init__(self, width=2, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""

# The optional kernel is not installed; the code takes its fallback path.
MODEL_CODE = """\
import torch

from hubguard import PreTrainedModel

from .configuration_fallback import FallbackConfig

try:
    import acme_fast_kernel
    HAVE_KERNEL = True
except ImportError:
    HAVE_KERNEL = False


class FallbackModel(PreTrainedModel):
    config_class = FallbackConfig

    def __init__(self, config):
        super().__init__(config)

    def forward(self, values):
        return values * 2
"""

POLICY = """\
extends = "default"
name = "warn-kernel"

[modules]
warn = ["acme_fast_kernel"]

[trial]
mode = "off"
"""


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "configuration_fallback.py").write_text(CONFIG_CODE)
    (folder / "modeling_fallback.py").write_text(MODEL_CODE)
    auto_map = {"AutoConfig": "configuration_fallback.FallbackConfig", "AutoModel": "modeling_fallback.FallbackModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "test-fallback", "auto_map": auto_map}))
    return folder


def test_runtime_import_event_recorded(repo: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    model = hubguard.AutoModel.from_pretrained(str(repo), trust_remote_code=True, policy=str(policy))
    report = model.hubguard_report
    assert report.verdict == "allow"
    events = [event for event in report.runtime_events if "acme_fast_kernel" in str(event.get("detail"))]
    assert events, report.runtime_events
    assert events[0]["path"] == "modeling_fallback.py"
    assert events[0]["line"] == 8
    assert events[0]["verdict"] == "warn"
    assert events[0]["policy_rule"] == 'modules.warn["acme_fast_kernel"]'
    data = json.loads(render(report, "json"))
    assert any("acme_fast_kernel" in event["detail"] for event in data["runtime_events"])
    assert "Sandbox events" in render(report, "text")
    assert "## Sandbox events" in render(report, "markdown")


def test_event_cap_counts_the_rest() -> None:
    from hubguard.audit.report import MAX_RUNTIME_EVENTS, AuditReport

    report = AuditReport.__new__(AuditReport)
    object.__setattr__(report, "runtime_events", [])
    for index in range(MAX_RUNTIME_EVENTS + 3):
        report.add_runtime_event({"operation": "import", "detail": f"event {index}"})
    assert len(report.runtime_events) == MAX_RUNTIME_EVENTS + 1
    assert report.runtime_events[-1] == {"operation": "events not recorded", "detail": "3", "verdict": "-"}
