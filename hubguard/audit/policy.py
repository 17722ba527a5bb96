"""Policy files: what remote code may import, call and touch, and the settings of every stage.

A policy is a TOML file (schema version 1, documented in ``docs/policy.md``; the JSON
Schema is ``policies/schema.json``). Module rules match *resolved dotted names*: every
imported module, every ``module.name`` imported with ``from``, and every attribute chain
rooted at an import. The longest matching prefix decides. At equal length an exact name
beats an ``fnmatch`` pattern, and ``deny`` beats ``warn`` beats ``allow``. Names listed
in ``modules.partial`` may be imported while each member is decided by its own rule
(``import os`` passes, ``os.path.join`` is allowed, ``os.system`` is not).

Policies compose with ``extends = "default"`` (or ``"strict"``, or a relative path): rule
lists add to the parent's and a name listed by the child leaves the parent's other lists,
so a child can move ``open`` from ``deny`` to ``allow``; every other value replaces the
parent's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from hubguard.errors import PolicyFileError

logger = logging.getLogger(__name__)

Verdict = Literal["allow", "warn", "deny"]

SCHEMA_VERSION = 1
VERDICTS = ("allow", "warn", "deny")
SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")
BANDIT_LEVELS = ("low", "medium", "high")
TRIAL_MODES = ("required", "if-available", "off")
BUILTIN_POLICIES = ("default", "strict")

_RULE_TABLES = ("modules", "builtins", "dunders")
_RULE_LISTS = ("allow", "warn", "deny")
_VERDICT_RANK = {"allow": 0, "warn": 1, "deny": 2}
_NAME_PATTERN = re.compile(r"^[A-Za-z_*?\[\]][A-Za-z0-9_.*?\[\]!-]*$")
_BANDIT_ID = re.compile(r"^B\d{3}$")
_MAX_EXTENDS_DEPTH = 8


@dataclass(frozen=True)
class Rule:
    """A policy decision and the key that made it, such as ``modules.deny["socket"]``."""

    verdict: Verdict
    key: str


# --- the schema, as data: section -> key -> kind -------------------------------------
#
# Kinds: "verdict", "bool", "int", "number", "str", "names" (list of dotted names or
# fnmatch patterns), "bandit_ids", "strings", "severity", "bandit_level", "trial_mode",
# "keyword_table" (dotted name -> {keyword: literal}).

_TOP_LEVEL: dict[str, str] = {"schema_version": "int", "name": "str", "description": "str", "extends": "str"}

_SECTIONS: dict[str, dict[str, str]] = {
    "modules": {
        "allow": "names",
        "warn": "names",
        "deny": "names",
        "partial": "names",
        "unknown": "verdict",
        "unknown_guarded": "verdict",
    },
    "builtins": {"allow": "names", "warn": "names", "deny": "names", "unknown": "verdict"},
    "dunders": {"allow": "names", "warn": "names", "deny": "names", "unknown": "verdict"},
    "calls": {"safe_keywords": "keyword_table"},
    "code": {
        "dynamic_attribute": "verdict",
        "module_value": "verdict",
        "monkey_patch": "verdict",
        "module_level_code": "verdict",
        "star_import": "verdict",
        "nested_from_pretrained": "verdict",
        "registry_write": "verdict",
        "nosec_comment": "verdict",
        "encoded_exec": "verdict",
        "chr_identifier": "verdict",
        "long_string": "verdict",
        "max_string_length": "int",
        "min_entropy_length": "int",
        "max_entropy_bits": "number",
    },
    "audit": {"fail_on": "severity", "max_file_bytes": "int", "max_nesting": "int"},
    "bandit": {
        "enabled": "bool",
        "min_severity": "bandit_level",
        "min_confidence": "bandit_level",
        "skips": "bandit_ids",
        "warn": "bandit_ids",
        "unknown": "verdict",
    },
    "revisions": {"allow_floating": "bool", "local_requires_lock": "bool"},
    "weights": {"allow_pickle": "bool", "max_header_bytes": "int", "dtypes": "strings"},
    "trial": {
        "mode": "trial_mode",
        "cpu_seconds": "int",
        "memory_mb": "int",
        "open_files": "int",
        "timeout_seconds": "number",
        "deny_events": "strings",
    },
    "sandbox": {"audit_hook": "bool"},
}

_RULE_LIST_KEYS = {(table, key) for table in _RULE_TABLES for key in _RULE_LISTS} | {
    ("modules", "partial"),
    ("bandit", "skips"),
    ("bandit", "warn"),
}

_ALLOWED_TEXT = {
    "verdict": 'one of "allow", "warn", "deny"',
    "bool": "true or false",
    "int": "a non-negative integer",
    "number": "a non-negative number",
    "str": "a string",
    "names": 'a list of dotted names or fnmatch patterns, such as ["torch.nn", "ctypes.c_*"]',
    "bandit_ids": 'a list of bandit ids, such as ["B101", "B311"]',
    "strings": "a list of non-empty strings",
    "severity": 'one of "info", "low", "medium", "high", "critical"',
    "bandit_level": 'one of "low", "medium", "high"',
    "trial_mode": 'one of "required", "if-available", "off"',
    "keyword_table": 'a table of dotted name -> {keyword = literal}, such as {"torch.load" = {weights_only = true}}',
}


# --- typed settings read by the other stages ------------------------------------------


@dataclass(frozen=True)
class RevisionSettings:
    """``[revisions]``: whether branch or tag names may float, and whether local folders need a lock."""

    allow_floating: bool
    local_requires_lock: bool


@dataclass(frozen=True)
class WeightSettings:
    """``[weights]``: pickle-based weight files, the safetensors header bound, accepted dtypes."""

    allow_pickle: bool
    max_header_bytes: int
    dtypes: tuple[str, ...]


@dataclass(frozen=True)
class TrialSettings:
    """``[trial]``: the jailed trial load's mode, resource limits, and trace events that deny the load."""

    mode: Literal["required", "if-available", "off"]
    cpu_seconds: int
    memory_mb: int
    open_files: int
    timeout_seconds: float
    deny_events: tuple[str, ...]


