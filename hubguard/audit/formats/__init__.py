"""Report formats: each module defines ``render(report: AuditReport) -> str`` with sorted output."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

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


def trial_rows(trial: dict[str, object]) -> list[tuple[str, str]]:
    """Flatten the trial section into sorted ``(key, value)`` rows for tables."""
    import json

    rows = []
    for key in sorted(trial):
        value = trial[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        rows.append((key, text))
    return rows


__all__ = ["FORMAT_MODULES", "renderer", "trial_rows"]
