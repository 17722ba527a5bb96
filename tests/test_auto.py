"""Auto classes: registry rules, dispatch on model_type, and the remote-code decision."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from _fixtures_models import (  # noqa: F401
    TIED_CONFIG,
    TIED_MODEL,
    _private_cache_and_registry,
    fake_remote,
    import_package,
    tied,
)

from hubguard import AutoConfig, AutoModel, AutoModelForImageClassification, PretrainedConfig
from hubguard.auto import _registry, isolated_registry
from hubguard.errors import ConfigurationError, RegistryError, RemoteCodeNotTrustedError

REMOTE_OPTIONS = {"policy": None, "lock": None, "code_revision": None}


@pytest.fixture
def registered(tied):
    """Register the tied-weights classes for AutoConfig and AutoModel; return the modeling module."""
    AutoConfig.register("test-tied", tied.TiedConfig)
    AutoModel.register(tied.TiedConfig, tied.TiedModel)
    return tied


@pytest.fixture
def remote_repo(tmp_path: Path, import_package) -> Path:
    """Save a model whose classes are registered only for code export: a remote-code repository."""
    import_package("authorpkg", {"configuration_tied.py": TIED_CONFIG, "modeling_tied.py": TIED_MODEL})
    modeling = importlib.import_module("authorpkg.modeling_tied")
    modeling.TiedConfig.register_for_auto_class()
    modeling.TiedModel.register_for_auto_class("AutoModel")
    torch.manual_seed(1)
    folder = tmp_path / "remote-repo"
    modeling.TiedModel(modeling.TiedConfig()).save_pretrained(folder)
    return folder


def _config_class(name: str, model_type: str) -> type[PretrainedConfig]:
    return type(name, (PretrainedConfig,), {"model_type": model_type})


def test_register_key_must_match_model_type():
    config_class = _config_class("KeyConfig", "test-key")
    with pytest.raises(RegistryError, match="cannot register KeyConfig under 'other': its model_type is 'test-key'"):
        AutoConfig.register("other", config_class)


def test_register_twice_needs_exist_ok():
    first = _config_class("FirstConfig", "test-dup")
    second = _config_class("SecondConfig", "test-dup")
    AutoConfig.register("test-dup", first)
    AutoConfig.register("test-dup", first)
    with pytest.raises(RegistryError, match="model_type 'test-dup' is already registered to .*FirstConfig"):
        AutoConfig.register("test-dup", second)
    AutoConfig.register("test-dup", second, exist_ok=True)
    assert AutoConfig.for_model("test-dup").__class__ is second


def test_register_rejects_non_config_class():
    with pytest.raises(RegistryError, match="is not a subclass of hubguard.PretrainedConfig"):
        AutoConfig.register("test-dict", dict)  # type: ignore[arg-type]  # the wrong type on purpose


def test_model_register_checks_config_class(tied):
    other = _config_class("OtherConfig", "test-other")
    with pytest.raises(RegistryError, match="TiedModel.config_class is TiedConfig, not OtherConfig"):
        AutoModel.register(other, tied.TiedModel)


def test_model_register_twice_needs_exist_ok(tied):
    clone = type("CloneModel", (tied.TiedModel,), {"config_class": tied.TiedConfig})
    AutoModel.register(tied.TiedConfig, tied.TiedModel)
    with pytest.raises(RegistryError, match="AutoModel already maps TiedConfig to .*TiedModel"):
        AutoModel.register(tied.TiedConfig, clone)
    AutoModel.register(tied.TiedConfig, clone, exist_ok=True)
    assert type(AutoModel.from_config(tied.TiedConfig())) is clone


def test_model_register_is_per_auto_class(registered):
    with pytest.raises(ConfigurationError, match="no AutoModelForImageClassification class is registered for TiedConfig"):
        AutoModelForImageClassification.from_config(registered.TiedConfig())


def test_for_model_passes_kwargs(registered):
    config = AutoConfig.for_model("test-tied", vocab=5)
    assert type(config) is registered.TiedConfig
    assert config.vocab == 5


def test_for_model_unknown_type(registered):
    with pytest.raises(ConfigurationError, match=r"model_type 'nope' is not registered \(registered: .*test-tied"):
        AutoConfig.for_model("nope")


def test_from_pretrained_dispatches_on_model_type(registered, tmp_path):
    torch.manual_seed(0)
    model = registered.TiedModel(registered.TiedConfig()).eval()
    model.save_pretrained(tmp_path / "saved")
    config = AutoConfig.from_pretrained(tmp_path / "saved", width=6)
    loaded = AutoModel.from_pretrained(tmp_path / "saved")
    assert type(config) is registered.TiedConfig
    assert type(loaded) is registered.TiedModel
    ids = torch.tensor([[3, 4]])
    assert torch.equal(loaded(ids), model(ids))


def test_from_pretrained_unknown_model_type(registered, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "test-unknown"}))
    with pytest.raises(ConfigurationError, match="model_type 'test-unknown' in config.json of .* is not registered"):
        AutoConfig.from_pretrained(tmp_path)


def test_from_pretrained_without_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden": 3}))
    with pytest.raises(ConfigurationError, match="no model_type in config.json of"):
        AutoModel.from_pretrained(tmp_path)


def test_remote_only_repo_needs_trust(remote_repo, fake_remote):
    """Without trust_remote_code a repo whose classes are only remote code is refused, with the next steps."""
    with pytest.raises(RemoteCodeNotTrustedError, match="defines AutoConfig only in its own code") as caught:
        AutoModel.from_pretrained(remote_repo)
    hint = caught.value.hint
    assert f"hubguard audit {remote_repo} --revision sha256:" in hint
    assert 'trust_remote_code=True, revision="sha256:' in hint
    assert fake_remote.calls == []


def test_trust_delegates_to_remote_pipeline(remote_repo, fake_remote):
    """With trust, both classes come from hubguard._remote.load_class with the caller's options."""
    before = (dict(_registry().configs), {name: dict(m) for name, m in _registry().models.items()})
    model = AutoModel.from_pretrained(remote_repo, trust_remote_code=True, policy="strict", code_revision="c" * 40)
    options = {"policy": "strict", "lock": None, "code_revision": "c" * 40, "trust_remote_code": True}
    assert fake_remote.calls == [
        (str(remote_repo), "AutoConfig", options),
        (str(remote_repo), "AutoModel", options),
    ]
    assert type(model).__name__ == "TiedModel"
    assert type(model).__module__.startswith("fake_remote_")
    assert type(model.config) is type(model).config_class
    assert type(model)._auto_class == "AutoModel"
    assert (dict(_registry().configs), {name: dict(m) for name, m in _registry().models.items()}) == before


