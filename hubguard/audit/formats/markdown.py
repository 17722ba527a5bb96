"""Markdown report, for pull-request comments and job summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _sources(data: dict[str, Any]) -> str:
    names = [f"`{entry['source']}`" for entry in data["sources"]]
    return ", ".join(names) if len(names) <= 1 else f"{len(names)} sources: {', '.join(names)}"


def render(report: AuditReport) -> str:
    """Return the report as GitHub-flavoured Markdown."""
    data = report.to_dict()
    verdict = "**ALLOW**" if data["verdict"] == "allow" else "**DENY**"
    lines = [
        f"# hubguard audit: {verdict}",
        "",
        f"- source: {_sources(data)}",
        *(f"- revision: {line}" for line in revision_lines(data, quote="`")),
        f"- policy: `{data['policy']['name']}` (sha256 `{data['policy']['sha256']}`, fail on {data['policy']['fail_on']})",
        f"- tools: hubguard {data['tool']['hubguard']}, bandit {data['tool']['bandit']}",
        f"- created: {data['created_at']}",
        f"- findings: {data['summary']['findings']} ({data['summary']['blocking']} blocking)",
    ]
    if data["unsafe"]:
        lines.append("- **unsafe: a scan stage was skipped on request**")
    lines += ["", "## Findings", ""]
    if data["findings"]:
        lines += _table(
            ["blocking", "rule", "severity", "location", "message", "policy key"],
            [
                [
                    "yes" if item["blocking"] else "no",
                    item["rule_id"],
                    item["severity"],
                    f"`{item['path']}:{item['line']}:{item['column']}`",
                    item["message"],
                    f"`{item['policy_key']}`",
                ]
                for item in data["findings"]
            ],
        )
    else:
        lines.append("No findings.")
    lines += ["", "## Imports", ""]
    lines += _table(
        ["file", "line", "module", "placement", "verdict"],
        [[item["path"], item["line"], f"`{item['module']}`", item["placement"], item["verdict"]] for item in data["imports"]],
    )
    dependencies = data["dependencies"]
    lines += [
        "",
        "## Dependencies",
        "",
        f"- required: {', '.join(dependencies['required']) or 'none'}",
        f"- optional: {', '.join(dependencies['optional']) or 'none'}",
    ]
    lines += ["", "## Files", ""]
    lines += _table(
        ["path", "kind", "size", "sha256", "scanned"],
        [[item["path"], item["kind"], item["size"], f"`{item['sha256']}`", item["scanned"]] for item in data["files"]],
    )
    if data["weights"]:
        lines += ["", "## Weights", ""]
        lines += _table(
            ["path", "format", "size", "tensors", "pickle globals"],
            [
                [item["path"], item["format"], item["size"], item["tensors"], ", ".join(item["pickle_globals"]) or "-"]
                for item in data["weights"]
            ],
        )
    if "trial" in data:
        lines += ["", "## Trial", ""]
        lines += _table(["key", "value"], [[key, value] for key, value in trial_summary(data["trial"])])
        events = trial_event_rows(data["trial"])
        if events:
            lines += ["", "### Trial trace", ""]
            lines += _table(list(TRIAL_EVENT_COLUMNS), events)
    if "runtime_events" in data:
        lines += ["", "## Sandbox events", ""]
        lines += _table(list(RUNTIME_EVENT_COLUMNS), runtime_event_rows(data["runtime_events"]))
    lines += ["", "## Time per stage", ""]
    lines += _table(["stage", "seconds"], [[stage, f"{seconds:.3f}"] for stage, seconds in data["stage_seconds"].items()])
    return "\n".join(lines) + "\n"
