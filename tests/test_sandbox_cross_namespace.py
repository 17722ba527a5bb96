"""A sandboxed repository cannot reach another load's modules under ``hubguard_modules``."""

from __future__ import annotations

import pytest

from hubguard.audit import audit_snapshots
from hubguard.audit.policy import load_policy
from hubguard.errors import SandboxViolation
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot, namespace_of

SECRET_HOLDER = 'SECRET = "repository a"\n'

# Reads repository a's module by its absolute sandbox name; the name is filled in by the test.
PEEKER = '''\
def peek():
    from {namespace}.holder import SECRET
    return SECRET
'''


def _snapshot(location: str, files: dict[str, str]) -> object:
    contents = {path: text.encode() for path, text in files.items()}
    return build_snapshot(
        SourceRef("local", location), PinnedRevision(None, "sha256:" + "0" * 64), contents, code_entries=list(files)
    )


def test_import_of_other_namespace_refused() -> None:
    policy = load_policy("default")
    holder = _snapshot("/repos/a", {"holder.py": SECRET_HOLDER})
    loaded_a = import_snapshot(holder, policy)
    loaded_a.module("holder.py")
    peeker = _snapshot("/repos/b", {"peeker.py": PEEKER.format(namespace=namespace_of(holder))})
    loaded_b = import_snapshot(peeker, policy)
    peek = loaded_b.module("peeker.py").peek
    with pytest.raises(SandboxViolation, match="hubguard_modules"):
        peek()
    loaded_a.unload()
    loaded_b.unload()


def test_audit_denies_other_namespace_import() -> None:
    peeker = _snapshot("/repos/b", {"peeker.py": PEEKER.format(namespace="hubguard_modules.local_x.c0")})
    report = audit_snapshots([peeker], load_policy("default"))
    assert report.verdict == "deny"
    assert any("hubguard_modules" in finding.policy_key for finding in report.blocking_findings())
