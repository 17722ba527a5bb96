"""Run bandit in-process on the audited text, with ``# nosec`` ignored.

bandit is driven through its node visitor on the bytes hubguard already verified, never on a
path it would read again. Its findings keep their ``B…`` ids and join hubguard's list with
``source = "bandit"``. The policy's ``[bandit]`` section decides which ids are skipped,
which only warn, and which deny.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from hubguard.audit.findings import Confidence, Finding, Severity
from hubguard.audit.policy import Policy

logger = logging.getLogger(__name__)

_LEVELS = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "UNDEFINED": 0}
_SNIPPET_LIMIT = 200
_lock = threading.Lock()


@dataclass
class _BanditRuntime:
    metaast: Any
    testset: Any
    version: str


_runtime: _BanditRuntime | None = None


@functools.cache
def bandit_version() -> str:
    """Return the installed bandit version (recorded in reports and cache keys)."""
    from importlib.metadata import version

    return version("bandit")


def _load_runtime() -> _BanditRuntime:
    """Build bandit's test set once per process with every test enabled; the policy filters results."""
    global _runtime
    if _runtime is None:
        with warnings.catch_warnings():
            # bandit 1.9 passes stevedore an argument that stevedore deprecated; not ours to fix.
            warnings.filterwarnings("ignore", message="The verify_requirements argument")
            from bandit.core import config as bandit_config
            from bandit.core import meta_ast, test_set

        configuration = bandit_config.BanditConfig()
        _runtime = _BanditRuntime(meta_ast.BanditMetaAst(), test_set.BanditTestSet(configuration, {}), bandit_version())
    return _runtime


def _failure_finding(path: str, reason: str) -> Finding:
    return Finding(
        path=path,
        line=0,
        column=0,
        rule_id="HG233",
        severity=Severity.MEDIUM,
        confidence=Confidence.HIGH,
        cwe=None,
        message=f"bandit failed on this file ({reason[:200]}); only hubguard's rules checked it",
        snippet="",
        policy_key="bandit.enabled",
        verdict="warn",
    )


def run_bandit(text: str, path: str, policy: Policy) -> list[Finding]:
    """Return bandit's findings for one file's text, filtered and decided by ``policy.bandit``.

    The caller has already parsed ``text`` within the policy's bounds. If bandit still fails
    on a file, the failure is logged and reported as one HG233 warning.
    """
    settings = policy.bandit
    if not settings.enabled:
        return []
    runtime = _load_runtime()
    from bandit.core import metrics, node_visitor

    data = text.encode("utf-8")
    with _lock:  # bandit keeps per-run state on shared plugin objects
        # bandit derives a module name from __init__.py files along the path, so a root that
        # does not exist keeps it from reading the working directory.
        visitor = node_visitor.BanditNodeVisitor(
            f"/hubguard-snapshot/{path}", io.BytesIO(data), runtime.metaast, runtime.testset, False, {}, metrics.Metrics()
        )
        visitor.metrics.begin(path)
        try:
            visitor.process(data)
        except Exception as error:  # noqa: BLE001 - a bandit plugin bug must not stop the audit
            logger.warning("bandit failed on %s: %s: %s", path, type(error).__name__, error)
            return [_failure_finding(path, f"{type(error).__name__}: {error}")]
        issues = list(visitor.tester.results)

    lines = text.splitlines()
    min_severity = _LEVELS[settings.min_severity.upper()]
    min_confidence = _LEVELS[settings.min_confidence.upper()]
    findings = []
    for issue in issues:
        if _LEVELS.get(issue.severity, 0) < min_severity or _LEVELS.get(issue.confidence, 0) < min_confidence:
            continue
        rule = settings.decide(issue.test_id)
        if rule is None or rule.verdict == "allow":
            continue
        severity = Severity[issue.severity] if issue.severity in _LEVELS and issue.severity != "UNDEFINED" else Severity.LOW
        if rule.verdict == "deny":
            severity = max(severity, Severity.HIGH)
        line = issue.lineno or 0
        findings.append(
            Finding(
                path=path,
                line=line,
                column=max(issue.col_offset, 0) + 1,
                rule_id=issue.test_id,
                severity=severity,
                confidence=Confidence[issue.confidence] if issue.confidence in ("LOW", "MEDIUM", "HIGH") else Confidence.LOW,
                cwe=issue.cwe.id or None,
                message=f"{issue.text} (bandit {issue.test})",
                snippet=lines[line - 1].strip()[:_SNIPPET_LIMIT] if 0 < line <= len(lines) else "",
                policy_key=rule.key,
                verdict=rule.verdict,  # type: ignore[arg-type]  # "allow" skipped above
                source="bandit",
            )
        )
    return findings


__all__ = ["bandit_version", "run_bandit"]
