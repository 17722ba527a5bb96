"""timm models built and run inside the sandbox match the same code run plainly."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from hubguard.audit.policy import load_policy
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

POLICY = load_policy("default")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_resnet"

WRAPPED_RESNET = """import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, ResNet

from transformers import PretrainedConfig, PreTrainedModel


class WrappedConfig(PretrainedConfig):
    model_type = "wrapped-resnet"

    def __init__(self, num_classes=4, **kwargs):
        self.num_classes = num_classes
        super().__init__(**kwargs)


class WrappedResNet(PreTrainedModel):
    config_class = WrappedConfig

    def __init__(self, config):
        super().__init__(config)
        self.body = ResNet(block=BasicBlock, layers=[1, 1, 1, 1], num_classes=config.num_classes)
        self.calls = 0

    def forward(self, pixels):
        self.calls += 1
        logits = self.body(pixels)
        return F.softmax(logits, dim=-1)
"""


def test_wrapped_timm_resnet_runs_forward() -> None:
    """A timm ResNet built in a sandboxed __init__ runs forward and sums to one per row."""
    snapshot = build_snapshot(
        SourceRef("hub", "acme/wrapped-resnet"), PinnedRevision(None, "7" * 40),
        {"modeling_wrapped.py": WRAPPED_RESNET.encode()}, code_entries=["modeling_wrapped.py"],
    )
    module = import_snapshot(snapshot, POLICY).module("modeling_wrapped.py")
    model = module.WrappedResNet(module.WrappedConfig(num_classes=4)).eval()

    with torch.no_grad():
        probabilities = model(torch.randn(2, 3, 32, 32))

    assert probabilities.shape == (2, 4)
    assert torch.allclose(probabilities.sum(dim=-1), torch.ones(2))
    assert model.calls == 1


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="examples/custom_resnet is not in this checkout")
def test_example_resnet_matches_plain_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's sandboxed classifier gives the same logits as the plainly imported example."""
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    example = importlib.import_module("custom_resnet")

    contents = {path.name: path.read_bytes() for path in EXAMPLE.glob("*_resnet.py")}
    snapshot = build_snapshot(
        SourceRef("local", str(EXAMPLE)), PinnedRevision(None, "sha256:" + "0" * 64), contents,
        code_entries=["modeling_resnet.py"],
    )
    code = import_snapshot(snapshot, POLICY)
    config = code.get_class("configuration_resnet.py", "ResnetConfig")(block_type="basic", layers=[1, 1, 1, 1], num_classes=10)
    sandboxed = code.get_class("modeling_resnet.py", "ResnetModelForImageClassification")(config).eval()
    plain = example.ResnetModelForImageClassification(example.tiny_config()).eval()
    plain.load_state_dict(sandboxed.state_dict())
    pixels = torch.randn(2, 3, 32, 32)

    with torch.no_grad():
        sandboxed_logits = sandboxed(pixels)["logits"]
        plain_logits = plain(pixels)["logits"]

    assert sandboxed_logits.shape == (2, 10)
    assert torch.equal(sandboxed_logits, plain_logits)
