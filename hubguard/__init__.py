"""hubguard: pin, audit and sandbox remote-code models before they load.

The public API is re-exported here lazily, so ``import hubguard`` (and the audit
path) never imports torch; the model classes import it on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from hubguard._version import __version__
from hubguard.errors import (
    ConfigurationError,
    FetchError,
    HubguardError,
    IntegrityError,
    MissingDependencyError,
    OutputFileError,
    PolicyFileError,
    PolicyViolation,
    PublishError,
    RegistryError,
    RemoteCodeNotTrustedError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SandboxImportViolation,
    SandboxViolation,
    TrialError,
    UnpinnedRevisionError,
    UnsafeRepositoryError,
    WeightsError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Public name -> module that defines it; resolved on first attribute access.
_LAZY_EXPORTS = {
    "PretrainedConfig": "hubguard.configuration",
    "PreTrainedModel": "hubguard.modeling",
    "AutoConfig": "hubguard.auto",
    "AutoModel": "hubguard.auto",
    "AutoModelForImageClassification": "hubguard.auto",
    "ModelOutput": "hubguard.outputs",
    "PinnedRevision": "hubguard.loader.snapshot",
    "Snapshot": "hubguard.loader.snapshot",
    "fetch": "hubguard.loader",
    "lock": "hubguard.loader",
    "audit": "hubguard.audit",
    "AuditReport": "hubguard.audit.report",
    "Finding": "hubguard.audit.findings",
    "Severity": "hubguard.audit.findings",
    "load_policy": "hubguard.audit.policy",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hubguard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))


__all__ = [
    "__version__",
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
    *_LAZY_EXPORTS,
]
