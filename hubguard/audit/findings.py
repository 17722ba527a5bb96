"""Findings: one frozen record per problem the audit found, with the rule table behind the ids.

hubguard's own rules use ``HG2xx`` ids (static scan); bandit's keep their ``B…`` ids with
``source = "bandit"``. Each finding names the policy key that decided it, so the reader
knows which line of a policy file would change the outcome.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class Severity(enum.IntEnum):
    """Severity of a finding, ordered so that ``severity >= Severity.HIGH`` works."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in reports and policy files (``"high"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Return the severity named ``value`` (any case).

        Raises:
            ValueError: ``value`` names no severity.
        """
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {value!r}; use one of {', '.join(s.label for s in cls)}") from None


class Confidence(enum.IntEnum):
    """Confidence of a rule that its finding is real."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        """The lower-case name used in reports (``"high"``)."""
        return self.name.lower()


FindingVerdict = Literal["warn", "deny"]


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one file.

    ``verdict`` is what the policy decided (``deny`` blocks the load); ``policy_key`` is the
    policy entry that decided it, such as ``modules.deny["socket"]``. ``line`` and
    ``column`` are 1-based; ``0`` means the finding is about the whole file.
    """

    # Sort order: location, rule, message; the message comes before ``cwe`` so that an
    # ``int`` is never compared with ``None``.
    path: str
    line: int
    column: int
    rule_id: str
    message: str
    severity: Severity
    confidence: Confidence
    cwe: int | None
    snippet: str
    policy_key: str
    verdict: FindingVerdict
    source: Literal["hubguard", "bandit"] = "hubguard"

    @property
    def blocking(self) -> bool:
        """True when the policy denies what this finding describes."""
        return self.verdict == "deny"

    def location(self) -> str:
        """Return ``path:line:column`` (``path`` alone for whole-file findings)."""
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, object]:
        """Return the finding as JSON-ready data."""
        return {
            "rule_id": self.rule_id,
            "source": self.source,
            "severity": self.severity.label,
            "confidence": self.confidence.label,
            "cwe": self.cwe,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "snippet": self.snippet,
            "message": self.message,
            "policy_key": self.policy_key,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class RuleInfo:
    """A hubguard rule: id, short name, CWE and one sentence for report legends."""

    rule_id: str
    name: str
    cwe: int | None
    description: str


RULES: dict[str, RuleInfo] = {
    rule.rule_id: rule
    for rule in (
        RuleInfo("HG201", "import-not-allowed", 829, "Imports a module or name that the policy does not allow."),
        RuleInfo("HG202", "name-not-allowed", 829, "Uses a module attribute or function that the policy does not allow."),
        RuleInfo("HG203", "dangerous-builtin", 95, "References a builtin that runs code, reads files or exposes namespaces."),
        RuleInfo("HG204", "dynamic-attribute", 470, "Calls getattr/setattr/delattr/hasattr with a name computed at run time."),
        RuleInfo("HG205", "nosec-comment", 693, "Contains a '# nosec' comment that would silence bandit."),
        RuleInfo("HG206", "special-attribute", 693, "Touches a dunder or frame attribute used to escape sandboxes."),
        RuleInfo("HG207", "monkey-patch", 471, "Assigns to an attribute of an imported module or class."),
        RuleInfo("HG208", "module-level-code", 1164, "Runs statements at import time beyond imports, definitions and constants."),
        RuleInfo("HG209", "obfuscated-code", 506, "Passes decoded data to an exec-like call or builds names with chr()."),
        RuleInfo("HG210", "suspicious-string", 506, "Contains a very long or high-entropy string literal."),
        RuleInfo("HG211", "unsafe-deserialization", 502, "Deserializes data with pickle or a pickle-based loader."),
        RuleInfo("HG212", "native-code", 114, "Builds or loads native code that no Python-level sandbox can contain."),
        RuleInfo("HG213", "process-execution", 78, "Starts processes or sends signals."),
        RuleInfo("HG214", "network-access", 200, "Opens network connections or downloads data."),
        RuleInfo("HG215", "dynamic-import", 470, "Imports modules or reaches interpreter internals by name at run time."),
        RuleInfo("HG216", "registry-write", 471, "Registers classes with the process-wide Auto registry."),
        RuleInfo("HG217", "nested-from-pretrained", 494, "Loads another model or tokenizer from inside remote code."),
        RuleInfo("HG218", "star-import", 1061, "Uses 'from x import *', which hides the imported names."),
        RuleInfo("HG219", "module-as-value", 829, "Passes a partly allowed module (os, sys) around as a value."),
        RuleInfo("HG230", "syntax-error", None, "The file does not parse, so nothing in it can be checked."),
        RuleInfo("HG231", "file-too-complex", 400, "The file is too large or too deeply nested to audit."),
        RuleInfo("HG232", "undecodable-source", 838, "The file is not valid UTF-8 source."),
        RuleInfo("HG233", "bandit-failed", None, "bandit failed on the file, so only hubguard's own rules checked it."),
        RuleInfo("HG240", "pickle-weights", 502, "A weight file is pickle-based; loading it can run code."),
        RuleInfo("HG241", "pickle-dangerous-global", 502, "A pickle in a weight file imports a dangerous global."),
        RuleInfo("HG242", "invalid-safetensors", 20, "A safetensors header is malformed or out of bounds."),
        RuleInfo("HG243", "unknown-weight-format", 20, "A weight file has a format hubguard cannot check."),
        RuleInfo("HG244", "rejected-file", None, "The loader rejected a repository file; it is never loaded."),
    )
}


def severity_for(verdict: str) -> Severity:
    """Return the severity hubguard gives its own findings for a policy verdict."""
    return Severity.HIGH if verdict == "deny" else Severity.LOW


__all__ = ["Confidence", "Finding", "FindingVerdict", "RULES", "RuleInfo", "Severity", "severity_for"]
