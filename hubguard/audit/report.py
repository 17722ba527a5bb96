"""The audit report: one verdict with every finding, import, dependency and weight file behind it.

The JSON form (``to_dict``) is versioned by ``REPORT_SCHEMA_VERSION``. Every list in it is
sorted, so two audits of the same bytes with the same policy render the same text apart
from ``created_at`` and ``stage_seconds``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from hubguard.audit.engine import ImportRecord
from hubguard.audit.findings import Finding, Severity
from hubguard.audit.weights import WeightFile
from hubguard.errors import PolicyViolation

logger = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1

# Top-level names that never need an installed distribution: hubguard serves them itself.
_PROVIDED_MODULES = frozenset({"transformers", "hubguard", "__future__"})


MAX_RUNTIME_EVENTS = 500


def _json_ready(event: dict[str, Any]) -> dict[str, Any]:
    """Return a runtime event with every value JSON-serialisable (others as their ``str``)."""
    return {key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value) for key, value in sorted(event.items())}


@dataclass(frozen=True)
class AuditedSource:
    """One audited snapshot: where it came from and the revision requested and resolved."""

    source: str
    kind: str
    requested_revision: str | None
    resolved_revision: str
    floating: bool

    def to_dict(self) -> dict[str, object]:
        """Return the entry as JSON-ready data."""
        return {
            "source": self.source,
            "kind": self.kind,
            "requested_revision": self.requested_revision,
            "resolved_revision": self.resolved_revision,
            "floating": self.floating,
        }


@dataclass(frozen=True)
class AuditedFile:
    """A file of an audited snapshot with its sha256 and whether the audit scanned it."""

    path: str
    sha256: str
    size: int
    kind: str
    scanned: bool

    def to_dict(self) -> dict[str, object]:
        """Return the entry as JSON-ready data."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "kind": self.kind, "scanned": self.scanned}


@dataclass(frozen=True)
class Dependencies:
    """Top-level modules the code imports from outside itself.

    ``required`` are imported unguarded at module level, so the import fails without them;
    ``optional`` are only imported inside ``try``, under ``if``, or inside functions.
    """

    required: tuple[str, ...]
    optional: tuple[str, ...]

    @classmethod
    def from_imports(cls, imports: list[ImportRecord]) -> Dependencies:
        """Classify the top-level names of absolute imports by where their statements sit."""
        required = {record.top_level for record in imports if record.placement == "unguarded" and record.top_level}
        optional = {
            record.top_level
            for record in imports
            if record.placement in {"guarded", "conditional", "lazy"} and record.top_level
        }
        return cls(required=tuple(sorted(required)), optional=tuple(sorted(optional - required)))


