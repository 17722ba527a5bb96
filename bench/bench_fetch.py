"""Benchmark: fetch + verify of the saved resnet50d example from a warm cache, against sha256 alone.

The example model (``examples/custom_resnet``, resnet50d configuration, random weights)
is saved with ``save_pretrained`` into a folder, which is also committed to a git
repository. Each source is fetched once to fill the content cache, then timed:

- local folder: list the folder, read and hash every loaded file (the weights stream
  from disk, the cache already contains them), compute the content id, build the closure;
- ``git+file://`` from the warm cache: the verified listing comes from the cache
  manifest and every cached byte is hashed again before use; git is not run.

The floor is the least any verification can do: read the same files and compute their
sha256. Each timing is the best of ``--repeats`` runs.

Run: ``.venv/bin/python bench/bench_fetch.py``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

TARGET_RATIO = 2.0
_CHUNK = 1 << 20


def _best(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _hash_files(paths: list[Path]) -> None:
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)


def _save_example(folder: Path) -> None:
    import torch

    import custom_resnet

    torch.manual_seed(0)
    custom_resnet.register_auto_classes()
    model = custom_resnet.ResnetModelForImageClassification(custom_resnet.resnet50d_config())
    model.save_pretrained(folder)


def _commit(folder: Path) -> str:
    identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@hubguard.invalid"}
    identity |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@hubguard.invalid"}
    environment = {**os.environ, **identity}
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "example"]):
        subprocess.run(["git", "-C", str(folder), *command], check=True, env=environment)
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best is reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hubguard-bench-fetch-") as work:
        os.environ["HUBGUARD_CACHE"] = str(Path(work) / "cache")
        from hubguard.loader import fetch

        plain = Path(work) / "plain"
        _save_example(plain)
        repository = Path(work) / "repo"
        _save_example(repository)
        commit = _commit(repository)
        git_source = f"git+file://{repository}"

        snapshot = fetch(str(plain))
        fetch(git_source, revision=commit)  # fills the cache
        files = [plain / path for path in snapshot.files]
        total = sum(f.size for f in snapshot.files.values())

        floor = _best(lambda: _hash_files(files), args.repeats)
        local = _best(lambda: fetch(str(plain)), args.repeats)
        warm_git = _best(lambda: fetch(git_source, revision=commit), args.repeats)

    print(f"resnet50d example: {len(files)} files, {total / 1e6:.1f} MB, best of {args.repeats} runs")
    print(f"{'source':<28} {'hubguard':>10} {'floor':>10} {'ratio':>7}")
    rows = [("local folder", local), ("git+file://, warm cache", warm_git)]
    for name, ours in rows:
        print(f"{name:<28} {ours * 1000:>8.1f}ms {floor * 1000:>8.1f}ms {ours / floor:>6.2f}x")
    worst = max(ours for _, ours in rows) / floor
    verdict = "met" if worst <= TARGET_RATIO else "not met"
    print(f"target: fetch + verify <= {TARGET_RATIO:.1f}x the floor (sha256 of the same bytes): {verdict} ({worst:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