def test_trust_none_passed_through(remote_repo, fake_remote):
    AutoConfig.from_pretrained(remote_repo, trust_remote_code=None)
    assert fake_remote.calls == [(str(remote_repo), "AutoConfig", {**REMOTE_OPTIONS, "trust_remote_code": None})]


def test_registered_class_wins_without_trust(remote_repo, registered, fake_remote):
    """A locally registered model_type is used over auto_map code unless trust is granted."""
    model = AutoModel.from_pretrained(remote_repo)
    assert type(model) is registered.TiedModel
    assert fake_remote.calls == []


def test_from_config_of_remote_config_needs_trust(remote_repo, fake_remote):
    config = AutoConfig.from_pretrained(remote_repo, trust_remote_code=True)
    with pytest.raises(RemoteCodeNotTrustedError, match="defines AutoModel only in its own code"):
        AutoModel.from_config(config)
    model = AutoModel.from_config(config, trust_remote_code=True)
    assert type(model).__name__ == "TiedModel"


def test_isolated_registry_confines_registrations():
    config_class = _config_class("ScopedConfig", "test-scoped")
    with isolated_registry():
        AutoConfig.register("test-scoped", config_class)
        assert type(AutoConfig.for_model("test-scoped")) is config_class
    with pytest.raises(ConfigurationError, match="model_type 'test-scoped' is not registered"):
        AutoConfig.for_model("test-scoped")


def test_auto_classes_not_instantiated():
    with pytest.raises(TypeError, match="AutoConfig is not instantiated"):
        AutoConfig()
    with pytest.raises(TypeError, match="AutoModel is not instantiated"):
        AutoModel()


HOST_CONFIG = '''\
from hubguard import PretrainedConfig


class AcmeBaseConfig(PretrainedConfig):
    model_type = "acme_base"

    def __init__(self, flavour="genuine", **kwargs):
        self.flavour = flavour
        super().__init__(**kwargs)
'''

# Remote code that reuses the host's model_type and tries to take it over at import time.
TWIN_CONFIG = '''\
from hubguard import AutoConfig, PretrainedConfig


class TwinConfig(PretrainedConfig):
    model_type = "acme_base"

    def __init__(self, flavour="twin", **kwargs):
        self.flavour = flavour
        super().__init__(**kwargs)


AutoConfig.register("acme_base", TwinConfig, exist_ok=True)
'''


def test_remote_import_cannot_rewire_registry(import_package, fake_remote, tmp_path):
    """A register call made by remote code while it loads does not change later, untrusted loads."""
    import_package("hostpkg", {"host_builtin.py": HOST_CONFIG})
    host = importlib.import_module("hostpkg.host_builtin").AcmeBaseConfig
    AutoConfig.register("acme_base", host)
    before = dict(_registry().configs)

    twin = tmp_path / "evil-twin"
    twin.mkdir()
    (twin / "configuration_twin.py").write_text(TWIN_CONFIG)
    (twin / "config.json").write_text(
        json.dumps({"model_type": "acme_base", "auto_map": {"AutoConfig": "configuration_twin.TwinConfig"}})
    )
    plain = tmp_path / "plain_local"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "acme_base"}))

    assert AutoConfig.from_pretrained(twin, trust_remote_code=True).flavour == "twin"
    config = AutoConfig.from_pretrained(plain)
    assert type(config) is host
    assert config.flavour == "genuine"
    assert dict(_registry().configs) == before
