"""Report formats: the same data in text, JSON, SARIF 2.1.0 and Markdown, deterministic and complete."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hubguard._version import __version__
from hubguard.audit import FORMATS, audit, render
from hubguard.audit._bandit import bandit_version
from hubguard.audit.findings import Severity
from hubguard.audit.report import REPORT_SCHEMA_VERSION
from hubguard.errors import PolicyViolation

MODELING = """\
import os
import torch

from .configuration_x import XConfig


def load(path):
    return torch.load(path)


def join(a, b):
    return os.path.join(a, b)


def review():
    return torch.jit.load("m.pt")
"""

CONFIGURATION = "from transformers import PretrainedConfig\n\n\nclass XConfig(PretrainedConfig):\n    model_type = 'x'\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def report(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "modeling_x.py").write_text(MODELING)
    (repo / "configuration_x.py").write_text(CONFIGURATION)
    config = {"model_type": "x", "auto_map": {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}}
    (repo / "config.json").write_text(json.dumps(config))
    return audit(str(repo))


def fixed(report):
    """Return the report with its run-dependent fields (time, durations) fixed."""
    return replace(report, created_at="2026-01-01T00:00:00Z", stage_seconds={"bandit": 0.5, "hubguard rules": 0.25})


class TestReport:
    def test_verdict_and_blocking(self, report) -> None:
        assert report.verdict == "deny"
        assert [(f.path, f.line, f.rule_id) for f in report.blocking_findings()] == [("modeling_x.py", 8, "HG211")]

    def test_fields(self, report) -> None:
        data = report.to_dict()
        assert data["schema_version"] == REPORT_SCHEMA_VERSION
        assert data["policy"]["name"] == "default"
        assert len(data["policy"]["sha256"]) == 64
        assert data["tool"] == {"hubguard": __version__, "bandit": bandit_version()}
        assert data["resolved_revision"].startswith("sha256:")
        assert data["requested_revision"] is None
        assert [entry["path"] for entry in data["files"]] == ["config.json", "configuration_x.py", "modeling_x.py"]
        assert all(len(entry["sha256"]) == 64 for entry in data["files"])
        assert {"hubguard rules", "bandit", "weights", "fetch"} <= set(data["stage_seconds"])
        assert data["created_at"].endswith("Z")
        assert data["unsafe"] is False
        assert ("modeling_x.py", 2, "torch", "unguarded", "allow") in [
            (i["path"], i["line"], i["module"], i["placement"], i["verdict"]) for i in data["imports"]
        ]
        assert data["dependencies"] == {"required": ["os", "torch", "transformers"], "optional": []}

    def test_fail_on_low_blocks_warnings(self, report) -> None:
        stricter = report.with_fail_on(Severity.LOW)
        assert [(f.line, f.rule_id) for f in stricter.blocking_findings()] == [(8, "HG211"), (16, "HG202")]

    def test_raise_for_verdict(self, report) -> None:
        with pytest.raises(PolicyViolation, match=r"1 blocking finding; first: \[HG211\] call of 'torch.load'") as caught:
            report.raise_for_verdict()
        assert caught.value.location() == "modeling_x.py:8"
        assert 'modules.deny["torch.load"]' in caught.value.diagnostics()

    def test_allowed_report_does_not_raise(self, report) -> None:
        allowed = replace(report, findings=())
        assert allowed.verdict == "allow"
        allowed.raise_for_verdict()


class TestFormats:
    @pytest.mark.parametrize("name", FORMATS)
    def test_deterministic(self, report, name: str) -> None:
        assert render(fixed(report), name) == render(fixed(report), name)

    @pytest.mark.parametrize("name", FORMATS)
    def test_same_bytes_same_output(self, report, tmp_path: Path, name: str) -> None:
        again = audit(report.source)
        assert render(fixed(again), name) == render(fixed(report), name)

    def test_unknown_format(self, report) -> None:
        with pytest.raises(ValueError, match="unknown report format 'yaml'; use one of text, json, sarif, markdown"):
            render(report, "yaml")  # type: ignore[arg-type]  # the error path is under test

    def test_json_round_trip(self, report) -> None:
        data = json.loads(render(report, "json"))
        assert data["verdict"] == "deny"
        assert data["findings"][0]["rule_id"] == "HG211"
        assert data["findings"][0]["blocking"] is True

    def test_sarif_shape(self, report) -> None:
        log = json.loads(render(report, "sarif"))
        assert log["version"] == "2.1.0"
        assert log["$schema"].endswith("sarif-2.1.0.json")
        (run,) = log["runs"]
        rules = run["tool"]["driver"]["rules"]
        assert [rule["id"] for rule in rules] == ["HG202", "HG211"]
        assert rules[1]["properties"]["tags"] == ["security", "external/cwe/cwe-502"]
        assert rules[1]["properties"]["security-severity"] == "8.0"
        results = run["results"]
        assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
            ("HG211", "error", 8),
            ("HG202", "warning", 16),
        ]
        for result in results:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["partialFingerprints"]
            assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "modeling_x.py"
        assert {artifact["location"]["uri"] for artifact in run["artifacts"]} == {"config.json", "configuration_x.py", "modeling_x.py"}
        assert run["properties"]["policy"]["name"] == "default"

    def test_sarif_whole_file_finding_starts_at_line_one(self, report) -> None:
        first = report.findings[0]
        whole_file = replace(report, findings=(replace(first, line=0, column=0),))
        log = json.loads(render(whole_file, "sarif"))
        region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] == 1
        assert "startColumn" not in region

    def test_text_contains_table(self, report) -> None:
        text = render(report, "text")
        assert "hubguard audit: DENY" in text
        assert "modeling_x.py:8:12" in text
        assert "HG211" in text
        assert "\x1b[" not in text

    def test_markdown(self, report) -> None:
        markdown = render(report, "markdown")
        assert markdown.startswith("# hubguard audit: **DENY**\n")
        assert "| yes | HG211 | high | `modeling_x.py:8:12` |" in markdown

    @pytest.mark.parametrize("name", FORMATS)
    def test_trial_section(self, report, name: str) -> None:
        report.trial = {"verdict": "pass", "events": ["open:read"], "seconds": 1.5}
        text = render(report, name)
        assert "open:read" in text
        if name == "json":
            assert json.loads(text)["trial"]["verdict"] == "pass"
        if name == "markdown":
            assert "## Trial" in text
        if name == "text":
            assert "Trial" in text

    @pytest.mark.parametrize("name", FORMATS)
    def test_no_trial_section_when_absent(self, report, name: str) -> None:
        assert "Trial" not in render(report, name)
        assert '"trial"' not in render(report, name)


class TestReportSchema:
    def test_report_validates(self, report) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        from importlib import resources

        schema = json.loads(resources.files("hubguard").joinpath("schemas/report-1.json").read_text())
        report.trial = {"verdict": "pass"}
        jsonschema.validate(json.loads(render(report, "json")), schema)

    def test_schema_rejects_unknown_verdict(self, report) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        from importlib import resources

        schema = json.loads(resources.files("hubguard").joinpath("schemas/report-1.json").read_text())
        data = report.to_dict() | {"verdict": "maybe"}
        with pytest.raises(jsonschema.ValidationError, match="'maybe' is not one of"):
            jsonschema.validate(data, schema)