@dataclass(frozen=True)
class SandboxSettings:
    """``[sandbox]``: runtime guard switches read by the sandboxed importer."""

    audit_hook: bool


@dataclass(frozen=True)
class AuditSettings:
    """``[audit]``: the severity that fails the audit and the input bounds of the scanner."""

    fail_on: str
    max_file_bytes: int
    max_nesting: int


@dataclass(frozen=True)
class BanditSettings:
    """``[bandit]``: thresholds, skipped ids, ids that only warn, and the verdict of every other id."""

    enabled: bool
    min_severity: str
    min_confidence: str
    skips: tuple[str, ...]
    warn: tuple[str, ...]
    unknown: Verdict

    def decide(self, test_id: str) -> Rule | None:
        """Return the verdict for one bandit id, or ``None`` when the id is skipped.

        An id decided by ``unknown`` gets the key that would let it through instead of
        ``bandit.unknown``, which names no id: ``bandit.warn["B602"]`` when it is denied
        (listing it there makes it a warning), ``bandit.skips["B602"]`` when it warns.
        """
        if test_id in self.skips:
            return None
        if test_id in self.warn:
            return Rule("warn", f'bandit.warn["{test_id}"]')
        if self.unknown == "deny":
            return Rule("deny", f'bandit.warn["{test_id}"]')
        return Rule(self.unknown, f'bandit.skips["{test_id}"]')


@dataclass(frozen=True)
class CodeSettings:
    """``[code]``: verdicts of the constructs that are not names, and the obfuscation bounds."""

    verdicts: Mapping[str, Verdict]
    max_string_length: int
    min_entropy_length: int
    max_entropy_bits: float


