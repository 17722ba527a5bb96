"""Report formats: each module defines ``render(report: AuditReport) -> str`` with sorted output."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubguard.audit.report import AuditReport

FORMAT_MODULES = {
    "text": "hubguard.audit.formats.text",
    "json": "hubguard.audit.formats.json",
    "sarif": "hubguard.audit.formats.sarif",
    "markdown": "hubguard.audit.formats.markdown",
}


def renderer(name: str) -> Callable[["AuditReport"], str]:
    """Return the ``render`` function of a format.

    Raises:
        ValueError: ``name`` is not a known format.
    """
    module_name = FORMAT_MODULES.get(name)
    if module_name is None:
        raise ValueError(f"unknown report format {name!r}; use one of {', '.join(FORMAT_MODULES)}")
    return importlib.import_module(module_name).render  # type: ignore[no-any-return]  # every format module defines render


def requested_text(entry: dict[str, Any], *, quote: str = "") -> str:
    """Return how a source's requested revision reads in a header: the revision, or why there is none."""
    requested = entry["requested_revision"]
    if requested is not None:
        return f"{quote}{requested}{quote}"
    if entry["kind"] == "local":
        return "none (local file)" if str(entry["source"]).endswith(".py") else "none (local folder)"
    return "none (default branch)"


def revision_lines(data: dict[str, Any], *, quote: str = "") -> list[str]:
    """Return the header's revision text: one line, or one line per source naming it when there are several."""
    sources = data["sources"]
    lines = [
        f"requested {requested_text(entry, quote=quote)}, resolved {quote}{entry['resolved_revision']}{quote}"
        for entry in sources
    ]
    if len(sources) <= 1:
        return lines
    return [f"{quote}{entry['source']}{quote}: {line}" for entry, line in zip(sources, lines)]


TRIAL_EVENT_COLUMNS = ("location", "event", "refused by", "denies", "detail")
RUNTIME_EVENT_COLUMNS = ("location", "rule", "operation", "verdict", "detail")


def runtime_event_rows(events: list[dict[str, Any]]) -> list[list[str]]:
    """Return one row per sandbox runtime event: location, rule id, operation, verdict, detail."""
    rows = []
    for event in events:
        location = str(event.get("path") or "-")
        if event.get("path") and event.get("line"):
            location = f"{event['path']}:{event['line']}"
        rows.append([
            location,
            str(event.get("rule_id") or "-"),
            str(event.get("operation") or "-"),
            str(event.get("verdict") or "-"),
            str(event.get("detail") or ""),
        ])
    return rows


def trial_summary(trial: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the trial's verdict, reason, active layers, stages reached and duration as ``(key, value)`` rows."""
    layers = trial.get("layers")
    if isinstance(layers, dict):
        active = [name for name in ("netns", "landlock", "seccomp", "rlimits") if layers.get(name)]
        missing = layers.get("missing") or []
        layer_text = ", ".join(active) or "none"
        if layers.get("landlock_abi"):
            layer_text += f" (Landlock ABI {layers['landlock_abi']})"
        if missing:
            layer_text += f"; missing: {', '.join(map(str, missing))}"
    else:
        layer_text = "-"
    rows = [
        ("verdict", str(trial.get("verdict", "-"))),
        ("reason", str(trial.get("reason", "-"))),
        ("layers", layer_text),
        ("stages reached", ", ".join(map(str, trial.get("stages") or [])) or "-"),
    ]
    if "duration_seconds" in trial:
        rows.append(("duration", f"{float(trial['duration_seconds']):.2f} s"))
    if trial.get("dropped_events"):
        rows.append(("events not recorded", str(trial["dropped_events"])))
    return rows


def trial_event_rows(trial: dict[str, Any]) -> list[list[str]]:
    """Return one row per trace event: location, event kind, refusing layer, whether it denies, detail."""
    rows = []
    for event in trial.get("events") or []:
        if not isinstance(event, dict):
            rows.append(["-", str(event), "-", "-", "-"])
            continue
        location = event.get("path") or "-"
        if event.get("path") and event.get("line"):
            location = f"{event['path']}:{event['line']}"
        rows.append([
            location,
            str(event.get("kind", "-")),
            str(event.get("refused_by") or "-"),
            "yes" if event.get("denied") else "no",
            str(event.get("detail", "")),
        ])
    return rows


__all__ = [
    "FORMAT_MODULES",
    "TRIAL_EVENT_COLUMNS",
    "renderer",
    "requested_text",
    "revision_lines",
    "trial_event_rows",
    "trial_summary",
]
