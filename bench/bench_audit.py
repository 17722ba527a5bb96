"""Benchmark the static audit against bandit alone and against the ast.parse floor.

Run: ``.venv/bin/python bench/bench_audit.py``. Prints, side by side:

1. a cold in-process audit of the example's remote code (configuration_resnet.py and
   modeling_resnet.py) vs bandit alone on the same files (target: at most 1.5x);
2. a cached re-audit of unchanged bytes vs a cold one (target: at least 20x faster);
3. lines per second on a generated 20,000-line modeling file: the full audit, hubguard's
   rules alone, bandit alone, and ``ast.parse`` of the same text (the floor).

Each number is the median of several runs after one warm-up run, so plugin loading and
imports are excluded from both sides.
"""

from __future__ import annotations

import ast
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = [ROOT / "examples" / "custom_resnet" / name for name in ("configuration_resnet.py", "modeling_resnet.py")]

BLOCK = '''

class Block{index}(nn.Module):
    """Residual block {index}: two 3x3 convolutions with batch norm."""

    expansion: int = 1

    def __init__(self, channels: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scale = math.sqrt(channels)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        shortcut = x
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.dropout(x)
        x = self.bn2(self.conv2(x))
        if mask is not None:
            x = x.masked_fill(mask, 0.0)
        assert x.shape == shortcut.shape, "shape mismatch in block {index}"
        return F.relu(x + shortcut) / self.scale

    def extra_repr(self) -> str:
        return f"channels={{self.conv1.in_channels}}, index={index}"
'''

HEADER = '''"""A generated modeling file for the audit benchmark."""

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from transformers import PreTrainedModel
'''


def generated_modeling_file(lines: int = 20_000) -> str:
    parts = [HEADER]
    index = 0
    while sum(part.count("\n") for part in parts) < lines:
        parts.append(BLOCK.format(index=index))
        index += 1
    text = "".join(parts)
    return "\n".join(text.splitlines()[:lines]) + "\n"


def median_seconds(function: Callable[[], object], runs: int) -> float:
    function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bandit_alone(paths: list[Path]) -> None:
    """Run bandit's own manager on files, as ``bandit FILE…`` does, without output."""
    from bandit.core import config, manager

    bandit_manager = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
    bandit_manager.discover_files([str(path) for path in paths])
    bandit_manager.run_tests()


def main() -> int:
    os.environ["HUBGUARD_CACHE"] = tempfile.mkdtemp(prefix="hubguard-bench-")
    from hubguard.audit import _cache, audit_snapshots, snapshot_of_paths
    from hubguard.audit._bandit import run_bandit
    from hubguard.audit.engine import scan_source
    from hubguard.audit.policy import load_policy

    policy = load_policy("default")
    snapshots = snapshot_of_paths(EXAMPLE_FILES)
    example_lines = sum(path.read_text().count("\n") for path in EXAMPLE_FILES)

    def cold_audit() -> None:
        _cache.clear_memory()
        os.environ["HUBGUARD_NO_AUDIT_CACHE"] = "1"
        try:
            audit_snapshots(snapshots, policy)
        finally:
            del os.environ["HUBGUARD_NO_AUDIT_CACHE"]

    def cached_audit() -> None:
        audit_snapshots(snapshots, policy)

    print(f"machine: {os.cpu_count()} CPUs visible; Python {sys.version.split()[0]}")
    print(f"\n1. example remote code ({len(EXAMPLE_FILES)} files, {example_lines} lines)")
    cold = median_seconds(cold_audit, 15)
    bandit = median_seconds(lambda: bandit_alone(EXAMPLE_FILES), 15)
    ratio = cold / bandit
    print(f"   cold hubguard audit  {cold * 1000:8.2f} ms")
    print(f"   bandit alone         {bandit * 1000:8.2f} ms")
    print(f"   ratio audit/bandit   {ratio:8.2f}x   (target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")

    cached_audit()
    cached = median_seconds(cached_audit, 50)
    speedup = cold / cached
    print("\n2. re-audit of unchanged bytes")
    print(f"   cold audit           {cold * 1000:8.2f} ms")
    print(f"   cached re-audit      {cached * 1000:8.2f} ms")
    print(f"   speed-up             {speedup:8.1f}x   (target >= 20x: {'met' if speedup >= 20 else 'NOT met'})")

    text = generated_modeling_file()
    lines = text.count("\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "modeling_generated.py"
        path.write_text(text)
        full = median_seconds(lambda: (scan_source(text, "modeling_generated.py", policy), run_bandit(text, "modeling_generated.py", policy)), 3)
        rules = median_seconds(lambda: scan_source(text, "modeling_generated.py", policy), 3)
        bandit_file = median_seconds(lambda: bandit_alone([path]), 3)
        floor = median_seconds(lambda: ast.parse(text), 3)
    print(f"\n3. generated modeling file ({lines:,} lines), lines per second")
    for label, seconds in (
        ("hubguard audit (rules + bandit)", full),
        ("hubguard rules alone", rules),
        ("bandit alone", bandit_file),
        ("ast.parse floor", floor),
    ):
        print(f"   {label:32s} {lines / seconds:12,.0f} lines/s  ({seconds * 1000:8.1f} ms)")
    print(f"   ratio audit/bandit {full / bandit_file:.2f}x, audit/floor {full / floor:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