@dataclass
class AuditReport:
    """Everything the audit found about one or more snapshots, and the verdict.

    ``verdict`` is ``"deny"`` when a finding is blocking (the policy denies it) or has a
    severity at or above ``fail_on``. ``trial`` is filled in by the jailed trial load when
    it runs; ``unsafe`` is true when a scan stage was skipped on request.
    """

    sources: tuple[AuditedSource, ...]
    files: tuple[AuditedFile, ...]
    imports: tuple[ImportRecord, ...]
    findings: tuple[Finding, ...]
    weights: tuple[WeightFile, ...]
    policy_name: str
    policy_sha256: str
    hubguard_version: str
    bandit_version: str
    fail_on: Severity
    stage_seconds: dict[str, float]
    created_at: str
    unsafe: bool = False
    trial: dict[str, Any] | None = None
    dependencies: Dependencies = field(default_factory=lambda: Dependencies((), ()))
    runtime_events: list[dict[str, Any]] = field(default_factory=list)

    def add_runtime_event(self, event: dict[str, Any]) -> None:
        """Record what the sandbox refused or warned about while the audited code ran.

        The sandbox calls this for every runtime decision of a load that was given this
        report, including refused imports that the code caught as ``ImportError``. At most
        ``MAX_RUNTIME_EVENTS`` are kept; the rest are counted in the last entry.
        """
        if len(self.runtime_events) < MAX_RUNTIME_EVENTS:
            self.runtime_events.append(dict(event))
        elif len(self.runtime_events) == MAX_RUNTIME_EVENTS:
            self.runtime_events.append({"operation": "events not recorded", "detail": "1", "verdict": "-"})
        else:
            last = self.runtime_events[-1]
            last["detail"] = str(int(last["detail"]) + 1)

    @property
    def source(self) -> str:
        """The first audited source as users spell it."""
        return self.sources[0].source if self.sources else ""

    @property
    def source_summary(self) -> str:
        """Every audited source, for headers: the source itself, or ``"2 sources: A, B"`` in audit order."""
        if len(self.sources) <= 1:
            return self.source
        return f"{len(self.sources)} sources: {', '.join(entry.source for entry in self.sources)}"

    @property
    def requested_revision(self) -> str | None:
        """The revision requested for the first source."""
        return self.sources[0].requested_revision if self.sources else None

    @property
    def resolved_revision(self) -> str:
        """The commit (or content id) the first source resolved to."""
        return self.sources[0].resolved_revision if self.sources else ""

    @property
    def verdict(self) -> str:
        """``"allow"`` or ``"deny"``: denied by a blocking finding, or by a trial that refused or failed."""
        if self.blocking_findings() or self.trial_refused():
            return "deny"
        return "allow"

    def trial_refused(self) -> bool:
        """Tell whether a jailed trial ran and refused the code or failed (``deny`` or ``error``)."""
        return self.trial is not None and self.trial.get("verdict") in {"deny", "error"}

    def blocking_findings(self) -> list[Finding]:
        """Return the findings that deny the load: policy denials and those at or above ``fail_on``."""
        return [finding for finding in self.findings if finding.blocking or finding.severity >= self.fail_on]

    def with_fail_on(self, severity: Severity) -> AuditReport:
        """Return a copy whose verdict uses another ``fail_on`` threshold (the CLI's ``--fail-on``)."""
        return replace(self, fail_on=severity)

    def missing_required(self) -> list[str]:
        """Return the required top-level modules that are not installed, sorted.

        Checked with ``importlib.util.find_spec`` on top-level names only, which locates a
        module without importing it.
        """
        missing = []
        for name in self.dependencies.required:
            if name in _PROVIDED_MODULES:
                continue
            try:
                if importlib.util.find_spec(name) is None:
                    missing.append(name)
            except (ImportError, ValueError):
                missing.append(name)
        return sorted(missing)

    def raise_for_verdict(self) -> None:
        """Raise :class:`PolicyViolation` when the verdict is deny.

        Raises:
            PolicyViolation: with ``report`` set to this report; the message names the
                first blocking finding.
        """
        blocking = sorted(self.blocking_findings())
        if not blocking:
            return
        first = blocking[0]
        raise PolicyViolation(
            f"the audit of {self.source}@{self.resolved_revision} denied loading: {len(blocking)} blocking "
            f"finding{'s' if len(blocking) != 1 else ''}; first: [{first.rule_id}] {first.message}",
            report=self,
            rule_id="HG400",
            path=first.path,
            line=first.line or None,
            hint=f"remove the code or allow it in a policy file with {first.policy_key} "
            f"(hubguard audit {self.source} --revision {self.resolved_revision} lists every finding)",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (schema version ``REPORT_SCHEMA_VERSION``)."""
        blocking = self._blocking_set()
        counts = {severity.label: 0 for severity in Severity}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        data: dict[str, Any] = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "created_at": self.created_at,
            "tool": {"hubguard": self.hubguard_version, "bandit": self.bandit_version},
            "source": self.source,
            "source_summary": self.source_summary,
            "requested_revision": self.requested_revision,
            "resolved_revision": self.resolved_revision,
            "sources": [entry.to_dict() for entry in self.sources],
            "policy": {"name": self.policy_name, "sha256": self.policy_sha256, "fail_on": self.fail_on.label},
            "verdict": self.verdict,
            "unsafe": self.unsafe,
            "summary": {
                "files": len(self.files),
                "findings": len(self.findings),
                "blocking": len(blocking),
                "by_severity": counts,
            },
            "files": [entry.to_dict() for entry in sorted(self.files, key=lambda entry: entry.path)],
            "imports": [
                record.to_dict()
                for record in sorted(self.imports, key=lambda record: (record.path, record.line, record.module))
            ],
            "dependencies": {"required": list(self.dependencies.required), "optional": list(self.dependencies.optional)},
            "weights": [entry.to_dict() for entry in sorted(self.weights, key=lambda entry: entry.path)],
            "findings": [finding.to_dict() | {"blocking": finding in blocking} for finding in sorted(self.findings)],
            "stage_seconds": {stage: round(seconds, 4) for stage, seconds in sorted(self.stage_seconds.items())},
        }
        if self.trial is not None:
            data["trial"] = self.trial
        if self.runtime_events:
            data["runtime_events"] = [_json_ready(event) for event in self.runtime_events]
        return data

    def _blocking_set(self) -> set[Finding]:
        return set(self.blocking_findings())


__all__ = ["AuditReport", "AuditedFile", "AuditedSource", "Dependencies", "REPORT_SCHEMA_VERSION"]