class _RuleTable:
    """One of ``modules``, ``builtins``, ``dunders``: exact names and patterns per verdict."""

    def __init__(self, table: str, lists: Mapping[str, tuple[str, ...]], unknown: Verdict) -> None:
        self.table = table
        self.unknown = unknown
        self.exact: dict[str, tuple[Verdict, str]] = {}
        self.patterns: list[tuple[str, Verdict, str]] = []
        for verdict in _RULE_LISTS:
            for name in lists.get(verdict, ()):
                key = f'{table}.{verdict}["{name}"]'
                if any(char in name for char in "*?["):
                    self.patterns.append((name, verdict, key))  # type: ignore[arg-type]  # verdict is a _RULE_LISTS member
                    continue
                previous = self.exact.get(name)
                if previous is None or _VERDICT_RANK[verdict] > _VERDICT_RANK[previous[0]]:
                    self.exact[name] = (verdict, key)  # type: ignore[assignment]  # verdict is a _RULE_LISTS member

    def match(self, name: str) -> Rule | None:
        """Return the rule for exactly ``name``: an exact entry, else the strongest matching pattern."""
        found = self.exact.get(name)
        if found is not None:
            return Rule(found[0], found[1])
        best: tuple[Verdict, str] | None = None
        for pattern, verdict, key in self.patterns:
            if pattern.count(".") != name.count("."):
                continue
            if fnmatch.fnmatchcase(name, pattern) and (best is None or _VERDICT_RANK[verdict] > _VERDICT_RANK[best[0]]):
                best = (verdict, key)
        return None if best is None else Rule(best[0], best[1])


class Policy:
    """A loaded, validated policy with its effective rules and settings.

    ``name`` is the policy's own name; ``sha256`` is the hash of the effective policy
    (after ``extends``) in canonical JSON, so two files that decide the same way share it.
    """

    def __init__(self, data: Mapping[str, Any], *, origin: str) -> None:
        self.origin = origin
        self.data = data
        self.name: str = data.get("name", "unnamed")
        self.description: str = data.get("description", "")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        self.sha256 = hashlib.sha256(canonical.encode()).hexdigest()

        modules = data["modules"]
        self._modules = _RuleTable("modules", modules, modules["unknown"])
        self._unknown_guarded: Verdict = modules["unknown_guarded"]
        self._partial = frozenset(modules["partial"])
        self._builtins = _RuleTable("builtins", data["builtins"], data["builtins"]["unknown"])
        self._dunders = _RuleTable("dunders", data["dunders"], data["dunders"]["unknown"])
        self.safe_keywords: Mapping[str, Mapping[str, Any]] = data["calls"]["safe_keywords"]

        code = data["code"]
        self.code = CodeSettings(
            verdicts={key: value for key, value in code.items() if _SECTIONS["code"][key] == "verdict"},
            max_string_length=code["max_string_length"],
            min_entropy_length=code["min_entropy_length"],
            max_entropy_bits=float(code["max_entropy_bits"]),
        )
        self.audit = AuditSettings(**data["audit"])
        bandit = data["bandit"]
        self.bandit = BanditSettings(
            enabled=bandit["enabled"],
            min_severity=bandit["min_severity"],
            min_confidence=bandit["min_confidence"],
            skips=tuple(bandit["skips"]),
            warn=tuple(bandit["warn"]),
            unknown=bandit["unknown"],
        )
        self.revisions = RevisionSettings(**data["revisions"])
        weights = data["weights"]
        self.weights = WeightSettings(
            allow_pickle=weights["allow_pickle"], max_header_bytes=weights["max_header_bytes"], dtypes=tuple(weights["dtypes"])
        )
        trial = data["trial"]
        self.trial = TrialSettings(
            mode=trial["mode"],
            cpu_seconds=trial["cpu_seconds"],
            memory_mb=trial["memory_mb"],
            open_files=trial["open_files"],
            timeout_seconds=float(trial["timeout_seconds"]),
            deny_events=tuple(trial["deny_events"]),
        )
        self.sandbox = SandboxSettings(**data["sandbox"])

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, sha256={self.sha256[:12]}…, origin={self.origin!r})"

    def decide_module(self, dotted: str, *, guarded: bool = False) -> Rule:
        """Decide an imported module or a resolved attribute chain such as ``torch.hub.load``.

        The longest prefix of ``dotted`` with a rule decides. A name in ``modules.partial``
        is allowed only as itself, never as a prefix of its members. ``guarded`` (the import
        sits in ``try``/``if``/a function) only changes the verdict for names no rule covers.
        """
        if dotted in self._partial:
            return Rule("allow", f'modules.partial["{dotted}"]')
        parts = dotted.split(".")
        for length in range(len(parts), 0, -1):
            rule = self._modules.match(".".join(parts[:length]))
            if rule is not None:
                return rule
        if guarded:
            return Rule(self._unknown_guarded, "modules.unknown_guarded")
        return Rule(self._modules.unknown, "modules.unknown")

    def is_partial(self, dotted: str) -> bool:
        """Tell whether ``dotted`` is importable only for its members (``modules.partial``)."""
        return dotted in self._partial

    def decide_builtin(self, name: str) -> Rule:
        """Decide a reference to a builtin such as ``open`` or ``__build_class__``."""
        rule = self._builtins.match(name)
        return rule if rule is not None else Rule(self._builtins.unknown, "builtins.unknown")

    def decide_dunder(self, name: str) -> Rule:
        """Decide a special attribute: a dunder (``__globals__``) or a frame/code attribute (``f_back``).

        Ordinary attribute names that no rule lists are allowed with the key ``dunders``.
        """
        rule = self._dunders.match(name)
        if rule is not None:
            return rule
        if len(name) > 4 and name.startswith("__") and name.endswith("__"):
            return Rule(self._dunders.unknown, "dunders.unknown")
        return Rule("allow", "dunders")

    def decide_construct(self, name: str) -> Rule:
        """Decide a construct of ``[code]``, such as ``monkey_patch`` or ``module_level_code``."""
        return Rule(self.code.verdicts[name], f"code.{name}")

    def safe_call(self, dotted: str, keywords: Mapping[str, Any]) -> bool:
        """Tell whether a call passes every literal keyword ``calls.safe_keywords[dotted]`` requires."""
        required = self.safe_keywords.get(dotted)
        if not required:
            return False
        for name, value in required.items():
            passed = keywords.get(name, _NOT_LITERAL)
            # The type check keeps weights_only=1 from passing for weights_only=True.
            if passed is _NOT_LITERAL or type(passed) is not type(value) or passed != value:
                return False
        return True


