"""Weight files: list them, validate safetensors headers, and read pickle imports from opcodes.

No tensor is loaded and no pickle is unpickled. A safetensors file is checked from its
header alone: the 8-byte length, the JSON header within ``weights.max_header_bytes``, each
tensor's dtype, shape and byte range, and that the ranges tile the data section exactly.
Pickle-based files (``.bin``, ``.pt``, ``.ckpt``, ``.pkl`` …) are read with picklescan,
which walks the pickle opcodes and reports the globals they import.
"""

from __future__ import annotations

import io
import json
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hubguard.audit.findings import RULES, Confidence, Finding, Severity
from hubguard.audit.policy import Policy
from hubguard.loader.snapshot import Snapshot, SnapshotFile

logger = logging.getLogger(__name__)

# Bytes per element of each safetensors dtype.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".npy", ".npz")


@dataclass(frozen=True)
class WeightFile:
    """One weight file: repository path, format, size in bytes, sha256, and what the scan read.

    ``tensors`` counts safetensors entries; ``pickle_globals`` lists ``module.name`` for each
    global a pickle imports, sorted.
    """

    path: str
    format: str
    size: int
    sha256: str
    tensors: int | None = None
    pickle_globals: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Return the entry as JSON-ready data."""
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "sha256": self.sha256,
            "tensors": self.tensors,
            "pickle_globals": list(self.pickle_globals),
        }


def weight_format(path: str) -> str:
    """Return ``safetensors``, ``pickle`` (any pickle-based format) or the file's suffix."""
    if path.endswith(".safetensors"):
        return "safetensors"
    if path.endswith(_PICKLE_SUFFIXES):
        return "pickle"
    return path.rsplit(".", 1)[-1] if "." in path else "unknown"


def _finding(path: str, rule_id: str, message: str, *, verdict: str, key: str, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(
        path=path,
        line=0,
        column=0,
        rule_id=rule_id,
        severity=severity if verdict == "deny" else min(severity, Severity.MEDIUM),
        confidence=Confidence.HIGH,
        cwe=RULES[rule_id].cwe,
        message=message,
        snippet="",
        policy_key=key,
        verdict=verdict,  # type: ignore[arg-type]  # callers pass "warn" or "deny"
    )


def _open(snapshot: Snapshot, path: str) -> IO[bytes]:
    if path in snapshot.contents:
        return io.BytesIO(snapshot.contents[path])
    blob: Path = snapshot.blob_paths[path]
    return blob.open("rb")


def check_safetensors_header(handle: IO[bytes], size: int, *, max_header_bytes: int, dtypes: tuple[str, ...]) -> int:
    """Validate a safetensors header read from ``handle`` and return the number of tensors.

    Raises:
        ValueError: the header is malformed or out of bounds; the message names the part.
    """
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise ValueError(f"file has {size} bytes, fewer than the 8-byte header length")
    (header_length,) = struct.unpack("<Q", prefix)
    if header_length > max_header_bytes:
        raise ValueError(f"header length {header_length:,} exceeds weights.max_header_bytes = {max_header_bytes:,}")
    if header_length > size - 8:
        raise ValueError(f"header length {header_length:,} runs past the end of the {size:,}-byte file")
    raw = handle.read(header_length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data_size = size - 8 - header_length
    ranges: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in entry.items()):
                raise ValueError("__metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r} must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES or dtype not in dtypes:
            raise ValueError(f"tensor {name!r} has dtype {dtype!r}, not one of weights.dtypes")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r} has shape {shape!r}; dimensions must be non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise ValueError(f"tensor {name!r} has data_offsets {offsets!r} outside the {data_size:,}-byte data section")
        expected = math.prod(shape) * DTYPE_SIZES[dtype]
        if offsets[1] - offsets[0] != expected:
            raise ValueError(
                f"tensor {name!r} spans {offsets[1] - offsets[0]:,} bytes but shape {shape} of {dtype} needs {expected:,}"
            )
        ranges.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise ValueError(f"tensor {name!r} starts at byte {begin:,}; expected {position:,} (gap or overlap)")
        position = end
    if position != data_size:
        raise ValueError(f"tensors cover {position:,} of the {data_size:,}-byte data section")
    return len(ranges)


def _pickle_globals(handle: IO[bytes], path: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Return (every global, the dangerous ones, scan error) for a pickle-based file."""
    from picklescan.scanner import SafetyLevel, scan_bytes

    suffix = "." + path.rsplit(".", 1)[-1] if "." in path else None
    result = scan_bytes(handle, path, suffix)
    every = sorted({f"{g.module}.{g.name}" for g in result.globals})
    dangerous = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety == SafetyLevel.Dangerous})
    return tuple(every), tuple(dangerous), result.scan_err


def scan_weights(snapshot: Snapshot, policy: Policy) -> tuple[list[WeightFile], list[Finding]]:
    """List and check every weight file of a snapshot; never loads a tensor or unpickles."""
    files: list[WeightFile] = []
    findings: list[Finding] = []
    for entry in snapshot.weight_files():
        weight, problems = _scan_one(snapshot, entry, policy)
        files.append(weight)
        findings.extend(problems)
    return files, findings


def _scan_one(snapshot: Snapshot, entry: SnapshotFile, policy: Policy) -> tuple[WeightFile, list[Finding]]:
    path = entry.path
    kind = weight_format(path)
    if path not in snapshot.contents and path not in snapshot.blob_paths:
        # The loader listed the file without fetching it (include_weights=False).
        return WeightFile(path, kind, entry.size, entry.sha256), []
    if kind == "safetensors":
        with _open(snapshot, path) as handle:
            try:
                tensors = check_safetensors_header(
                    handle, entry.size, max_header_bytes=policy.weights.max_header_bytes, dtypes=policy.weights.dtypes
                )
            except ValueError as error:
                finding = _finding(path, "HG242", f"invalid safetensors file: {error}", verdict="deny", key="weights")
                return WeightFile(path, kind, entry.size, entry.sha256), [finding]
        return WeightFile(path, kind, entry.size, entry.sha256, tensors=tensors), []
    if kind == "pickle":
        with _open(snapshot, path) as handle:
            every, dangerous, scan_error = _pickle_globals(handle, path)
        weight = WeightFile(path, kind, entry.size, entry.sha256, pickle_globals=every)
        verdict = "warn" if policy.weights.allow_pickle else "deny"
        key = "weights.allow_pickle"
        problems = [
            _finding(
                path,
                "HG240",
                f"pickle-based weight file; unpickling it can run code (imports: {', '.join(every) or 'none'})",
                verdict=verdict,
                key=key,
            )
        ]
        if dangerous:
            problems.append(
                _finding(path, "HG241", f"pickle imports dangerous globals: {', '.join(dangerous)}", verdict="deny", key="weights")
            )
        if scan_error:
            problems.append(_finding(path, "HG241", "pickle opcodes could not be read completely", verdict="deny", key="weights"))
        return weight, problems
    finding = _finding(path, "HG243", f"weight format '{kind}' cannot be checked without loading it", verdict="warn", key="weights", severity=Severity.MEDIUM)
    return WeightFile(path, kind, entry.size, entry.sha256), [finding]


__all__ = ["DTYPE_SIZES", "WeightFile", "check_safetensors_header", "scan_weights", "weight_format"]
