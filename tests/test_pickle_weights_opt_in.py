"""Pickle weights: refused by default; with ``[weights] allow_pickle`` only after an opcode scan, with weights_only."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import hubguard
from hubguard import PretrainedConfig, PreTrainedModel
from hubguard.auto import isolated_registry

ALLOW_PICKLE_POLICY = 'extends = "default"\nname = "allow-pickle"\n\n[weights]\nallow_pickle = true\n'


class PickleConfig(PretrainedConfig):
    model_type = "test-pickle-weights"

    def __init__(self, width: int = 3, **kwargs):
        self.width = width
        super().__init__(**kwargs)


class PickleModel(PreTrainedModel):
    config_class = PickleConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(config.width, 2)

    def forward(self, values):
        return self.linear(values)


class _TouchesMarker:
    """Pickles to a call of ``os.system``; unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "cache"))
    with isolated_registry():
        hubguard.AutoConfig.register(PickleConfig.model_type, PickleConfig)
        hubguard.AutoModel.register(PickleConfig, PickleModel)
        yield


def _pickle_checkpoint(folder: Path, state: object) -> None:
    folder.mkdir()
    PickleConfig().save_pretrained(folder)
    torch.save(state, folder / "pytorch_model.bin")


def test_pickle_refused_by_default(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PickleModel(PickleConfig())
    _pickle_checkpoint(tmp_path / "repo", model.state_dict())
    with pytest.raises(hubguard.WeightsError, match="pickle-based formats can run code"):
        hubguard.AutoModel.from_pretrained(str(tmp_path / "repo"))


def test_pickle_loads_with_allow_pickle_policy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PickleModel(PickleConfig())
    _pickle_checkpoint(tmp_path / "repo", model.state_dict())
    policy = tmp_path / "allow-pickle.toml"
    policy.write_text(ALLOW_PICKLE_POLICY)
    loaded = hubguard.AutoModel.from_pretrained(str(tmp_path / "repo"), policy=str(policy))
    sample = torch.randn(4, 3)
    assert torch.equal(loaded(sample), model(sample))


def test_dangerous_pickle_refused_before_loading(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "repo"
    folder.mkdir()
    PickleConfig().save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"linear.weight": _TouchesMarker(marker)}))
    policy = tmp_path / "allow-pickle.toml"
    policy.write_text(ALLOW_PICKLE_POLICY)
    with pytest.raises(hubguard.WeightsError, match="pickle weights refused before loading") as caught:
        hubguard.AutoModel.from_pretrained(str(folder), policy=str(policy))
    assert "system" in str(caught.value)
    assert caught.value.rule_id == "HG241"
    assert not marker.exists()