class _NotLiteral:
    """Marker for a keyword argument whose value is not a literal."""

    def __repr__(self) -> str:
        return "<not a literal>"


_NOT_LITERAL: Any = _NotLiteral()
NOT_LITERAL = _NOT_LITERAL


# --- loading and validation ---------------------------------------------------------------


def load_policy(name_or_path: str | Path | None = None) -> Policy:
    """Load ``"default"`` (also for ``None``), ``"strict"`` or a policy file.

    Raises:
        PolicyFileError: the file is missing, not TOML, or breaks the schema; the message
            names the key, the line and the allowed values.
    """
    if isinstance(name_or_path, Policy):
        return name_or_path
    if name_or_path is None:
        name_or_path = "default"
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_POLICIES:
        return _load_builtin(name_or_path)
    return Policy(_resolve_file(Path(name_or_path), depth=0), origin=str(name_or_path))


_BUILTIN_CACHE: dict[str, Policy] = {}


def _load_builtin(name: str) -> Policy:
    policy = _BUILTIN_CACHE.get(name)
    if policy is None:
        policy = Policy(_resolve_builtin(name, depth=0), origin=f"builtin:{name}")
        _BUILTIN_CACHE[name] = policy
    return policy


def builtin_policy_text(name: str) -> str:
    """Return the TOML text of a shipped policy."""
    return resources.files("hubguard.policies").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def _resolve_builtin(name: str, *, depth: int) -> dict[str, Any]:
    text = builtin_policy_text(name)
    return _resolve_text(text, f"<builtin {name}.toml>", base=None, depth=depth)


def _read_policy_file(path: Path, *, referrer: tuple[str, int | None] | None = None) -> str:
    """Return a policy file's text; ``referrer`` is the ``(file, line)`` whose ``extends`` names it."""
    if referrer is None:
        location: dict[str, Any] = {"path": str(path)}
        prefix = ""
        retry = 'pass "default", "strict" or the path of a policy TOML file'
    else:
        location = {"path": referrer[0], "line": referrer[1], "rule_id": "HG403"}
        prefix = f"extends names {path}, but "
        retry = 'set extends to "default", "strict" or the path of a policy TOML file, relative to this file'
    if path.is_dir():
        raise PolicyFileError(f"{prefix}{path} is a directory, not a policy file", hint=retry, **location)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise PolicyFileError(f"{prefix}policy file {path} was not found", hint=retry, **location) from error
    except UnicodeDecodeError as error:
        raise PolicyFileError(
            f"{prefix}policy file {path} is not UTF-8 text: {error}", hint="save it as UTF-8 text", **location
        ) from error
    except OSError as error:
        raise PolicyFileError(
            f"{prefix}policy file {path} cannot be read: {error}", hint="check the file's permissions", **location
        ) from error


