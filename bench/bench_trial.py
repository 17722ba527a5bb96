"""Measure the time the jailed trial adds to loading the resnet50d example.

Run: ``.venv/bin/python bench/bench_trial.py [--repeat N]``

The script saves the example (ResNet-50-D, random weights) into a git repository in a
temp folder. It then loads it in fresh subprocesses with
``AutoModelForImageClassification.from_pretrained(..., trust_remote_code=True)``,
alternating a policy with ``[trial] mode = "off"`` and one with ``mode = "if-available"``.
It prints the median wall-clock time of each, the difference and the ratio.
Each load runs in its own process so both start from the same cold interpreter
(imports of torch and timm included), as a user's first load would.
The trial's dummy input is the one the loader picks: 1×3×64×64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time
    started = time.perf_counter()
    import hubguard

    trials = []
    handler = logging.Handler()
    # The closing log line of run_trial carries the child's duration as its third argument.
    handler.emit = lambda record: trials.append(record.args[2]) if "%.2f s" in record.msg else None
    jail_logger = logging.getLogger("hubguard.sandbox.jail")
    jail_logger.addHandler(handler)
    jail_logger.setLevel(logging.INFO)
    policy = hubguard.load_policy(sys.argv[3])
    model = hubguard.AutoModelForImageClassification.from_pretrained(
        sys.argv[1], revision=sys.argv[2], trust_remote_code=True, policy=policy
    )
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "parameters": model.num_parameters(), "trials": trials}))
    """
)

POLICY = """\
schema_version = 1
name = "bench-trial-{mode}"
extends = "default"

[trial]
mode = "{mode}"
"""


def _build_repository(work_dir: Path) -> tuple[Path, str]:
    from hubguard.demo import build_example_repo

    repo, commit, _, _ = build_example_repo(work_dir, small=False)
    return repo, commit


def _load_seconds(repo: Path, commit: str, policy: Path, *, trial_expected: bool) -> tuple[float, float]:
    """Load once in a fresh process; return the load's wall-clock seconds and the trial child's."""
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(repo), commit, str(policy)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise SystemExit(f"load under {policy.name} failed:\n{completed.stderr[-3000:]}")
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    if bool(measured["trials"]) != trial_expected:
        raise SystemExit(f"load under {policy.name}: expected trial runs: {trial_expected}, seen: {measured['trials']}")
    return float(measured["seconds"]), float(sum(measured["trials"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured loads per policy, after one warm-up each (default: 5)")
    arguments = parser.parse_args()

    from hubguard.sandbox.jail import jail_support

    support = jail_support()
    with tempfile.TemporaryDirectory(prefix="hubguard-bench-trial-") as folder:
        work_dir = Path(folder)
        repo, commit = _build_repository(work_dir)
        policies = {}
        for mode in ("off", "if-available"):
            policies[mode] = work_dir / f"trial-{mode}.toml"
            policies[mode].write_text(POLICY.format(mode=mode))

        times: dict[str, list[float]] = {"off": [], "if-available": []}
        child_times: list[float] = []
        for mode in times:  # warm the page cache and each policy's audit cache
            _load_seconds(repo, commit, policies[mode], trial_expected=mode != "off")
        for _ in range(arguments.repeat):
            for mode in times:
                seconds, child_seconds = _load_seconds(repo, commit, policies[mode], trial_expected=mode != "off")
                times[mode].append(seconds)
                if mode != "off":
                    child_times.append(child_seconds)

    without = statistics.median(times["off"])
    with_trial = statistics.median(times["if-available"])
    print(f"jail layers available: {', '.join(name for name in ('landlock', 'seccomp') if getattr(support, name)) or 'none'}"
          f" (Landlock ABI {support.landlock_abi})")
    print(f"resnet50d load, {arguments.repeat} runs each, median wall-clock seconds (fresh process per load):")
    print(f"  {'without trial':<18} {without:8.2f} s   runs: {', '.join(f'{value:.2f}' for value in times['off'])}")
    print(f"  {'with jailed trial':<18} {with_trial:8.2f} s   runs: {', '.join(f'{value:.2f}' for value in times['if-available'])}")
    print(f"  {'trial adds':<18} {with_trial - without:8.2f} s   (the trial child itself: median {statistics.median(child_times):.2f} s)")
    print(f"  {'ratio':<18} {with_trial / without:8.2f}x")


if __name__ == "__main__":
    main()
