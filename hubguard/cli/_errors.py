"""Map hubguard errors to one-line CLI messages and exit codes."""

from __future__ import annotations

from hubguard.errors import (
    FetchError,
    HubguardError,
    OutputFileError,
    PolicyFileError,
    PolicyViolation,
    SandboxViolation,
    TrialError,
)

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_FETCH = 3

# Checked in order, subclasses first; anything else is a denial (exit 1).
_EXIT_CODES: tuple[tuple[type[HubguardError], int], ...] = (
    (PolicyFileError, EXIT_USAGE),
    (OutputFileError, EXIT_USAGE),
    (FetchError, EXIT_FETCH),
    (PolicyViolation, EXIT_DENIED),
    (SandboxViolation, EXIT_DENIED),
    (TrialError, EXIT_DENIED),
)


def exit_code_for(error: HubguardError) -> int:
    """Return the exit code for an error: 2 policy file or output file, 3 fetch or integrity, else 1."""
    for error_class, code in _EXIT_CODES:
        if isinstance(error, error_class):
            return code
    return EXIT_DENIED


def render_error(error: HubguardError, *, traceback_shown: bool = False) -> str:
    """Return the text printed on stderr for an error, with the hint to show tracebacks unless they are shown."""
    if traceback_shown:
        return f"hubguard: error: {error.diagnostics()}"
    return f"hubguard: error: {error.diagnostics()}\n  (run with -vv to see the traceback)"
