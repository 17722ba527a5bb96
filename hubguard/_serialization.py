"""Save and load model weights as safetensors, never as pickle.

Layout (the Hugging Face convention, so transformers reads it too):

- up to ``max_shard_size``: one ``model.safetensors``;
- above it: ``model-00001-of-0000N.safetensors`` … plus ``model.safetensors.index.json``
  (``{"metadata": {"total_size": <bytes>}, "weight_map": {"<key>": "<shard file>"}}``).

Tied weights (one ``Parameter`` reachable under two names) are stored once, under the
first name in ``state_dict()`` order. Loading rebuilds the model, whose ``__init__``
ties them again, so a missing name whose tensor is shared with a loaded name is not
reported missing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save_file

from hubguard.errors import WeightsError

if TYPE_CHECKING:
    from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
PICKLE_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
DEFAULT_MAX_SHARD_SIZE = "5GB"

_SHARD_RE = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
# Shown in the error; longer key lists are cut with a count of the rest.
_MAX_LISTED_KEYS = 20


@dataclass(frozen=True)
class KeyReport:
    """How a checkpoint's keys compare with a model's ``state_dict()``.

    ``mismatched`` contains ``(key, checkpoint shape, model shape)`` triples.
    """

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    @property
    def clean(self) -> bool:
        """True when every key matches by name and shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """Return every problem in one message, missing keys first."""
        parts = []
        if self.missing:
            parts.append(f"missing keys: {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys: {_listing(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{key} (checkpoint {list(saved)}, model {list(model)})" for key, saved, model in self.mismatched]
            parts.append(f"shape mismatches: {_listing(shapes)}")
        return "; ".join(parts)


