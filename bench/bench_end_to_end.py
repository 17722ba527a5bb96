"""Benchmark the whole trusted ``from_pretrained`` against a plain, unguarded load of the same repo.

Run: ``.venv/bin/python bench/bench_end_to_end.py [--repeats N] [--small]``

Input: the ``examples/custom_resnet`` resnet50d classifier with random weights, saved with
``register_for_auto_class`` + ``save_pretrained`` into a folder. Each measured load reads a
fresh copy of that folder (weights hard-linked), so the sandbox never serves a module from
its cache; only the audit cache is warm or cold as the row says.

Rows, measured alternately:

- plain: import the folder's ``configuration_resnet.py`` and ``modeling_resnet.py`` with
  ``importlib`` under a fresh package name, build the model from ``config.json`` and load
  ``model.safetensors`` with ``safetensors.torch.load_file`` + ``load_state_dict``;
- hubguard cold: ``AutoModelForImageClassification.from_pretrained(folder,
  trust_remote_code=True)`` with an empty content cache and an empty audit cache;
- hubguard warm: the same with the audit cache (and the content cache) kept from earlier loads.

Two tables: each load in a fresh Python process (what a script that loads a model pays,
torch and timm imports included on both sides), and each load inside one process that has
already imported everything (the loading work alone).

The jailed trial is a separate cost (``bench/bench_trial.py``); this script uses a policy
that extends ``default`` with ``[trial] mode = "off"`` and says so in its output.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import timm  # noqa: F401  # imported up front so neither side pays for it
import torch
from safetensors.torch import load_file

import hubguard
from hubguard.audit import _cache as audit_cache

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_resnet"
NO_TRIAL_POLICY = 'extends = "default"\nname = "default-without-trial"\n\n[trial]\nmode = "off"\n'


def _import_example() -> object:
    spec = importlib.util.spec_from_file_location(
        "bench_e2e_example", EXAMPLE / "__init__.py", submodule_search_locations=[str(EXAMPLE)]
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # spec is found: the folder exists
    sys.modules["bench_e2e_example"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]  # as above
    return module


def _save_example(folder: Path, *, small: bool) -> None:
    example = _import_example()
    example.ResnetConfig.register_for_auto_class()  # type: ignore[attr-defined]  # the example package
    example.ResnetModelForImageClassification.register_for_auto_class("AutoModelForImageClassification")  # type: ignore[attr-defined]
    config = example.tiny_config() if small else example.resnet50d_config()  # type: ignore[attr-defined]
    torch.manual_seed(0)
    example.ResnetModelForImageClassification(config).save_pretrained(folder)  # type: ignore[attr-defined]


def _fresh_copy(source: Path, parent: Path, index: int) -> Path:
    target = parent / f"copy-{index}"
    target.mkdir()
    for path in source.iterdir():
        if path.suffix == ".safetensors":
            os.link(path, target / path.name)
        else:
            shutil.copy2(path, target / path.name)
    return target


def _plain_load(folder: Path, index: int) -> torch.nn.Module:
    package = f"bench_e2e_plain_{index}"
    spec = importlib.util.spec_from_file_location(package, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # a folder spec
    sys.modules[package] = module
    configuration = importlib.import_module(f"{package}.configuration_resnet")
    modeling = importlib.import_module(f"{package}.modeling_resnet")
    settings = json.loads((folder / "config.json").read_text())
    config = configuration.ResnetConfig.from_dict(settings)
    model = modeling.ResnetModelForImageClassification(config)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model


def _hubguard_load(folder: Path, policy: Path) -> torch.nn.Module:
    return hubguard.AutoModelForImageClassification.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))


# Run in a fresh interpreter by the process-level rows: argv = [mode, folder, policy].
CHILD = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {bench_dir!r})
import bench_end_to_end as bench
from pathlib import Path
mode, folder, policy = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if mode == "plain":
    bench._plain_load(folder, 0)
else:
    bench._hubguard_load(folder, policy)
print(time.perf_counter() - started)
"""


def _child_seconds(mode: str, folder: Path, policy: Path, cache: Path) -> float:
    import subprocess

    environment = {**os.environ, "HUBGUARD_CACHE": str(cache), "OMP_NUM_THREADS": "2"}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", CHILD.format(bench_dir=str(Path(__file__).parent)), mode, str(folder), str(policy)],
        capture_output=True, text=True, env=environment, check=True,
    )
    del completed
    return time.perf_counter() - started


def _print_table(title: str, times: dict[str, list[float]]) -> None:
    plain = statistics.median(times["plain"])
    print(f"\n{title}")
    print(f"{'row':<16}{'median':>11}{'min':>11}{'ratio to plain':>16}")
    for row, values in times.items():
        median = statistics.median(values)
        print(f"{row:<16}{median * 1000:>9.1f}ms{min(values) * 1000:>9.1f}ms{median / plain:>15.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measured loads per row (default 5)")
    parser.add_argument("--small", action="store_true", help="use the tiny basic-block model instead of resnet50d")
    args = parser.parse_args()
    torch.set_num_threads(2)

    work = Path(tempfile.mkdtemp(prefix="hubguard-bench-e2e-"))
    try:
        os.environ["HUBGUARD_CACHE"] = str(work / "cache-warm")
        policy = work / "no-trial.toml"
        policy.write_text(NO_TRIAL_POLICY)
        saved = work / "saved"
        _save_example(saved, small=args.small)
        copies = work / "copies"
        copies.mkdir()

        # Warm-up: one load of each kind, so imports and first-use costs are paid on both sides.
        _plain_load(_fresh_copy(saved, copies, 0), 0)
        reference = _hubguard_load(_fresh_copy(saved, copies, 1), policy)

        times: dict[str, list[float]] = {"plain": [], "hubguard cold": [], "hubguard warm": []}
        index = 2
        for _ in range(args.repeats):
            for row in times:
                folder = _fresh_copy(saved, copies, index)
                if row == "hubguard cold":
                    os.environ["HUBGUARD_CACHE"] = str(work / f"cache-cold-{index}")
                    audit_cache.clear_memory()
                elif row == "hubguard warm":
                    os.environ["HUBGUARD_CACHE"] = str(work / "cache-warm")
                started = time.perf_counter()
                if row == "plain":
                    _plain_load(folder, index)
                else:
                    _hubguard_load(folder, policy)
                times[row].append(time.perf_counter() - started)
                index += 1

        process_times: dict[str, list[float]] = {"plain": [], "hubguard cold": [], "hubguard warm": []}
        for _ in range(args.repeats):
            for row in process_times:
                folder = _fresh_copy(saved, copies, index)
                cache = work / (f"cache-cold-{index}" if row == "hubguard cold" else "cache-warm")
                mode = "plain" if row == "plain" else "hubguard"
                process_times[row].append(_child_seconds(mode, folder, policy, cache))
                index += 1

        print(f"model: {'tiny' if args.small else 'resnet50d'}, {reference.num_parameters():,} parameters; "
              f"policy: default with [trial] mode = \"off\"; median of {args.repeats} loads per row")
        _print_table("each load in a fresh process (imports included on both sides):", process_times)
        _print_table("each load in one warmed-up process (loading work alone):", times)
        print("\ntargets: cold <= 1.25x, warm audit cache <= 1.10x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
