"""The audit cache: unchanged bytes are not scanned again; any change to what decides a result misses."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubguard.audit import _cache, audit

MODELING = "import torch\n\n\ndef load(path):\n    return torch.load(path)\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))
    _cache.clear_memory()
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "modeling_x.py").write_text(MODELING)
    return folder


def count_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import hubguard.audit as audit_package

    scanned: list[str] = []
    original = audit_package.scan_source

    def counting(text, path, policy, *, tree=None):
        scanned.append(path)
        return original(text, path, policy, tree=tree)

    monkeypatch.setattr(audit_package, "scan_source", counting)
    return scanned


def test_second_audit_hits_memory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned = count_scans(monkeypatch)
    first = audit(str(repo))
    second = audit(str(repo))
    assert scanned == ["modeling_x.py"]
    assert second.findings == first.findings


def test_disk_entry_survives_process(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = audit(str(repo))
    _cache.clear_memory()
    scanned = count_scans(monkeypatch)
    second = audit(str(repo))
    assert scanned == []
    assert second.findings == first.findings
    assert second.imports == first.imports


def test_changed_bytes_miss(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit(str(repo))
    (repo / "modeling_x.py").write_text(MODELING + "\n\ndef safe(path):\n    return torch.load(path, weights_only=True)\n")
    scanned = count_scans(monkeypatch)
    audit(str(repo))
    assert scanned == ["modeling_x.py"]


def test_changed_policy_misses(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit(str(repo))
    scanned = count_scans(monkeypatch)
    report = audit(str(repo), policy="strict")
    assert scanned == ["modeling_x.py"]
    assert report.policy_name == "strict"


def test_key_covers_versions() -> None:
    base = dict(policy_sha256="p", hubguard_version="0.1.0", bandit_version="1.9.4")
    key = _cache.scan_key("m.py", "a" * 64, **base)
    assert key != _cache.scan_key("m.py", "a" * 64, **{**base, "bandit_version": "1.9.5"})
    assert key != _cache.scan_key("m.py", "a" * 64, **{**base, "hubguard_version": "0.2.0"})
    assert key != _cache.scan_key("n.py", "a" * 64, **base)


def test_corrupt_entry_ignored(repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    first = audit(str(repo))
    _cache.clear_memory()
    entries = list((Path(str(repo.parent / "cache")) / "audit").rglob("*.json"))
    assert len(entries) == 1
    entries[0].write_text("{not json")
    scanned = count_scans(monkeypatch)
    second = audit(str(repo))
    assert scanned == ["modeling_x.py"]
    assert second.findings == first.findings
    assert "ignoring corrupt audit cache entry" in caplog.text


def test_no_temporary_files_left(repo: Path) -> None:
    audit(str(repo))
    leftovers = [path.name for path in (repo.parent / "cache" / "audit").rglob(".tmp-*")]
    assert leftovers == []
