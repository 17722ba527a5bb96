"""Benchmark: save and load of the resnet50d example with hubguard against plain safetensors.

The floor is what a script without hubguard does with the same module:
``safetensors.torch.save_file(state_dict)`` to save, and ``load_file`` followed by
``module.load_state_dict`` to load. Each timing is the best of ``--repeats`` runs.

Rows:

- save: ``model.save_pretrained(folder)`` (weights, config.json and the code files)
  against ``save_file``.
- load weights: hubguard's weight step on an already built model (read the safetensors
  files of a fetched snapshot, compare keys and shapes, copy into the model) against
  ``load_file`` + ``load_state_dict``. This is the row the target applies to.
- load from snapshot: ``_from_snapshot``, which also builds the model from config.json,
  against building the module directly and then ``load_file`` + ``load_state_dict``.
- from_pretrained: the public call on a folder, including the loader's verification of
  every byte (sha256 of the weights), against the same floor as the row above.

Run: ``.venv/bin/python bench/bench_save_load.py``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import custom_resnet  # noqa: E402  # the example package lives outside the installed tree

from hubguard import _serialization  # noqa: E402
from hubguard.loader import fetch  # noqa: E402

TARGET_RATIO = 1.10


def _best(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best is reported")
    args = parser.parse_args()

    torch.manual_seed(0)
    custom_resnet.register_auto_classes()
    config = custom_resnet.resnet50d_config()
    model_class = custom_resnet.ResnetModelForImageClassification
    model = model_class(config).eval()
    state = {key: tensor.contiguous() for key, tensor in model.state_dict().items()}

    with tempfile.TemporaryDirectory(prefix="hubguard-bench-") as work:
        floor_file = Path(work) / "floor.safetensors"
        folder = Path(work) / "saved"

        save_floor = _best(lambda: save_file(state, floor_file), args.repeats)
        save_ours = _best(lambda: model.save_pretrained(folder), args.repeats)

        def floor_load() -> None:
            model.load_state_dict(load_file(floor_file))

        def floor_build_and_load() -> None:
            model_class(config).load_state_dict(load_file(floor_file))

        snapshot = fetch(str(folder))

        def ours_load_weights() -> None:
            weights, _ = _serialization.read_weights(snapshot)
            report = _serialization.compare_keys(model, weights)
            _serialization.load_matching(model, weights, report)

        load_floor = _best(floor_load, args.repeats)
        load_ours = _best(ours_load_weights, args.repeats)
        build_floor = _best(floor_build_and_load, args.repeats)
        from_snapshot = _best(lambda: model_class._from_snapshot(snapshot), args.repeats)
        from_pretrained = _best(lambda: model_class.from_pretrained(folder), args.repeats)

        loaded = model_class.from_pretrained(folder)
        images = torch.randn(1, 3, 224, 224)
        identical = torch.equal(loaded(images)["logits"], model(images)["logits"])

    rows = [
        ("save", save_ours, save_floor),
        ("load weights", load_ours, load_floor),
        ("load from snapshot", from_snapshot, build_floor),
        ("from_pretrained", from_pretrained, build_floor),
    ]
    print(f"resnet50d example: {model.num_parameters():,} parameters, best of {args.repeats} runs")
    print(f"{'step':<20} {'hubguard':>10} {'floor':>10} {'ratio':>7}")
    for name, ours, floor in rows:
        print(f"{name:<20} {ours * 1000:>8.1f}ms {floor * 1000:>8.1f}ms {ours / floor:>6.2f}x")
    ratio = load_ours / load_floor
    verdict = "met" if ratio <= TARGET_RATIO else "not met"
    print(f"target: load weights <= {TARGET_RATIO:.2f}x the floor: {verdict} ({ratio:.2f}x)")
    print(f"outputs bit-identical after save -> load: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
