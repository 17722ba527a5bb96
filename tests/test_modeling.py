"""PreTrainedModel: safetensors save/load, tied weights, sharding, key mismatches, refused pickles."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from _fixtures_models import _private_cache_and_registry, import_package, tied  # noqa: F401
from safetensors.torch import load_file, save_file

from hubguard import PretrainedConfig
from hubguard._serialization import parse_size
from hubguard.errors import ConfigurationError, WeightsError


class _CreatesMarker:
    """Unpickling this object opens (and so creates) the marker file; hubguard must never do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def out(tmp_path):
    """An empty folder to save into."""
    return tmp_path / "out"


def _build(tied_module, **settings):
    torch.manual_seed(0)
    config = tied_module.TiedConfig(**settings)
    return tied_module.TiedModel(config).eval()


def test_round_trip_bit_identical(tied, tmp_path):
    model = _build(tied)
    model.save_pretrained(tmp_path)
    loaded = tied.TiedModel.from_pretrained(tmp_path)
    ids = torch.tensor([[1, 2, 3, 10]])
    assert torch.equal(model(ids), loaded(ids))
    assert loaded.training is False
    assert loaded.config == model.config


def test_saved_folder_layout(tied, out):
    written = _build(tied).save_pretrained(out)
    assert written == ["config.json", "model.safetensors"]
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["TiedModel"]
    assert config["model_type"] == "test-tied"
    assert config["torch_dtype"] == "float32"


def test_tied_weight_stored_once(tied, tmp_path):
    _build(tied).save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert sorted(stored) == ["embed.weight", "mix.bias", "mix.weight", "scale"]


def test_tie_restored_after_load(tied, tmp_path):
    """A class written the tutorial way (no post_init) loads with its tie intact."""
    _build(tied).save_pretrained(tmp_path)
    loaded = tied.TiedModel.from_pretrained(tmp_path)
    assert loaded.head.weight is loaded.embed.weight
    with torch.no_grad():
        loaded.embed.weight[0, 0] = 42.0
    assert loaded.head.weight[0, 0].item() == 42.0


def test_unsaved_buffer_initialised_on_load(tied, tmp_path):
    """A buffer left out of state_dict keeps the value its __init__ computes."""
    _build(tied).save_pretrained(tmp_path)
    loaded = tied.TiedModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.offset, torch.full((6,), 3.0))


def test_num_parameters_counts_tie_once(tied):
    model = _build(tied, vocab=11, width=6)
    assert model.num_parameters() == 11 * 6 + 6 * 6 + 6
    model.mix.bias.requires_grad_(False)
    assert model.num_parameters(only_trainable=True) == 11 * 6 + 6 * 6


def test_sharded_save_and_load(tied, out):
    model = _build(tied, vocab=50, width=8)
    # state_dict() order: scale (32 bytes), embed.weight (1600), mix.weight (256), mix.bias (32).
    written = model.save_pretrained(out, max_shard_size=1700)
    assert written == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": (50 * 8 + 8 * 8 + 8 + 8) * 4}
    assert index["weight_map"] == {
        "embed.weight": "model-00001-of-00002.safetensors",
        "mix.bias": "model-00002-of-00002.safetensors",
        "mix.weight": "model-00002-of-00002.safetensors",
        "scale": "model-00001-of-00002.safetensors",
    }
    loaded = tied.TiedModel.from_pretrained(out)
    ids = torch.tensor([[0, 49, 7]])
    assert torch.equal(model(ids), loaded(ids))


def test_resave_unsharded_removes_shards(tied, out):
    model = _build(tied, vocab=50, width=8)
    model.save_pretrained(out, max_shard_size="1KB")
    model.save_pretrained(out)
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "model.safetensors"]


def test_parse_size_units():
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size(1234) == 1234
    with pytest.raises(ValueError, match="max_shard_size 'lots' is not a size"):
        parse_size("lots")


def test_wrong_config_class(tied):
    with pytest.raises(ConfigurationError, match="TiedModel needs a TiedConfig, got PretrainedConfig"):
        tied.TiedModel(PretrainedConfig())


def test_mismatched_weights_listed_in_one_error(tied, tmp_path):
    """Missing, unexpected and shape-mismatched keys all appear in one WeightsError."""
    _build(tied).save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    del stored["mix.bias"]
    stored["extra.weight"] = torch.zeros(2)
    stored["scale"] = torch.zeros(7)
    save_file(stored, tmp_path / "model.safetensors")

    with pytest.raises(WeightsError, match="weights in model.safetensors do not match TiedModel") as caught:
        tied.TiedModel.from_pretrained(tmp_path)
    message = caught.value.message
    assert "missing keys: mix.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "shape mismatches: scale (checkpoint [7], model [6])" in message
    assert "strict=False" in caught.value.hint


def test_non_strict_loads_matching_keys(tied, tmp_path, caplog):
    model = _build(tied)
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    del stored["mix.bias"]
    stored["extra.weight"] = torch.zeros(2)
    save_file(stored, tmp_path / "model.safetensors")

    with caplog.at_level(logging.WARNING, logger="hubguard.modeling"):
        loaded = tied.TiedModel.from_pretrained(tmp_path, strict=False)
    assert "missing keys: mix.bias; unexpected keys: extra.weight" in caplog.text
    assert torch.equal(loaded.mix.weight, model.mix.weight)
    assert torch.equal(loaded.embed.weight, model.embed.weight)
    assert torch.isfinite(loaded.mix.bias).all()