def _resolve_file(path: Path, *, depth: int, referrer: tuple[str, int | None] | None = None) -> dict[str, Any]:
    text = _read_policy_file(path, referrer=referrer)
    return _resolve_text(text, str(path), base=path.parent, depth=depth)


def _file_policy_name(raw: Mapping[str, Any], path: Path) -> str:
    """Name a policy file by its own ``name``, else its stem; never by a shipped policy's name alone.

    A file that only ``extends = "default"`` would otherwise inherit the name "default"
    and be reported as the shipped policy although its rules differ.
    """
    name = raw.get("name") or path.stem
    if name in BUILTIN_POLICIES:
        return f"{name} (custom file {path.name})"
    return str(name)


def _resolve_text(text: str, origin: str, *, base: Path | None, depth: int) -> dict[str, Any]:
    raw = parse_policy_text(text, origin)
    extends = raw.get("extends")
    if extends is None:
        resolved = raw
    else:
        if depth >= _MAX_EXTENDS_DEPTH:
            raise PolicyFileError(
                f"extends chain is deeper than {_MAX_EXTENDS_DEPTH} files",
                rule_id="HG403",
                path=origin,
                line=_locate(text, ("extends",)),
                hint="check the extends values for a cycle",
            )
        if extends in BUILTIN_POLICIES:
            parent = _resolve_builtin(extends, depth=depth + 1)
        else:
            parent_path = (base or Path.cwd()) / extends
            parent = _resolve_file(parent_path, depth=depth + 1, referrer=(origin, _locate(text, ("extends",))))
        resolved = _merge(parent, raw)
        resolved.pop("extends", None)
    if depth > 0:
        return resolved
    if base is not None:
        resolved = {**resolved, "name": _file_policy_name(raw, Path(origin))}
    return _complete(resolved, text, origin)


