"""Every public exception of hubguard, grouped by the phase that raises it.

Each error keeps a short cause in ``str(error)`` and the full user-facing text,
with the location and the next step, in :meth:`HubguardError.diagnostics`.
The CLI maps each class to an exit code (see ``hubguard/cli/_errors.py``).
"""

from __future__ import annotations


class HubguardError(Exception):
    """Base class of every error hubguard raises on purpose.

    Args:
        message: what failed, on which value.
        hint: what the user should do next.
        rule_id: the ``HG…`` rule that fired, if any.
        path: the repository file involved, if any.
        line: the 1-based line in ``path``, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        rule_id: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.rule_id = rule_id
        self.path = path
        self.line = line

    def location(self) -> str | None:
        """Return ``path:line`` (or ``path``) when the error points into a file."""
        if self.path is None:
            return None
        if self.line is None:
            return self.path
        return f"{self.path}:{self.line}"

    def diagnostics(self) -> str:
        """Return the text shown to the user: rule, location, message and hint."""
        head = self.message
        location = self.location()
        if location is not None:
            head = f"{location}: {head}"
        if self.rule_id is not None:
            head = f"[{self.rule_id}] {head}"
        if self.hint:
            return f"{head}\n  fix: {self.hint}"
        return head


# --- fetch and pinning (HG1xx) -------------------------------------------------


class FetchError(HubguardError):
    """Raised when a source cannot be reached or a file cannot be downloaded.

    Example message: ``Repository 'acme/tiny' was not found at http://127.0.0.1:18090.``
    """


class RepositoryNotFoundError(FetchError):
    """Raised when the source names a repository, folder or git URL that does not exist."""


class RevisionNotFoundError(FetchError):
    """Raised when a pinned commit does not exist in the source."""


class UnpinnedRevisionError(FetchError):
    """Raised when a revision is a branch, tag, short id or missing while the policy requires a pin.

    Example message: ``Revision 'main' is not pinned: it resolves to 3f2a… now;
    pass revision="3f2a…" (CLI: --revision 3f2a…).``
    """

    def __init__(self, message: str, *, requested: str | None, resolved: str | None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are HubguardError's keywords
        self.requested = requested
        self.resolved = resolved


class IntegrityError(FetchError):
    """Raised when received bytes differ from the pinned commit or the lock file.

    Example message: ``modeling_x.py: sha256 is 9c1e… but the lock file expects 77ab….``
    """


class UnsafeRepositoryError(FetchError):
    """Raised when repository content is refused before any audit.

    Covers path traversal, absolute paths, symlinks that leave the repository, module
    names that are not identifiers, oversized files, too many files and non-UTF-8 source.
    """


# --- configuration, weights and the Auto API ----------------------------------


class ConfigurationError(HubguardError, ValueError):
    """Raised when ``config.json`` is missing or malformed, or a config class breaks its contract."""


class WeightsError(HubguardError):
    """Raised when weights are missing, not safetensors, or do not match the model."""


class RegistryError(HubguardError, ValueError):
    """Raised when an Auto-class registration is invalid (wrong key, duplicate, wrong class)."""


class RemoteCodeNotTrustedError(HubguardError):
    """Raised when a repository needs its own code but ``trust_remote_code`` was not granted."""


class MissingDependencyError(HubguardError, ImportError):
    """Raised when remote code needs, unconditionally, a module that is not installed.

    ``missing`` lists the top-level module names, sorted.
    """

    def __init__(self, message: str, *, missing: list[str], **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are HubguardError's keywords
        self.missing = missing


class OutputFileError(HubguardError):
    """Raised when a report, lock file or other output cannot be written to the path the user gave.

    Example message: ``cannot write the lock file to /ro/x.lock: [Errno 13] Permission denied``.
    """


class PublishError(HubguardError):
    """Raised when ``push_to_hub`` fails to create the repository or the commit."""


# --- static audit and policy (HG2xx, HG4xx) ----------------------------------------


class PolicyFileError(HubguardError):
    """Raised when a policy file is unreadable or breaks the schema; names the key and line."""


class PolicyViolation(HubguardError):
    """Raised when the audit verdict is *deny*; ``report`` holds every finding."""

    def __init__(self, message: str, *, report: object = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are HubguardError's keywords
        self.report = report


# --- sandbox (HG3xx) -----------------------------------------------------------------


class SandboxViolation(HubguardError):
    """Raised when sandboxed code attempts an operation the policy refuses.

    Example message: ``[HG301] acme/tiny@3f2a…/modeling_x.py:12: import of 'socket' refused
    by policy rule modules.deny 'socket'.``
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        repo: str | None = None,
        policy_rule: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are HubguardError's keywords
        self.operation = operation
        self.repo = repo
        self.policy_rule = policy_rule


class SandboxImportViolation(SandboxViolation, ImportError):
    """Raised when sandboxed code imports a module the policy refuses.

    It is an ``ImportError`` too, so ``try: import x / except ImportError:`` fallbacks in
    model code take their fallback path; the refusal is still recorded in the report.
    """


class TrialError(HubguardError):
    """Raised when the jailed trial load fails, times out, or cannot run where it is required.

    ``result`` holds the ``TrialResult`` (trace, layers, reason) when the trial ran.

    Example message: ``[HG401] modeling_x.py:3: the jailed trial load refused the code:
    the code attempted socket.connect ('127.0.0.1', 8080), refused by seccomp``.
    """

    def __init__(self, message: str, *, result: object = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are HubguardError's keywords
        self.result = result


__all__ = [
    "ConfigurationError",
    "FetchError",
    "HubguardError",
    "IntegrityError",
    "MissingDependencyError",
    "OutputFileError",
    "PolicyFileError",
    "PolicyViolation",
    "PublishError",
    "RegistryError",
    "RemoteCodeNotTrustedError",
    "RepositoryNotFoundError",
    "RevisionNotFoundError",
    "SandboxImportViolation",
    "SandboxViolation",
    "TrialError",
    "UnpinnedRevisionError",
    "UnsafeRepositoryError",
    "WeightsError",
]
