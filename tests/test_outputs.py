"""Model outputs: mapping and attribute access, and remote code that uses transformers' output classes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import hubguard
from hubguard.outputs import ImageClassifierOutput, ModelOutput

REMOTE_CONFIG = """\
from transformers import PretrainedConfig


class OutConfig(PretrainedConfig):
    model_type = "test-outputs"

    def __init__(self, width=3, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""

REMOTE_MODEL = """\
from dataclasses import dataclass
from typing import Optional

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .configuration_out import OutConfig


@dataclass
class PooledOutput(ModelOutput):
    pooled: Optional[torch.Tensor] = None
    extra: Optional[torch.Tensor] = None


class OutModel(PreTrainedModel):
    config_class = OutConfig

    def __init__(self, config):
        super().__init__(config)
        self.head = torch.nn.Linear(config.width, 2)

    def forward(self, values, labels=None):
        logits = self.head(values)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)

    def pool(self, values):
        return PooledOutput(pooled=values.mean(dim=0))
"""


def test_fields_are_keys_and_attributes() -> None:
    logits = torch.ones(2, 3)
    output = ImageClassifierOutput(logits=logits)
    assert list(output.keys()) == ["logits"]
    assert output.logits is logits
    assert output["logits"] is logits
    assert output[0] is logits
    assert output.loss is None
    assert output.to_tuple() == (logits,)


def test_subclass_with_dataclass() -> None:
    @dataclasses.dataclass
    class PairOutput(ModelOutput):
        first: object = None
        second: object = None

    output = PairOutput(second=2)
    assert list(output.keys()) == ["second"]
    assert output[0] == 2
    output["first"] = 1
    assert output.first == 1


def test_remote_code_returns_transformers_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "configuration_out.py").write_text(REMOTE_CONFIG)
    (repo / "modeling_out.py").write_text(REMOTE_MODEL)
    config = {
        "model_type": "test-outputs",
        "width": 3,
        "auto_map": {"AutoConfig": "configuration_out.OutConfig", "AutoModel": "modeling_out.OutModel"},
    }
    (repo / "config.json").write_text(json.dumps(config))
    policy = tmp_path / "no-trial.toml"
    policy.write_text('extends = "default"\nname = "no-trial"\n\n[trial]\nmode = "off"\n')
    config_class = hubguard.AutoConfig.from_pretrained(str(repo), trust_remote_code=True, policy=str(policy))
    model = hubguard.AutoModel.from_config(config_class, trust_remote_code=True, policy=str(policy))
    values = torch.randn(4, 3)
    output = model(values, labels=torch.tensor([0, 1, 0, 1]))
    assert isinstance(output, ImageClassifierOutput)
    assert list(output.keys()) == ["loss", "logits"]
    assert output.logits.shape == (4, 2)
    assert output[0] is output.loss
    pooled = model.pool(values)
    assert list(pooled.keys()) == ["pooled"]
    assert torch.equal(pooled.pooled, values.mean(dim=0))