def parse_policy_text(text: str, origin: str) -> dict[str, Any]:
    """Parse and validate one policy file's text, without resolving ``extends``.

    Raises:
        PolicyFileError: invalid TOML or a schema violation, naming key, line and allowed values.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(error))
        line = int(match.group(1)) if match else None
        raise PolicyFileError(
            f"policy file is not valid TOML: {error}",
            rule_id="HG403",
            path=origin,
            line=line,
            hint="fix the TOML syntax (https://toml.io)",
        ) from error
    _validate(raw, text, origin)
    return raw


def _fail(text: str, origin: str, key_path: tuple[Any, ...], message: str, kind: str | None) -> PolicyFileError:
    key = _format_key(key_path)
    hint = f"{key} must be {_ALLOWED_TEXT[kind]}" if kind else None
    return PolicyFileError(f"{key}: {message}", rule_id="HG403", path=origin, line=_locate(text, key_path), hint=hint)


def _format_key(key_path: tuple[Any, ...]) -> str:
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += part if not out else f".{part}"
    return out


def _validate(raw: Mapping[str, Any], text: str, origin: str) -> None:
    for key, value in raw.items():
        if key in _TOP_LEVEL:
            _check_value(value, _TOP_LEVEL[key], (key,), text, origin)
            continue
        if key not in _SECTIONS:
            allowed = ", ".join(sorted([*_TOP_LEVEL, *(f"[{name}]" for name in _SECTIONS)]))
            raise _fail(text, origin, (key,), f"unknown key; allowed keys are {allowed}", None)
        if not isinstance(value, dict):
            raise _fail(text, origin, (key,), f"must be a table [{key}], not {type(value).__name__}", None)
        spec = _SECTIONS[key]
        for sub, sub_value in value.items():
            if sub not in spec:
                allowed = ", ".join(sorted(spec))
                raise _fail(text, origin, (key, sub), f"unknown key; allowed keys in [{key}] are {allowed}", None)
            _check_value(sub_value, spec[sub], (key, sub), text, origin)
    version = raw.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise _fail(text, origin, ("schema_version",), f"unsupported schema version {version}", None)
    extends = raw.get("extends")
    if extends is not None and not extends:
        raise _fail(text, origin, ("extends",), "is empty", "str")


def _check_value(value: Any, kind: str, key_path: tuple[Any, ...], text: str, origin: str) -> None:
    def bad(message: str, path: tuple[Any, ...] = key_path) -> PolicyFileError:
        return _fail(text, origin, path, message, kind)

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad(f"got {value!r}")
    elif kind in {"int", "number"}:
        allowed_types = (int,) if kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed_types) or value < 0:
            raise bad(f"got {value!r}")
    elif kind == "str":
        if not isinstance(value, str):
            raise bad(f"got {value!r}")
    elif kind in {"verdict", "severity", "bandit_level", "trial_mode"}:
        choices = {"verdict": VERDICTS, "severity": SEVERITY_NAMES, "bandit_level": BANDIT_LEVELS, "trial_mode": TRIAL_MODES}[kind]
        if value not in choices:
            raise bad(f"got {value!r}")
    elif kind in {"names", "bandit_ids", "strings"}:
        if not isinstance(value, list):
            raise bad(f"got {type(value).__name__} {value!r}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise bad(f"item {item!r} is not a non-empty string", (*key_path, index))
            if kind == "names" and not _NAME_PATTERN.match(item):
                raise bad(f"item {item!r} is not a dotted name or pattern", (*key_path, index))
            if kind == "bandit_ids" and not _BANDIT_ID.match(item):
                raise bad(f"item {item!r} is not a bandit id", (*key_path, index))
    elif kind == "keyword_table":
        if not isinstance(value, dict):
            raise bad(f"got {value!r}")
        for dotted, keywords in value.items():
            if not _NAME_PATTERN.match(dotted) or not isinstance(keywords, dict) or not keywords:
                raise bad(f"entry {dotted!r} = {keywords!r} is not a table of keyword literals", (*key_path, dotted))
            for keyword, literal in keywords.items():
                if not isinstance(literal, (bool, int, float, str)):
                    raise bad(f"{dotted}.{keyword} = {literal!r} is not a literal", (*key_path, dotted))
    else:  # pragma: no cover - _SECTIONS only uses the kinds above
        raise AssertionError(kind)


def _merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a child policy into its parent (rule lists add and move, other values replace)."""
    merged: dict[str, Any] = {key: (dict(value) if isinstance(value, dict) else value) for key, value in parent.items()}
    for key, value in child.items():
        if key not in _SECTIONS:
            merged[key] = value
            continue
        section = merged.setdefault(key, {})
        for sub, sub_value in value.items():
            if (key, sub) in _RULE_LIST_KEYS:
                # A name the child lists leaves every other rule list of the same table.
                for other in ("allow", "warn", "deny", "partial", "skips"):
                    if other != sub and (key, other) in _RULE_LIST_KEYS and other in section:
                        section[other] = [name for name in section[other] if name not in sub_value]
                section[sub] = sorted(set(section.get(sub, [])) | set(sub_value))
            elif _SECTIONS[key][sub] == "keyword_table":
                section[sub] = {**section.get(sub, {}), **sub_value}
            else:
                section[sub] = sub_value
    return merged


def _complete(data: Mapping[str, Any], text: str, origin: str) -> dict[str, Any]:
    """Check that the effective policy sets every key (a file without ``extends`` must be complete)."""
    result = {key: value for key, value in data.items() if key != "extends"}
    missing = []
    for section, spec in _SECTIONS.items():
        values = result.setdefault(section, {})
        for key, kind in spec.items():
            if key in values:
                continue
            if (section, key) in _RULE_LIST_KEYS:
                values[key] = []  # an absent rule list is an empty one
            elif kind == "keyword_table":
                values[key] = {}
            else:
                missing.append(f"{section}.{key}")
    if missing:
        raise PolicyFileError(
            f"policy sets no value for {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}",
            rule_id="HG403",
            path=origin,
            line=1,
            hint='start the file with extends = "default" (or "strict") to inherit every other setting',
        )
    result.setdefault("schema_version", SCHEMA_VERSION)
    return result


