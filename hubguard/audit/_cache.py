"""Cache of per-file scan results, keyed on what decides them.

The key is the sha256 of the file's path and content hash, the policy's sha256, and the
hubguard and bandit versions, so a change to any of them misses. Results live in memory for
the process and as JSON files under ``<cache root>/audit/`` (``$HUBGUARD_CACHE``, else
``~/.cache/hubguard``), written to a temporary file and renamed, so a reader never sees a
half-written entry. A corrupt entry is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hubguard.audit.engine import FileScan, ImportRecord
from hubguard.audit.findings import Confidence, Finding, Severity

logger = logging.getLogger(__name__)

_MEMORY_LIMIT = 4096
_CACHE_FORMAT = 2  # 2: bandit findings name the id in policy_key
_memory: OrderedDict[str, FileScan] = OrderedDict()


def scan_key(path: str, sha256: str, *, policy_sha256: str, hubguard_version: str, bandit_version: str) -> str:
    """Return the cache key of one file's scan."""
    material = "\n".join((str(_CACHE_FORMAT), path, sha256, policy_sha256, hubguard_version, bandit_version))
    return hashlib.sha256(material.encode()).hexdigest()


def _disk_root() -> Path | None:
    if os.environ.get("HUBGUARD_NO_AUDIT_CACHE"):
        return None
    from hubguard.loader.cache import default_cache_root

    return default_cache_root() / "audit"


def get(key: str) -> FileScan | None:
    """Return the cached scan for ``key``, from memory or disk, or ``None``."""
    cached = _memory.get(key)
    if cached is not None:
        _memory.move_to_end(key)
        return cached
    root = _disk_root()
    if root is None:
        return None
    entry = root / key[:2] / f"{key}.json"
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        scan = _from_dict(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring corrupt audit cache entry %s: %s", entry, error)
        return None
    _remember(key, scan)
    return scan


def put(key: str, scan: FileScan) -> None:
    """Store a scan in memory and, atomically, on disk; disk errors only log a warning."""
    _remember(key, scan)
    root = _disk_root()
    if root is None:
        return
    folder = root / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(_to_dict(scan), handle, sort_keys=True)
        os.replace(temporary, folder / f"{key}.json")
    except OSError as error:
        logger.warning("could not write the audit cache under %s: %s", root, error)


def clear_memory() -> None:
    """Forget the in-memory entries (the disk entries stay)."""
    _memory.clear()


def _remember(key: str, scan: FileScan) -> None:
    _memory[key] = scan
    _memory.move_to_end(key)
    while len(_memory) > _MEMORY_LIMIT:
        _memory.popitem(last=False)


def _to_dict(scan: FileScan) -> dict[str, Any]:
    return {
        "format": _CACHE_FORMAT,
        "path": scan.path,
        "lines": scan.lines,
        "parsed": scan.parsed,
        "findings": [finding.to_dict() for finding in scan.findings],
        "imports": [record.to_dict() for record in scan.imports],
    }


def _from_dict(data: dict[str, Any]) -> FileScan:
    if data.get("format") != _CACHE_FORMAT:
        raise ValueError(f"cache format {data.get('format')!r}")
    findings = tuple(
        Finding(
            path=item["path"],
            line=item["line"],
            column=item["column"],
            rule_id=item["rule_id"],
            severity=Severity.parse(item["severity"]),
            confidence=Confidence[item["confidence"].upper()],
            cwe=item["cwe"],
            message=item["message"],
            snippet=item["snippet"],
            policy_key=item["policy_key"],
            verdict=item["verdict"],
            source=item["source"],
        )
        for item in data["findings"]
    )
    imports = tuple(ImportRecord(**item) for item in data["imports"])
    return FileScan(path=data["path"], findings=findings, imports=imports, lines=data["lines"], parsed=data["parsed"])


__all__ = ["clear_memory", "get", "put", "scan_key"]
