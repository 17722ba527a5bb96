"""Weight files: safetensors headers are validated from their bytes, pickles are read as opcodes only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
from pathlib import Path

import pytest

from hubguard.audit import audit
from hubguard.audit.policy import load_policy
from hubguard.audit.weights import check_safetensors_header, scan_weights
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot

DTYPES = load_policy("default").weights.dtypes


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def check(blob: bytes, *, max_header_bytes: int = 1_000_000) -> int:
    return check_safetensors_header(io.BytesIO(blob), len(blob), max_header_bytes=max_header_bytes, dtypes=DTYPES)


VALID_HEADER = {
    "__metadata__": {"format": "pt"},
    "weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "bias": {"dtype": "F16", "shape": [2], "data_offsets": [16, 20]},
}


class TestSafetensorsHeader:
    def test_valid(self) -> None:
        assert check(safetensors_bytes(VALID_HEADER, bytes(20))) == 2

    def test_matches_safetensors_library(self) -> None:
        numpy = pytest.importorskip("numpy")
        from safetensors.numpy import save

        blob = save({"a": numpy.zeros((3, 4), dtype=numpy.float32), "b": numpy.ones(5, dtype=numpy.int64)})
        assert check(blob) == 2

    def test_header_over_bound(self) -> None:
        with pytest.raises(ValueError, match="exceeds weights.max_header_bytes = 10"):
            check(safetensors_bytes(VALID_HEADER, bytes(20)), max_header_bytes=10)

    def test_header_past_end(self) -> None:
        with pytest.raises(ValueError, match="runs past the end"):
            check(struct.pack("<Q", 1000) + b"{}")

    def test_truncated(self) -> None:
        with pytest.raises(ValueError, match="fewer than the 8-byte header length"):
            check(b"\x01\x00")

    def test_not_json(self) -> None:
        with pytest.raises(ValueError, match="header is not valid JSON"):
            check(struct.pack("<Q", 3) + b"{{{")

    def test_bad_dtype(self) -> None:
        header = {"w": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 8]}}
        with pytest.raises(ValueError, match="dtype 'OBJ'"):
            check(safetensors_bytes(header, bytes(8)))

    def test_negative_shape(self) -> None:
        header = {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}
        with pytest.raises(ValueError, match="dimensions must be non-negative integers"):
            check(safetensors_bytes(header, bytes(4)))

    def test_offsets_outside_data(self) -> None:
        header = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
        with pytest.raises(ValueError, match="outside the 8-byte data section"):
            check(safetensors_bytes(header, bytes(8)))

    def test_size_mismatch(self) -> None:
        header = {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
        with pytest.raises(ValueError, match="spans 8 bytes but shape \\[3\\] of F32 needs 12"):
            check(safetensors_bytes(header, bytes(8)))

    def test_overlap(self) -> None:
        header = {
            "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
            "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
        }
        with pytest.raises(ValueError, match="gap or overlap"):
            check(safetensors_bytes(header, bytes(6)))

    def test_trailing_bytes(self) -> None:
        header = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}
        with pytest.raises(ValueError, match="tensors cover 4 of the 9-byte data section"):
            check(safetensors_bytes(header, bytes(9)))


class _CallsSystem:
    """Pickles into a call of os.system; it is only ever read as opcodes here."""

    def __reduce__(self):
        return (os.system, ("true",))


def snapshot_with(tmp_path: Path, files: dict[str, bytes]):
    blobs = {}
    for name, data in files.items():
        blob = tmp_path / f"blob-{name}"
        blob.write_bytes(data)
        blobs[name] = (blob, len(data), hashlib.sha256(data).hexdigest())
    return build_snapshot(SourceRef("local", str(tmp_path)), PinnedRevision(None, "sha256:" + "0" * 64), {"m.py": b"X = 1\n"}, blob_files=blobs)


class TestScanWeights:
    def test_lists_formats_and_sizes(self, tmp_path: Path) -> None:
        blob = safetensors_bytes(VALID_HEADER, bytes(20))
        snapshot = snapshot_with(tmp_path, {"model.safetensors": blob, "weights.npz": b"PK"})
        files, findings = scan_weights(snapshot, load_policy("default"))
        assert [(f.path, f.format, f.size, f.tensors) for f in files] == [
            ("model.safetensors", "safetensors", len(blob), 2),
            ("weights.npz", "pickle", 2, None),
        ]

    def test_invalid_safetensors_denied(self, tmp_path: Path) -> None:
        snapshot = snapshot_with(tmp_path, {"model.safetensors": struct.pack("<Q", 99) + b"{}"})
        _, findings = scan_weights(snapshot, load_policy("default"))
        assert [(f.rule_id, f.verdict, f.path) for f in findings] == [("HG242", "deny", "model.safetensors")]

    def test_pickle_denied_with_globals(self, tmp_path: Path) -> None:
        data = pickle.dumps({"weight": [1.0, 2.0], "factory": io.BytesIO}, protocol=4)
        snapshot = snapshot_with(tmp_path, {"pytorch_model.pkl": data})
        files, findings = scan_weights(snapshot, load_policy("default"))
        assert files[0].pickle_globals == ("_io.BytesIO",)
        assert [(f.rule_id, f.verdict, f.policy_key) for f in findings] == [("HG240", "deny", "weights.allow_pickle")]

    def test_pickle_allowed_by_policy_warns(self, tmp_path: Path) -> None:
        policy_file = tmp_path / "p.toml"
        policy_file.write_text('extends = "default"\n[weights]\nallow_pickle = true\n')
        snapshot = snapshot_with(tmp_path, {"w.pkl": pickle.dumps([1, 2, 3])})
        _, findings = scan_weights(snapshot, load_policy(policy_file))
        assert [(f.rule_id, f.verdict) for f in findings] == [("HG240", "warn")]

    def test_dangerous_global_denied_even_when_allowed(self, tmp_path: Path) -> None:
        policy_file = tmp_path / "p.toml"
        policy_file.write_text('extends = "default"\n[weights]\nallow_pickle = true\n')
        marker = tmp_path / "marker"
        snapshot = snapshot_with(tmp_path, {"w.bin": pickle.dumps(_CallsSystem())})
        files, findings = scan_weights(snapshot, load_policy(policy_file))
        assert files[0].pickle_globals == ("posix.system",)
        assert [(f.rule_id, f.verdict) for f in findings] == [("HG240", "warn"), ("HG241", "deny")]
        assert not marker.exists()

    def test_audit_report_lists_weights(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / "modeling_x.py").write_text("import torch\n")
        (repo / "model.safetensors").write_bytes(safetensors_bytes(VALID_HEADER, bytes(20)))
        report = audit(str(repo))
        assert [(w.path, w.format, w.tensors) for w in report.weights] == [("model.safetensors", "safetensors", 2)]
        assert report.verdict == "allow"


def torch_style_zip(payload: bytes) -> bytes:
    """Return a zip laid out like torch.save's format, with ``payload`` as its pickle."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", payload)
        archive.writestr("model/version", "3\n")
    return buffer.getvalue()


class TestWeightFormats:
    def test_zip_pickle_dangerous_global(self, tmp_path: Path) -> None:
        marker = tmp_path / "marker"
        snapshot = snapshot_with(tmp_path, {"pytorch_model.bin": torch_style_zip(pickle.dumps(_CallsSystem()))})
        files, findings = scan_weights(snapshot, load_policy("default"))
        assert files[0].pickle_globals == ("posix.system",)
        assert [(f.rule_id, f.verdict) for f in findings] == [("HG240", "deny"), ("HG241", "deny")]
        assert not marker.exists()

    def test_unknown_format_warns(self, tmp_path: Path) -> None:
        snapshot = snapshot_with(tmp_path, {"flax_model.msgpack": b"\x80"})
        files, findings = scan_weights(snapshot, load_policy("default"))
        assert [(f.path, f.format) for f in files] == [("flax_model.msgpack", "msgpack")]
        assert [(f.rule_id, f.verdict, f.severity.label) for f in findings] == [("HG243", "warn", "medium")]
