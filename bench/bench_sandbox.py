"""Benchmark the sandbox: import + instantiation and forward pass, sandboxed vs plain.

Run: ``.venv/bin/python bench/bench_sandbox.py [--repeats N]``

1. Import the example's ``configuration_resnet.py`` and ``modeling_resnet.py`` and build
   a ResNet-50-D classifier: plainly (``importlib`` from a temporary package) and through
   ``import_snapshot`` (restricted compile, guards, audit hook), alternating. The audit
   hook is installed for both; for the plain side it returns after one lookup per event.
   Each repetition uses a fresh module name or snapshot source, so nothing is served from
   a cache. Reports the minimum of each (the least disturbed run) and the ratio.
2. Forward pass of an 8x3x224x224 batch through the sandboxed model vs a plain timm
   ResNet with the same weights, alternating which goes first, minimum of each and the ratio.
3. Extra memory: Python heap (tracemalloc) retained by one sandboxed load minus one
   plain load; tensors live outside tracemalloc and are the same in both.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import timm  # noqa: F401  # imported up front so neither side pays for it
import torch
from timm.models.resnet import Bottleneck, ResNet

from hubguard.audit.policy import load_policy
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_resnet"
FILES = ("configuration_resnet.py", "modeling_resnet.py")
RESNET50D = {"block_type": "bottleneck", "layers": [3, 4, 6, 3], "stem_width": 32, "stem_type": "deep", "avg_down": True}


def _plain_load(folder: Path, index: int) -> torch.nn.Module:
    package = f"bench_plain_resnet_{index}"
    target = folder / package
    target.mkdir()
    (target / "__init__.py").write_text("")
    for name in FILES:
        (target / name).write_bytes((EXAMPLE / name).read_bytes())
    configuration = importlib.import_module(f"{package}.configuration_resnet")
    modeling = importlib.import_module(f"{package}.modeling_resnet")
    return modeling.ResnetModelForImageClassification(configuration.ResnetConfig(**RESNET50D))


def _sandboxed_load(policy: object, index: int) -> torch.nn.Module:
    contents = {name: (EXAMPLE / name).read_bytes() for name in FILES}
    snapshot = build_snapshot(
        SourceRef("local", f"/bench/resnet50d/{index}"), PinnedRevision(None, "sha256:" + "0" * 64), contents,
        code_entries=["modeling_resnet.py"],
    )
    code = import_snapshot(snapshot, policy)
    config = code.get_class("configuration_resnet.py", "ResnetConfig")(**RESNET50D)
    return code.get_class("modeling_resnet.py", "ResnetModelForImageClassification")(config)


def _timed(function, *args):  # type: ignore[no-untyped-def]  # any callable
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repetitions per measurement (default 7)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    folder = Path(tempfile.mkdtemp(prefix="hubguard-bench-"))
    sys.path.insert(0, str(folder))
    policy = load_policy("default")

    # (1) import + instantiation, alternating plain and sandboxed loads (3x the repeats:
    # one load takes about 0.2 s and single runs vary a lot on a shared machine)
    _plain_load(folder, 1000)  # warm torch's lazy imports for both sides
    _sandboxed_load(policy, 1000)
    plain_times, sandbox_times = [], []
    for index in range(3 * args.repeats):
        if index % 2:
            sandbox_times.append(_timed(_sandboxed_load, policy, index)[0])
            plain_times.append(_timed(_plain_load, folder, index)[0])
        else:
            plain_times.append(_timed(_plain_load, folder, index)[0])
            sandbox_times.append(_timed(_sandboxed_load, policy, index)[0])
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    plain_model = _plain_load(folder, 2000)
    plain_memory = tracemalloc.get_traced_memory()[0] - base
    del plain_model
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    sandboxed_model = _sandboxed_load(policy, 2000)
    sandbox_memory = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()

    # (2) forward pass, same weights, interleaved
    plain_resnet = ResNet(block=Bottleneck, layers=[3, 4, 6, 3], stem_width=32, stem_type="deep", avg_down=True).eval()
    plain_resnet.load_state_dict(sandboxed_model.model.state_dict())
    sandboxed_model.eval()
    batch = torch.randn(8, 3, 224, 224)
    with torch.no_grad():
        plain_resnet(batch)
        sandboxed_model(batch)
        plain_forward, sandbox_forward = [], []
        for index in range(args.repeats):
            # Alternate which side goes first, so drift in machine load hits both alike.
            if index % 2:
                sandbox_forward.append(_timed(sandboxed_model, batch)[0])
                plain_forward.append(_timed(plain_resnet, batch)[0])
            else:
                plain_forward.append(_timed(plain_resnet, batch)[0])
                sandbox_forward.append(_timed(sandboxed_model, batch)[0])
        same = torch.equal(plain_resnet(batch), sandboxed_model(batch)["logits"])

    # (3) the fixed cost the sandbox adds to one forward call, measured without the
    # convolutions (both wrappers around the same trivial module), since single forward
    # passes vary by more than this cost on a shared machine
    tiny = torch.zeros(1)
    plain_wrapper = _plain_load(folder, 3000).eval()
    sandbox_wrapper = _sandboxed_load(policy, 3000).eval()
    plain_wrapper.model = sandbox_wrapper.model = torch.nn.Identity()
    calls = 20000
    with torch.no_grad():
        plain_call = min(_timed(lambda: [plain_wrapper(tiny) for _ in range(calls)])[0] for _ in range(3)) / calls
        sandbox_call = min(_timed(lambda: [sandbox_wrapper(tiny) for _ in range(calls)])[0] for _ in range(3)) / calls

    # The minimum of the repetitions is the least disturbed run on a shared machine.
    plain_load, sandbox_load = min(plain_times), min(sandbox_times)
    plain_fw, sandbox_fw = min(plain_forward), min(sandbox_forward)
    print(f"machine: {torch.get_num_threads()} torch threads, python {sys.version.split()[0]}, torch {torch.__version__}")
    print(f"{'measurement':<38} {'plain':>10} {'sandboxed':>10} {'ratio':>7} {'target':>7}")
    print(f"{'import + instantiate resnet50d (s)':<38} {plain_load:>10.3f} {sandbox_load:>10.3f} {sandbox_load / plain_load:>7.3f} {'1.15':>7}")
    print(f"{'forward 8x3x224x224 (s)':<38} {plain_fw:>10.3f} {sandbox_fw:>10.3f} {sandbox_fw / plain_fw:>7.3f} {'1.03':>7}")
    print(f"{'python heap kept by one load (KiB)':<38} {plain_memory / 1024:>10.1f} {sandbox_memory / 1024:>10.1f} {'':>7} {'':>7}")
    # Adjacent runs share the machine's load, so the median of their ratios resists noise best.
    load_pairs = statistics.median(sandbox / plain for sandbox, plain in zip(sandbox_times, plain_times))
    forward_pairs = statistics.median(sandbox / plain for sandbox, plain in zip(sandbox_forward, plain_forward))
    extra_call = sandbox_call - plain_call
    print(f"fixed cost per forward call: plain {plain_call * 1e6:.1f} us, sandboxed {sandbox_call * 1e6:.1f} us; "
          f"extra {extra_call * 1e6:.1f} us = {extra_call / plain_fw:.2e} of the plain forward")
    print(f"median of paired ratios: load {load_pairs:.3f}, forward {forward_pairs:.3f}")
    print(f"medians (s): load {statistics.median(plain_times):.3f} / {statistics.median(sandbox_times):.3f}, "
          f"forward {statistics.median(plain_forward):.3f} / {statistics.median(sandbox_forward):.3f}")
    print(f"extra python heap of the sandboxed load: {(sandbox_memory - plain_memory) / 1024:.1f} KiB; identical logits: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