def parse_size(size: int | str) -> int:
    """Return a size in bytes from an int or a string such as ``"5GB"``, ``"500MB"`` or ``"2GiB"``.

    Raises:
        ValueError: the string is not a positive number with an optional unit.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"max_shard_size must be positive, got {size}")
        return size
    match = _SIZE_RE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise ValueError(f"max_shard_size {size!r} is not a size such as '5GB' or '500MB'")
    value = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").upper()])
    if value <= 0:
        raise ValueError(f"max_shard_size must be positive, got {size!r}")
    return value


def save_weights(module: torch.nn.Module, folder: Path, *, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> list[str]:
    """Write ``module.state_dict()`` to ``folder`` as safetensors, sharded above ``max_shard_size``.

    Weight files of an earlier save in ``folder`` that the new save does not rewrite are
    removed, so an index never sits next to stale shards.

    Returns:
        The file names written, sorted.
    """
    limit = parse_size(max_shard_size)
    tensors = _unique_tensors(module.state_dict())
    shards = _split(tensors, limit)

    if len(shards) == 1:
        names = [SAFE_WEIGHTS_NAME]
    else:
        names = [f"model-{number:05d}-of-{len(shards):05d}.safetensors" for number in range(1, len(shards) + 1)]
    for name, shard in zip(names, shards):
        _write_atomic(folder / name, lambda target, shard=shard: save_file(shard, target, metadata={"format": "pt"}))
    written = list(names)

    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(_nbytes(tensor) for tensor in tensors.values())},
            "weight_map": {key: name for name, shard in zip(names, shards) for key in sorted(shard)},
        }
        text = json.dumps(index, indent=2, sort_keys=True) + "\n"
        _write_atomic(folder / SAFE_WEIGHTS_INDEX_NAME, lambda target: Path(target).write_text(text, encoding="utf-8"))
        written.append(SAFE_WEIGHTS_INDEX_NAME)

    _remove_stale_weights(folder, keep=set(written))
    logger.debug("wrote %d tensor(s) in %d file(s) to %s", len(tensors), len(shards), folder)
    return sorted(written)


def read_weights(snapshot: Snapshot, *, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], str] | None:
    """Read every weight tensor of a snapshot from its safetensors files.

    With ``allow_pickle`` (a policy's ``[weights] allow_pickle``), a checkpoint that has
    only ``pytorch_model.bin`` (or its index and shards) is read after a pickle opcode scan
    finds no dangerous globals, and only with ``torch.load(weights_only=True)``.

    Returns:
        The tensors by key, and the repository path to name in messages (the index
        file for a sharded checkpoint). ``None`` when the snapshot has no weight file
        at all, because only the caller knows whether the model needs one.

    Raises:
        WeightsError: no safetensors weights (pickled formats are refused, never
            loaded), a file that is not valid safetensors, or an index that names
            missing shards or keys.
    """
    if snapshot.has(SAFE_WEIGHTS_INDEX_NAME):
        weight_map = _read_index(snapshot)
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(_read_file(snapshot, shard))
        listed_but_absent = sorted(key for key in weight_map if key not in tensors)
        if listed_but_absent:
            raise WeightsError(
                f"the index lists keys that no shard contains: {_listing(listed_but_absent)}",
                path=SAFE_WEIGHTS_INDEX_NAME,
                hint="save the model again so the index and the shards agree",
            )
        return tensors, SAFE_WEIGHTS_INDEX_NAME

    if snapshot.has(SAFE_WEIGHTS_NAME):
        return _read_file(snapshot, SAFE_WEIGHTS_NAME), SAFE_WEIGHTS_NAME

    other = [entry.path for entry in snapshot.weight_files()]
    if allow_pickle and (snapshot.has(PICKLE_WEIGHTS_NAME) or snapshot.has(PICKLE_WEIGHTS_INDEX_NAME)):
        return _read_pickle_checkpoint(snapshot)
    if other:
        raise WeightsError(
            f"no safetensors weights in {snapshot.source.display()}; found {', '.join(other)}, "
            "which hubguard does not load because pickle-based formats can run code",
            path=other[0],
            hint="convert the checkpoint to model.safetensors (safetensors.torch.save_file) in a trusted environment",
        )
    return None


def _read_pickle_checkpoint(snapshot: Snapshot) -> tuple[dict[str, torch.Tensor], str]:
    """Read ``pytorch_model.bin`` (or its shards) with ``torch.load(weights_only=True)`` after an opcode scan."""
    if snapshot.has(PICKLE_WEIGHTS_INDEX_NAME):
        try:
            weight_map = json.loads(snapshot.read_bytes(PICKLE_WEIGHTS_INDEX_NAME))["weight_map"]
        except (KeyError, TypeError, ValueError) as error:
            raise WeightsError(
                f"invalid index file: {error}", path=PICKLE_WEIGHTS_INDEX_NAME, hint="save the checkpoint again"
            ) from error
        paths, named = sorted(set(weight_map.values())), PICKLE_WEIGHTS_INDEX_NAME
    else:
        paths, named = [PICKLE_WEIGHTS_NAME], PICKLE_WEIGHTS_NAME
    tensors: dict[str, torch.Tensor] = {}
    for path in paths:
        if not snapshot.has(path):
            raise WeightsError(f"the index names {path}, which is missing", path=named, hint="save the checkpoint again")
        tensors.update(_read_pickle_file(snapshot, path))
    return tensors, named


def _read_pickle_file(snapshot: Snapshot, path: str) -> dict[str, torch.Tensor]:
    import io

    from picklescan.scanner import SafetyLevel, scan_bytes

    data = snapshot.read_bytes(path)
    scan = scan_bytes(io.BytesIO(data), path, ".bin")
    dangerous = sorted(
        f"{entry.module}.{entry.name}" for entry in scan.globals if entry.safety == SafetyLevel.Dangerous
    )
    if scan.scan_err or dangerous:
        found = ", ".join(dangerous) if dangerous else "its opcodes could not be read completely"
        raise WeightsError(
            f"pickle weights refused before loading: {found}",
            rule_id="HG241",
            path=path,
            hint="convert the checkpoint to safetensors in a trusted environment",
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or others for refused content
        raise WeightsError(
            f"torch.load(weights_only=True) refused {path}: {error}",
            rule_id="HG241",
            path=path,
            hint="convert the checkpoint to safetensors in a trusted environment",
        ) from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(
            f"{path} does not contain a flat mapping of tensor names to tensors",
            path=path,
            hint="save model.state_dict() itself",
        )
    return dict(state)


def missing_weights_error(snapshot: Snapshot) -> WeightsError:
    """Return the error for a model with parameters whose snapshot has no weight file."""
    return WeightsError(
        f"no weights file in {snapshot.source.display()}@{snapshot.revision.commit}",
        hint=f"add {SAFE_WEIGHTS_NAME} (or {SAFE_WEIGHTS_INDEX_NAME} with its shards) to the repository",
    )


def compare_keys(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> KeyReport:
    """Compare checkpoint tensors with ``model.state_dict()`` by name and shape.

    A model key absent from the checkpoint is not missing when the model ties it to a
    key that is present (both names reach the same tensor).
    """
    expected = model.state_dict()
    aliases = _alias_groups(expected)
    missing = tuple(
        key for key in expected if key not in state and not any(other in state for other in aliases.get(key, ()))
    )
    unexpected = tuple(sorted(key for key in state if key not in expected))
    mismatched = tuple(
        (key, tuple(tensor.shape), tuple(expected[key].shape))
        for key, tensor in sorted(state.items())
        if key in expected and tensor.shape != expected[key].shape
    )
    return KeyReport(missing=missing, unexpected=unexpected, mismatched=mismatched)


def load_matching(model: torch.nn.Module, state: Mapping[str, torch.Tensor], report: KeyReport) -> None:
    """Copy the tensors whose names and shapes match into ``model`` (in place, keeping ties)."""
    skipped = set(report.unexpected) | {key for key, _, _ in report.mismatched}
    matching = {key: tensor for key, tensor in state.items() if key not in skipped}
    model.load_state_dict(matching, strict=False)


# --- saving helpers -------------------------------------------------------------------


def _unique_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop tied aliases and make every tensor safe for ``save_file``.

    safetensors refuses tensors that overlap in memory. Names that reach the very same
    tensor (tied weights) keep only the first name. Distinct tensors that still share
    storage (overlapping views) are saved as copies, and non-contiguous ones made contiguous.
    """
    by_storage: dict[tuple[torch.device, int], list[str]] = {}
    for key, tensor in state.items():
        if tensor.numel() == 0:
            continue
        by_storage.setdefault((tensor.device, tensor.untyped_storage().data_ptr()), []).append(key)

    kept: dict[str, torch.Tensor] = {}
    seen_views: dict[tuple[object, ...], str] = {}
    copy_keys: set[str] = set()
    for keys in by_storage.values():
        distinct = []
        for key in keys:
            view = _view_identity(state[key])
            if view in seen_views:
                logger.debug("not saving %s: it is tied to %s", key, seen_views[view])
                continue
            seen_views[view] = key
            distinct.append(key)
        if len(distinct) > 1:
            copy_keys.update(distinct)

    for key, tensor in state.items():
        if tensor.numel() == 0:
            kept[key] = tensor.contiguous()
        elif seen_views.get(_view_identity(tensor)) != key:
            continue
        elif key in copy_keys:
            kept[key] = tensor.detach().clone(memory_format=torch.contiguous_format)
        else:
            kept[key] = tensor.detach().contiguous()
    return kept


def _view_identity(tensor: torch.Tensor) -> tuple[object, ...]:
    return (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _split(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Fill shards in ``state_dict()`` order; a tensor larger than ``limit`` gets a shard of its own."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = _nbytes(tensor)
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def _write_atomic(target: Path, write: object) -> None:
    """Write through a temporary name and rename, so an interrupted save leaves no partial file."""
    partial = target.with_name(target.name + ".partial")
    try:
        write(str(partial))  # type: ignore[operator]  # a callable taking the path
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _remove_stale_weights(folder: Path, *, keep: set[str]) -> None:
    for path in folder.iterdir():
        name = path.name
        is_weights = name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME) or _SHARD_RE.fullmatch(name)
        if is_weights and name not in keep and path.is_file():
            logger.debug("removing stale weights file %s", path)
            path.unlink()


# --- loading helpers ------------------------------------------------------------------


def _read_index(snapshot: Snapshot) -> dict[str, str]:
    try:
        index = json.loads(snapshot.read_bytes(SAFE_WEIGHTS_INDEX_NAME))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(
            f"the weights index is not valid JSON: {error}",
            path=SAFE_WEIGHTS_INDEX_NAME,
            hint="save the model again to rewrite the index",
        ) from error
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in weight_map.items()
    ):
        raise WeightsError(
            "the weights index has no weight_map object of key -> shard file",
            path=SAFE_WEIGHTS_INDEX_NAME,
            hint='write {"weight_map": {"<tensor key>": "<shard>.safetensors"}}',
        )
    for shard in sorted(set(weight_map.values())):
        if not shard.endswith(".safetensors") or not snapshot.has(shard):
            raise WeightsError(
                f"the weights index names the shard {shard!r}, which is not a safetensors file of the repository",
                path=SAFE_WEIGHTS_INDEX_NAME,
                hint="upload the missing shard or save the model again",
            )
    return weight_map


def _read_file(snapshot: Snapshot, path: str) -> dict[str, torch.Tensor]:
    """Read one safetensors file; the parser never executes file content."""
    blob = snapshot.blob_paths.get(path)
    try:
        if blob is not None:
            return load_file(blob)
        return load_safetensors_bytes(snapshot.read_bytes(path))
    except (SafetensorError, ValueError, OSError) as error:
        raise WeightsError(
            f"{path} is not a valid safetensors file: {error}",
            path=path,
            hint="re-save the weights with safetensors.torch.save_file",
        ) from error


def _alias_groups(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, ...]]:
    """Map each key to the other keys that reach the same tensor (tied weights)."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for key, tensor in state.items():
        if tensor.numel():
            groups.setdefault(_view_identity(tensor), []).append(key)
    aliases: dict[str, tuple[str, ...]] = {}
    for keys in groups.values():
        if len(keys) > 1:
            for key in keys:
                aliases[key] = tuple(other for other in keys if other != key)
    return aliases


def _listing(items: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED_KEYS])
    if len(items) > _MAX_LISTED_KEYS:
        shown += f" and {len(items) - _MAX_LISTED_KEYS} more"
    return shown


__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "KeyReport",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "compare_keys",
    "load_matching",
    "missing_weights_error",
    "parse_size",
    "read_weights",
    "save_weights",
]