def _locate(text: str, key_path: tuple[Any, ...]) -> int | None:
    """Return the 1-based line of a key (and list item) in a TOML text, or ``None``.

    Handles the layouts policy files use: top-level keys, ``[section]`` tables with
    ``key = value`` lines, and lists spread over several lines.
    """
    lines = text.splitlines()
    names = [part for part in key_path if isinstance(part, str)]
    index = next((part for part in key_path if isinstance(part, int)), None)
    if not names:
        return None
    headers = [number for number, line in enumerate(lines) if re.match(r"^\s*\[", line)]
    first_header = headers[0] if headers else len(lines)
    if len(names) == 1:
        key_line = _find_key_line(lines, 0, first_header, names[0])
        if key_line is None:
            header = re.compile(rf"^\s*\[\s*{re.escape(names[0])}\s*\]")
            key_line = next((number for number in headers if header.match(lines[number])), None)
            return None if key_line is None else key_line + 1
    else:
        header = re.compile(rf"^\s*\[\s*{re.escape(names[0])}\s*\]")
        section = next((number for number in headers if header.match(lines[number])), None)
        if section is None:
            key_line = _find_key_line(lines, 0, first_header, names[0])
            return None if key_line is None else key_line + 1
        end = next((number for number in headers if number > section), len(lines))
        key_line = _find_key_line(lines, section + 1, end, names[1])
        if key_line is None:
            return section + 1
    if index is not None:
        items_seen = 0
        for number in range(key_line, len(lines)):
            line = lines[number].split("=", 1)[1] if number == key_line else lines[number]
            items_seen += len(re.findall(r"\"[^\"]*\"|'[^']*'", line))
            if items_seen > index:
                return number + 1
            if "]" in line.split("#", 1)[0]:
                break
    return key_line + 1


def _find_key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
    for number in range(start, end):
        if pattern.match(lines[number]):
            return number
    return None


def policy_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of policy files, built from the same table the validator uses."""

    def kind_schema(kind: str) -> dict[str, Any]:
        if kind == "verdict":
            return {"enum": list(VERDICTS)}
        if kind == "bool":
            return {"type": "boolean"}
        if kind == "int":
            return {"type": "integer", "minimum": 0}
        if kind == "number":
            return {"type": "number", "minimum": 0}
        if kind == "str":
            return {"type": "string"}
        if kind == "names":
            return {"type": "array", "items": {"type": "string", "pattern": _NAME_PATTERN.pattern}}
        if kind == "bandit_ids":
            return {"type": "array", "items": {"type": "string", "pattern": _BANDIT_ID.pattern}}
        if kind == "strings":
            return {"type": "array", "items": {"type": "string", "minLength": 1}}
        if kind == "severity":
            return {"enum": list(SEVERITY_NAMES)}
        if kind == "bandit_level":
            return {"enum": list(BANDIT_LEVELS)}
        if kind == "trial_mode":
            return {"enum": list(TRIAL_MODES)}
        if kind == "keyword_table":
            return {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": ["boolean", "integer", "number", "string"]},
                },
            }
        raise AssertionError(kind)

    properties: dict[str, Any] = {key: kind_schema(kind) for key, kind in _TOP_LEVEL.items()}
    properties["schema_version"] = {"const": SCHEMA_VERSION}
    for section, spec in _SECTIONS.items():
        properties[section] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: kind_schema(kind) for key, kind in spec.items()},
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hubguard.dev/schemas/policy-1.json",
        "title": "hubguard policy file",
        "description": f"Schema version {SCHEMA_VERSION} of hubguard policy files (TOML). See docs/policy.md.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


__all__ = [
    "AuditSettings",
    "BanditSettings",
    "CodeSettings",
    "NOT_LITERAL",
    "Policy",
    "RevisionSettings",
    "Rule",
    "SandboxSettings",
    "TrialSettings",
    "Verdict",
    "WeightSettings",
    "builtin_policy_text",
    "load_policy",
    "parse_policy_text",
    "policy_json_schema",
]