def test_pickle_weights_refused_without_unpickling(tied, tmp_path):
    """A pytorch_model.bin is refused by name; its pickle payload never runs."""
    marker = tmp_path / "marker"
    repo = tmp_path / "repo"
    repo.mkdir()
    tied.TiedConfig().save_pretrained(repo)
    (repo / "pytorch_model.bin").write_bytes(pickle.dumps(_CreatesMarker(marker)))

    with pytest.raises(WeightsError, match="no safetensors weights in .*found pytorch_model.bin") as caught:
        tied.TiedModel.from_pretrained(repo)
    assert caught.value.path == "pytorch_model.bin"
    assert not marker.exists()


def test_pickle_named_safetensors_refused(tied, tmp_path):
    marker = tmp_path / "marker"
    repo = tmp_path / "repo"
    repo.mkdir()
    tied.TiedConfig().save_pretrained(repo)
    (repo / "model.safetensors").write_bytes(pickle.dumps(_CreatesMarker(marker)))

    with pytest.raises(WeightsError, match="model.safetensors is not a valid safetensors file"):
        tied.TiedModel.from_pretrained(repo)
    assert not marker.exists()


def test_missing_weights(tied, tmp_path):
    tied.TiedConfig().save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="no weights file in"):
        tied.TiedModel.from_pretrained(tmp_path)


def test_index_naming_missing_shard(tied, out):
    _build(tied, vocab=50, width=8).save_pretrained(out, max_shard_size=1700)
    (out / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match="names the shard 'model-00002-of-00002.safetensors'"):
        tied.TiedModel.from_pretrained(out)


def test_config_override_reaches_model(tied, tmp_path):
    _build(tied).save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match=r"embed.weight \(checkpoint \[11, 6\], model \[12, 6\]\)"):
        tied.TiedModel.from_pretrained(tmp_path, vocab=12)


def test_dtype_conversion(tied, tmp_path):
    _build(tied).save_pretrained(tmp_path)
    loaded = tied.TiedModel.from_pretrained(tmp_path, dtype=torch.float16)
    assert loaded.embed.weight.dtype == torch.float16
    assert loaded.dtype == torch.float16
    assert tied.TiedModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.float32


def test_explicit_config_used(tied, tmp_path):
    _build(tied).save_pretrained(tmp_path)
    config = tied.TiedConfig(note="mine")
    loaded = tied.TiedModel.from_pretrained(tmp_path, config=config)
    assert loaded.config is config


def _cli_load(folder: Path, capsys, *arguments: str) -> tuple[int, str]:
    from hubguard.cli import main

    code = main(["load", str(folder), "--auto-class", "AutoModel", *arguments])
    return code, capsys.readouterr().err


def test_cli_reports_missing_config_without_traceback(tmp_path, capsys):
    (tmp_path / "model.safetensors").write_bytes(b"")
    code, stderr = _cli_load(tmp_path, capsys)
    assert code == 1
    assert stderr.startswith("hubguard: error: config.json: config.json is missing from ")
    assert "Traceback" not in stderr


def test_cli_reports_pickle_weights_without_traceback(tied, tmp_path, capsys):
    from hubguard import AutoConfig, AutoModel

    AutoConfig.register("test-tied", tied.TiedConfig)
    AutoModel.register(tied.TiedConfig, tied.TiedModel)
    marker = tmp_path / "marker"
    repo = tmp_path / "repo"
    repo.mkdir()
    tied.TiedConfig().save_pretrained(repo)
    (repo / "pytorch_model.bin").write_bytes(pickle.dumps(_CreatesMarker(marker)))
    code, stderr = _cli_load(repo, capsys)
    assert code == 1
    assert "hubguard: error: pytorch_model.bin: no safetensors weights in" in stderr
    assert "fix: convert the checkpoint to model.safetensors" in stderr
    assert "Traceback" not in stderr
    assert not marker.exists()


def test_cli_reports_unknown_model_type_without_traceback(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "test-unheard-of"}))
    code, stderr = _cli_load(tmp_path, capsys)
    assert code == 1
    assert "model_type 'test-unheard-of' in config.json of" in stderr
    assert "fix: register a config class with AutoConfig.register('test-unheard-of', ConfigClass)" in stderr
    assert "Traceback" not in stderr


def test_config_copy_from_another_import_accepted(tied, import_package):
    """A model accepts its config class imported a second time (same name, file name and model_type)."""
    import importlib

    import_package("tiedcopy", {"configuration_tied.py": (Path(tied.__file__).parent / "configuration_tied.py").read_text()})
    copy_class = importlib.import_module("tiedcopy.configuration_tied").TiedConfig
    assert copy_class is not tied.TiedConfig
    model = tied.TiedModel(copy_class())
    assert type(model.config) is copy_class


def test_overlapping_views_saved_as_copies(tmp_path):
    """Distinct tensors that share memory (a buffer viewing a weight) are saved and restored separately."""

    class ViewModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.arange(12.0).reshape(4, 3))
            self.register_buffer("first_rows", self.weight.detach()[:2])

    from hubguard import _serialization

    module = ViewModel()
    _serialization.save_weights(module, tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert sorted(stored) == ["first_rows", "weight"]
    assert torch.equal(stored["first_rows"], torch.arange(6.0).reshape(2, 3))
