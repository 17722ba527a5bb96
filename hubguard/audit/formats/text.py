"""Terminal report: a summary, then rich tables of findings, imports, weights and the trial."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from hubguard.audit.formats import (
    RUNTIME_EVENT_COLUMNS,
    TRIAL_EVENT_COLUMNS,
    revision_lines,
    runtime_event_rows,
    trial_event_rows,
    trial_summary,
)

if TYPE_CHECKING:
    from hubguard.audit.report import AuditReport

_WIDTH = 120


def render(report: AuditReport) -> str:
    """Return the report as plain text tables (no colour codes), 120 columns wide."""
    data = report.to_dict()
    buffer = io.StringIO()
    console = Console(file=buffer, width=_WIDTH, color_system=None, force_terminal=False, highlight=False, soft_wrap=False)
    verdict = data["verdict"].upper()
    console.print(f"hubguard audit: {verdict}")
    console.print(f"source:   {data['source_summary']}", soft_wrap=True)
    for line in revision_lines(data):
        console.print(f"revision: {line}", soft_wrap=True)
    console.print(f"policy:   {data['policy']['name']} (sha256 {data['policy']['sha256'][:16]}…, fail on {data['policy']['fail_on']})")
    console.print(f"tools:    hubguard {data['tool']['hubguard']}, bandit {data['tool']['bandit']}; created {data['created_at']}")
    summary = data["summary"]
    console.print(f"findings: {summary['findings']} ({summary['blocking']} blocking) in {summary['files']} files")
    if data["unsafe"]:
        console.print("UNSAFE: a scan stage was skipped on request")

    if data["findings"]:
        table = Table(title="Findings", title_justify="left", expand=False)
        for column in ("", "rule", "severity", "location", "message", "policy key"):
            table.add_column(column, overflow="fold")
        for item in data["findings"]:
            table.add_row(
                "DENY" if item["blocking"] else "warn",
                item["rule_id"],
                item["severity"],
                f"{item['path']}:{item['line']}:{item['column']}",
                item["message"],
                item["policy_key"],
            )
        console.print(table)

    if data["imports"]:
        table = Table(title="Imports", title_justify="left")
        for column in ("file", "line", "module", "placement", "verdict"):
            table.add_column(column, overflow="fold")
        for item in data["imports"]:
            table.add_row(item["path"], str(item["line"]), item["module"], item["placement"], item["verdict"])
        console.print(table)
    dependencies = data["dependencies"]
    console.print(f"required modules: {', '.join(dependencies['required']) or 'none'}")
    console.print(f"optional modules: {', '.join(dependencies['optional']) or 'none'}")

    if data["weights"]:
        table = Table(title="Weights", title_justify="left")
        for column in ("path", "format", "size", "tensors", "pickle globals"):
            table.add_column(column, overflow="fold")
        for item in data["weights"]:
            tensors = "-" if item["tensors"] is None else str(item["tensors"])
            table.add_row(item["path"], item["format"], f"{item['size']:,}", tensors, ", ".join(item["pickle_globals"]) or "-")
        console.print(table)

    if "trial" in data:
        for key, value in trial_summary(data["trial"]):
            console.print(f"trial {key}: {value}", markup=False, highlight=False)
        events = trial_event_rows(data["trial"])
        if events:
            table = Table(title="Trial trace", title_justify="left")
            for column in TRIAL_EVENT_COLUMNS:
                table.add_column(column, overflow="fold")
            for row in events:
                table.add_row(*row)
            console.print(table)

    if "runtime_events" in data:
        table = Table(title="Sandbox events", title_justify="left")
        for column in RUNTIME_EVENT_COLUMNS:
            table.add_column(column, overflow="fold")
        for row in runtime_event_rows(data["runtime_events"]):
            table.add_row(*row)
        console.print(table)

    stages = ", ".join(f"{stage} {seconds:.3f}s" for stage, seconds in data["stage_seconds"].items())
    console.print(f"time per stage: {stages}")
    return buffer.getvalue()
