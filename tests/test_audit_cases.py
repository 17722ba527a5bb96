"""Audits of whole repositories: the recorded bug cases, the project's example, and the code closure."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import hubguard
from hubguard.audit import audit, audit_snapshots, render, snapshot_of_paths
from hubguard.audit.policy import load_policy
from hubguard.errors import PolicyViolation
from hubguard.loader.snapshot import PinnedRevision, Snapshot, SnapshotFile, SourceRef

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "custom_resnet"

SCAN_LOADS = '''\
# Scanned only, never executed. Line numbers matter.
import torch
from torch import load as tload


def load_safe(path):
    return torch.load(path, weights_only=True)


def load_default(path):
    return torch.load(path)


def load_explicit_unsafe(path):
    return torch.load(path, weights_only=False)


def load_torchscript(path):
    return torch.jit.load(path)


def build_kernel(sources):
    return torch.utils.cpp_extension.load(name="tiny_kernel", sources=sources)


def load_alias(path):
    return tload(path)


def load_flag(path, flag):
    return torch.load(path, weights_only=flag)
'''

SCAN_ASSERTS = '''\
# Ordinary shape checks as found in modeling files.
def project(x, w):
    assert len(x) == len(w), "input and weight lengths differ"
    return sum(a * b for a, b in zip(x, w))
'''

TINY_CONFIG = '''\
from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "acme-tiny"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
'''

OPTIONAL_IMPORTS = '''\
import math

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

try:
    import acme_fastkern as fastkern
    HAVE_FASTKERN = True
except (ImportError, ModuleNotFoundError):
    fastkern = None
    HAVE_FASTKERN = False

try:
    from acme_fused_ops import (
        fused_norm,
        fused_scale,
    )
except ImportError:
    fused_norm = None


def kernels_enabled():
    return False


if kernels_enabled():
    import acme_if_guarded


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, values):
        if HAVE_FASTKERN:
            return fastkern.scale(values, math.pi)
        return values

    def export_helper(self):
        import acme_deferred
        return acme_deferred.VERSION
'''

HARD_DEPENDENCY = '''\
import math

import acme_required_dep

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyModel(PreTrainedModel):
    config_class = TinyConfig
'''

GUARDED_SOCKET = '''\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

# Guarded like an optional dependency.
try:
    import socket
except ImportError:
    socket = None


class TinyModel(PreTrainedModel):
    config_class = TinyConfig
'''

HELPERS = '''\
def describe(width):
    handle = open(MARKER, "w")
    handle.close()
    return "width=%d" % width
'''

CLEAN_ENTRY = '''\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig
from .helpers import describe


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        return describe(self.config.width)
'''

LAZY_ENTRY = '''\
# The helper is pulled in at call time.
import importlib

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class LazyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        return importlib.import_module(".helpers", __package__).describe(1)
'''


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))


def make_repo(folder: Path, files: dict[str, str], auto_model: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    config = {
        "model_type": "acme-tiny",
        "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": auto_model},
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def by_line(report, path: str) -> dict[int, list[tuple[str, bool]]]:
    lines: dict[int, list[tuple[str, bool]]] = {}
    for finding in report.findings:
        if finding.path == path:
            lines.setdefault(finding.line, []).append((finding.rule_id, finding in report.blocking_findings()))
    return lines


class TestBanditNoise:
    @pytest.fixture
    def report(self, tmp_path: Path):
        folder = tmp_path / "noise"
        folder.mkdir()
        (folder / "scan_loads.py").write_text(SCAN_LOADS, encoding="utf-8")
        (folder / "scan_asserts.py").write_text(SCAN_ASSERTS, encoding="utf-8")
        return audit(str(folder))

    def test_deserialization_lines(self, report) -> None:
        lines = by_line(report, "scan_loads.py")
        deserialization = sorted(line for line, found in lines.items() if ("HG211", True) in found)
        assert deserialization == [11, 15, 27, 31]

    def test_safe_and_torchscript_lines(self, report) -> None:
        lines = by_line(report, "scan_loads.py")
        assert 7 not in lines
        assert ("HG211", True) not in lines.get(19, [])
        assert all(not blocking for _, blocking in lines.get(19, []))

    def test_native_code_line(self, report) -> None:
        lines = by_line(report, "scan_loads.py")
        assert lines[23] == [("HG212", True)]

    def test_asserts_not_blocking(self, report) -> None:
        assert by_line(report, "scan_asserts.py") == {}

    def test_bandit_b614_not_used(self, report) -> None:
        assert [finding for finding in report.findings if finding.rule_id == "B614"] == []


class TestOptionalImports:
    @pytest.fixture
    def acme_policy(self, tmp_path: Path):
        path = tmp_path / "acme.toml"
        path.write_text('extends = "default"\nname = "acme"\n[modules]\nallow = ["acme_*"]\n', encoding="utf-8")
        return load_policy(path)

    def test_optional_imports_classified(self, tmp_path: Path, acme_policy) -> None:
        repo = make_repo(tmp_path / "repo", {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny.py": OPTIONAL_IMPORTS}, "modeling_tiny.TinyModel")
        report = audit(str(repo), policy=acme_policy)
        assert report.dependencies.required == ("math", "transformers")
        assert report.dependencies.optional == ("acme_deferred", "acme_fastkern", "acme_fused_ops", "acme_if_guarded")
        assert report.missing_required() == []
        assert report.verdict == "allow"

    def test_hard_dependency_missing(self, tmp_path: Path, acme_policy) -> None:
        files = {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny_hard_dep.py": HARD_DEPENDENCY}
        repo = make_repo(tmp_path / "repo", files, "modeling_tiny_hard_dep.TinyModel")
        report = audit(str(repo), policy=acme_policy)
        assert report.missing_required() == ["acme_required_dep"]

    def test_guarded_socket_refused(self, tmp_path: Path) -> None:
        files = {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny_guarded_socket.py": GUARDED_SOCKET}
        repo = make_repo(tmp_path / "repo", files, "modeling_tiny_guarded_socket.TinyModel")
        report = audit(str(repo))
        assert by_line(report, "modeling_tiny_guarded_socket.py") == {7: [("HG214", True)]}
        with pytest.raises(PolicyViolation, match="import of 'socket' \\(guarded\\) is denied") as caught:
            report.raise_for_verdict()
        assert caught.value.location() == "modeling_tiny_guarded_socket.py:7"
        assert caught.value.report is report


class TestClosure:
    def test_helper_in_closure_is_scanned(self, tmp_path: Path) -> None:
        files = {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny.py": CLEAN_ENTRY, "helpers.py": HELPERS}
        repo = make_repo(tmp_path / "repo", files, "modeling_tiny.TinyModel")
        report = audit(str(repo))
        assert report.verdict == "deny"
        assert [(f.path, f.line, f.rule_id) for f in report.blocking_findings()] == [("helpers.py", 2, "HG203")]

    def test_lazy_import_refused(self, tmp_path: Path) -> None:
        files = {"configuration_tiny.py": TINY_CONFIG, "modeling_lazy.py": LAZY_ENTRY, "helpers.py": HELPERS}
        repo = make_repo(tmp_path / "repo", files, "modeling_lazy.LazyModel")
        report = audit(str(repo))
        assert ("modeling_lazy.py", 2, "HG215") in [(f.path, f.line, f.rule_id) for f in report.blocking_findings()]

    def test_file_outside_closure_not_scanned(self, tmp_path: Path) -> None:
        files = {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny.py": OPTIONAL_IMPORTS, "unused.py": "import socket\n"}
        repo = make_repo(tmp_path / "repo", files, "modeling_tiny.TinyModel")
        report = audit(str(repo))
        scanned = {entry.path: entry.scanned for entry in report.files}
        assert "unused.py" not in scanned
        assert scanned["modeling_tiny.py"] is True
        assert report.verdict == "allow"  # guarded unknown modules only warn under the default policy


class TestExample:
    @pytest.fixture
    def saved_example(self, tmp_path: Path) -> Path:
        repo = tmp_path / "resnet"
        repo.mkdir()
        for name in ("configuration_resnet.py", "modeling_resnet.py"):
            shutil.copy(EXAMPLE / name, repo / name)
        config = {
            "model_type": "resnet",
            "auto_map": {
                "AutoConfig": "configuration_resnet.ResnetConfig",
                "AutoModel": "modeling_resnet.ResnetModel",
                "AutoModelForImageClassification": "modeling_resnet.ResnetModelForImageClassification",
            },
        }
        (repo / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return repo

    @pytest.mark.parametrize("policy", ["default", "strict"])
    def test_example_passes(self, saved_example: Path, policy: str) -> None:
        report = audit(str(saved_example), policy=policy)
        assert [finding.location() for finding in report.findings] == []
        assert report.verdict == "allow"
        assert report.dependencies.required == ("hubguard", "timm", "torch", "typing")

    @pytest.mark.parametrize("policy", ["default", "strict"])
    def test_example_hostile_variant_refused(self, saved_example: Path, policy: str) -> None:
        modeling = saved_example / "modeling_resnet.py"
        modeling.write_text(modeling.read_text() + "\n\ndef _leak():\n    import socket\n    return socket\n")
        report = audit(str(saved_example), policy=policy)
        assert report.verdict == "deny"
        assert [finding.rule_id for finding in report.blocking_findings()] == ["HG214", "HG219"]

    def test_callable_package_alias(self, saved_example: Path) -> None:
        report = hubguard.audit(str(saved_example), policy="strict")
        assert report.policy_name == "strict"


class TestScanPaths:
    def test_single_file_with_relative_import(self) -> None:
        (snapshot,) = snapshot_of_paths([EXAMPLE / "modeling_resnet.py"])
        assert snapshot.code_paths == ("configuration_resnet.py", "modeling_resnet.py")

    def test_folder_scans_every_module(self) -> None:
        (snapshot,) = snapshot_of_paths([EXAMPLE])
        assert snapshot.code_paths == ("__init__.py", "configuration_resnet.py", "modeling_resnet.py")

    def test_example_package_registers(self) -> None:
        report = audit_snapshots(snapshot_of_paths([EXAMPLE]), load_policy("default"))
        assert sorted({(f.path, f.rule_id) for f in report.blocking_findings()}) == [("__init__.py", "HG216")]


class TestBrokenFiles:
    """Files that cannot be audited give blocking findings in every format, never a crash."""

    def snapshot(self, files: dict[str, bytes]):
        entries = {
            path: SnapshotFile(path, len(data), hashlib.sha256(data).hexdigest(), "code") for path, data in files.items()
        }
        return Snapshot(
            source=SourceRef("local", "/repo"),
            revision=PinnedRevision(None, "sha256:" + "0" * 64),
            files=entries,
            contents=files,
            code_paths=tuple(sorted(files)),
        )

    def audit_files(self, files: dict[str, bytes]):
        return audit_snapshots([self.snapshot(files)], load_policy("default"))

    def test_bad_encoding(self) -> None:
        report = self.audit_files({"modeling_x.py": b"# coding: latin-1\nX = '\xe9'\n"})
        assert [(f.rule_id, f.path, f.verdict) for f in report.findings] == [("HG232", "modeling_x.py", "deny")]

    def test_invalid_utf8(self) -> None:
        report = self.audit_files({"modeling_x.py": b"X = 1\nY = '\xff'\n"})
        assert [(f.rule_id, f.line) for f in report.findings] == [("HG232", 2)]

    def test_syntax_error(self) -> None:
        report = self.audit_files({"modeling_x.py": b"class X(:\n    pass\n"})
        assert [(f.rule_id, f.line, f.severity.label) for f in report.findings] == [("HG230", 1, "high")]
        assert report.verdict == "deny"

    def test_twenty_megabytes(self) -> None:
        report = self.audit_files({"modeling_x.py": b"x = 1\n" * 3_500_000})
        assert [(f.rule_id, f.policy_key) for f in report.findings] == [("HG231", "audit.max_file_bytes")]

    def test_deep_nesting(self) -> None:
        report = self.audit_files({"modeling_x.py": b"x = " + b"-" * 20_000 + b"1\n"})
        assert [f.rule_id for f in report.findings] == ["HG231"]

    @pytest.mark.parametrize("name", ["text", "json", "sarif", "markdown"])
    def test_every_format_renders(self, name: str) -> None:
        report = self.audit_files({"modeling_x.py": b"def f(:\n", "helpers.py": b"X = '\xff'\n"})
        text = render(report, name)
        assert "HG230" in text
        assert "HG232" in text
