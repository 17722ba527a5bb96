"""JSON report: ``AuditReport.to_dict()`` with sorted keys (schema version in ``schema_version``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubguard.audit.report import AuditReport


def render(report: AuditReport) -> str:
    """Return the report as indented JSON with sorted keys and a trailing newline."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
