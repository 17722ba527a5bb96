"""PretrainedConfig: JSON round trips, kwargs pass-through, overrides through __init__, bad config.json."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from _fixtures_models import HEADS_CONFIG, NO_KWARGS_CONFIG, _private_cache_and_registry, import_package  # noqa: F401

from hubguard import PretrainedConfig, __version__
from hubguard.errors import ConfigurationError, HubguardError

HEADS_JSON = {"model_type": "test-heads", "hidden": 8, "heads": 2}


@pytest.fixture
def heads(import_package) -> type:
    """Return HeadsConfig: hidden must be a multiple of heads, head_dim derived in __init__."""
    import_package("headspkg", {"configuration_heads.py": HEADS_CONFIG, "configuration_nokw.py": NO_KWARGS_CONFIG})
    return importlib.import_module("headspkg.configuration_heads").HeadsConfig


@pytest.fixture
def heads_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "heads"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HEADS_JSON))
    return folder


def test_override_goes_through_init(heads, heads_folder):
    """An override reaches __init__, so the derived head_dim is recomputed from it."""
    config = heads.from_pretrained(heads_folder, heads=4)
    assert config.hidden == 8
    assert config.heads == 4
    assert config.head_dim == 2


def test_no_override_keeps_file_values(heads, heads_folder):
    config = heads.from_pretrained(heads_folder)
    assert (config.hidden, config.heads, config.head_dim) == (8, 2, 4)


def test_override_validation_error_surfaces(heads, heads_folder):
    """The subclass's ValueError reaches the caller unchanged."""
    with pytest.raises(ValueError, match="^hidden must be a multiple of heads$") as caught:
        heads.from_pretrained(heads_folder, heads=3)
    assert type(caught.value) is ValueError


def test_config_without_kwargs_rejected(import_package, tmp_path):
    """A config class whose __init__ lacks **kwargs fails with a ConfigurationError naming it."""
    import_package("nokwpkg", {"configuration_nokw.py": NO_KWARGS_CONFIG})
    no_kwargs = importlib.import_module("nokwpkg.configuration_nokw").NoKwConfig
    folder = tmp_path / "nokw"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "test-nokw", "hidden": 8, "transformers_version": "4.40.0"})
    )
    with pytest.raises(ConfigurationError, match=r"NoKwConfig.__init__ must accept \*\*kwargs") as caught:
        no_kwargs.from_pretrained(folder)
    assert "'transformers_version'" in caught.value.message
    assert caught.value.path == "configuration_nokw.py"
    assert "super().__init__(**kwargs)" in caught.value.diagnostics()


def test_stale_derived_value_does_not_win(heads, tmp_path):
    """A derived value saved by an older run does not overwrite the one __init__ computes."""
    folder = tmp_path / "saved"
    heads(hidden=8, heads=2).save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["head_dim"] == 4
    config = heads.from_pretrained(folder, heads=8)
    assert config.head_dim == 1


def test_unknown_keys_kept_and_saved(heads, tmp_path):
    config = heads.from_dict({**HEADS_JSON, "future_option": [1, 2], "transformers_version": "4.40.0"})
    assert config.future_option == [1, 2]
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["future_option"] == [1, 2]
    assert saved["transformers_version"] == "4.40.0"


def test_transformers_written_config_loads(heads, tmp_path):
    """A config.json in the layout transformers writes loads and keeps its keys."""
    written = {
        "_name_or_path": "acme/heads",
        "architectures": ["HeadsModel"],
        "auto_map": {"AutoConfig": "configuration_heads.HeadsConfig"},
        "heads": 2,
        "hidden": 8,
        "model_type": "test-heads",
        "torch_dtype": "float32",
        "transformers_version": "4.44.2",
    }
    (tmp_path / "config.json").write_text(json.dumps(written))
    (tmp_path / "configuration_heads.py").write_text(HEADS_CONFIG)
    config = heads.from_pretrained(tmp_path)
    assert config.architectures == ["HeadsModel"]
    assert config.auto_map == {"AutoConfig": "configuration_heads.HeadsConfig"}
    assert config.torch_dtype == "float32"
    assert config.transformers_version == "4.44.2"
    assert config.name_or_path == str(tmp_path)
    assert config.head_dim == 4


def test_json_round_trip_is_equal(heads, tmp_path):
    config = heads(hidden=12, heads=3, extra={"b": 1, "a": (2, 3)})
    config.save_pretrained(tmp_path)
    loaded = heads.from_pretrained(tmp_path)
    assert loaded == config
    assert loaded.name_or_path == str(tmp_path)
    config.name_or_path = str(tmp_path)
    assert loaded.to_json_string() == config.to_json_string()
    assert heads.from_dict(config.to_dict()) == config


def test_json_string_is_sorted_and_records_version(heads):
    text = heads(hidden=8, heads=4).to_json_string()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["hubguard_version"] == __version__
    assert data["model_type"] == "test-heads"
    assert text.endswith("}\n")


def test_unset_auto_map_not_written(heads):
    data = heads().to_dict()
    assert "auto_map" not in data
    assert "architectures" not in data


def test_inequality_on_value_and_class(heads):
    assert heads(hidden=8) != heads(hidden=12)
    assert heads() != PretrainedConfig()


def test_repr_shows_class_and_values(heads):
    text = repr(heads(hidden=6, heads=3))
    assert text.startswith("HeadsConfig {")
    assert '"head_dim": 2' in text


def test_return_unused_kwargs(heads, heads_folder):
    config, unused = heads.from_pretrained(heads_folder, return_unused_kwargs=True, heads=4, not_a_setting=1)
    assert unused == {"not_a_setting": 1}
    assert config.heads == 4
    assert not hasattr(config, "not_a_setting")


def test_unknown_override_kept_without_unused(heads, heads_folder):
    config = heads.from_pretrained(heads_folder, dropout=0.25)
    assert config.dropout == 0.25


def test_missing_config_json(heads, tmp_path):
    (tmp_path / "notes.txt").write_text("no config here")
    with pytest.raises(ConfigurationError, match="config.json is missing") as caught:
        heads.from_pretrained(tmp_path)
    assert caught.value.path == "config.json"


def test_malformed_config_json_names_line(heads, tmp_path):
    (tmp_path / "config.json").write_text('{\n  "hidden": 8,\n  "heads": \n}\n')
    with pytest.raises(ConfigurationError, match="config.json is not valid JSON") as caught:
        heads.from_pretrained(tmp_path)
    assert caught.value.line == 4
    assert caught.value.diagnostics().startswith("config.json:4: ")


def test_config_json_not_an_object(heads, tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="must contain a JSON object"):
        heads.from_pretrained(tmp_path)


def test_bad_auto_map_type(heads):
    with pytest.raises(ConfigurationError, match="auto_map must be an object, got list"):
        heads.from_dict({**HEADS_JSON, "auto_map": ["configuration_heads.HeadsConfig"]})


def test_key_shadowing_method_rejected(heads):
    with pytest.raises(ConfigurationError, match="config key 'to_dict' would replace the method HeadsConfig.to_dict"):
        heads.from_dict({**HEADS_JSON, "to_dict": 1})


def test_required_argument_missing_is_configuration_error(import_package):
    import_package("reqpkg", {"configuration_req.py": (
        "from hubguard import PretrainedConfig\n\n\n"
        "class RequiredConfig(PretrainedConfig):\n"
        "    model_type = 'test-req'\n\n"
        "    def __init__(self, size, **kwargs):\n"
        "        self.size = size\n"
        "        super().__init__(**kwargs)\n"
    )})
    required = importlib.import_module("reqpkg.configuration_req").RequiredConfig
    with pytest.raises(ConfigurationError, match=r"RequiredConfig\(\.\.\.\) failed with the keys of config.json: .*'size'"):
        required.from_dict({"model_type": "test-req"})


def test_code_revisions_round_trip(heads, tmp_path):
    pin = "a" * 40
    config = heads.from_dict({**HEADS_JSON, "hubguard": {"code_revisions": {"acme/code": pin}}})
    assert config._hubguard_code_revisions == {"acme/code": pin}
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["hubguard"] == {"code_revisions": {"acme/code": pin}}
    assert heads.from_pretrained(tmp_path)._hubguard_code_revisions == {"acme/code": pin}


def test_code_revisions_must_be_full_commits(heads):
    with pytest.raises(ConfigurationError, match="hubguard.code_revisions must map repo ids to full commit ids"):
        heads.from_dict({**HEADS_JSON, "hubguard": {"code_revisions": {"acme/code": "main"}}})


def test_unserialisable_value_named(heads, tmp_path):
    config = heads(hidden=8)
    config.callback = object()
    with pytest.raises(ConfigurationError, match="config value 'callback' of type object cannot be written"):
        config.save_pretrained(tmp_path)


def test_configuration_error_is_hubguard_and_value_error():
    assert issubclass(ConfigurationError, HubguardError)
    assert issubclass(ConfigurationError, ValueError)


def test_configuration_module_does_not_import_torch():
    code = "import sys, hubguard.configuration, hubguard.auto; print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
