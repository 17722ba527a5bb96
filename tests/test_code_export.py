"""register_for_auto_class + save_pretrained: the saved folder carries exactly the code auto_map needs."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from _fixtures_models import _private_cache_and_registry, fake_remote, import_package  # noqa: F401

from hubguard import AutoConfig, AutoModel, PretrainedConfig
from hubguard.errors import ConfigurationError
from hubguard.loader import fetch
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot

CONFIGURATION_X = '''\
from hubguard import PretrainedConfig


class XConfig(PretrainedConfig):
    model_type = "test-x"

    def __init__(self, width=3, **kwargs):
        self.width = width
        super().__init__(**kwargs)
'''

# Every spelling the closure must follow: a plain relative import, "from . import x",
# a sub-package module, and a multi-line import.
MODELING_X = '''\
import torch

from hubguard import PreTrainedModel

from .configuration_x import XConfig
from . import helpers
from .utils.layers import (
    make_linear,
    shift,
)


class XModel(PreTrainedModel):
    config_class = XConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = make_linear(config.width)

    def forward(self, values):
        return helpers.double(shift(self.linear(values)))
'''

HELPERS = "def double(values):\n    return 2 * values\n"
LAYERS = '''\
import torch

from ..helpers import double


def make_linear(width):
    return torch.nn.Linear(width, width)


def shift(values):
    return double(values) + 1
'''
UNRELATED = {"scratch_notes.py": "STEPS = ['train']\n", "utils/unused.py": "VALUE = 1\n"}

EXPECTED_CODE = ["configuration_x.py", "helpers.py", "modeling_x.py", "utils/__init__.py", "utils/layers.py"]

# The layout of a model cloned from a remote-code repository: the model imports a helper
# module, and an unrelated script sits next to it.
TINY_CONFIG = '''\
from hubguard import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "test-tiny"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
'''
TINY_MODEL = '''\
from hubguard import PreTrainedModel

from .configuration_tiny import TinyConfig
from .layers import repeat_width


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, token):
        return repeat_width(token, self.config.width)
'''
TINY_LAYERS = "def repeat_width(token, width):\n    return [token] * width\n"

# Code that lives in a separate repository (cross-repository auto_map references).
OFFSET_CONFIG = TINY_CONFIG.replace("width=4", "offset=10").replace("self.width = width", "self.offset = offset")
OFFSET_MODEL = '''\
from hubguard import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, values):
        return [value + self.config.offset for value in values]
'''
CODE_COMMIT = "3" * 40
CROSS_AUTO_MAP = {
    "AutoConfig": "acme/tiny-code--configuration_tiny.TinyConfig",
    "AutoModel": "acme/tiny-code--modeling_tiny.TinyModel",
}


@pytest.fixture
def x_package(import_package) -> Path:
    files = {
        "configuration_x.py": CONFIGURATION_X,
        "modeling_x.py": MODELING_X,
        "helpers.py": HELPERS,
        "utils/__init__.py": "",
        "utils/layers.py": LAYERS,
        **UNRELATED,
    }
    folder = import_package("xpkg", files)
    modeling = importlib.import_module("xpkg.modeling_x")
    modeling.XConfig.register_for_auto_class()
    modeling.XModel.register_for_auto_class("AutoModel")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_saved_folder_has_code_closure(x_package, tmp_path):
    """The defining files and every relatively imported file are copied byte for byte; nothing else."""
    modeling = importlib.import_module("xpkg.modeling_x")
    out = tmp_path / "out"
    written = modeling.XModel(modeling.XConfig()).save_pretrained(out)
    assert written == sorted(["config.json", "model.safetensors", *EXPECTED_CODE])
    assert _files(out) == written
    for path in EXPECTED_CODE:
        assert (out / path).read_bytes() == (x_package / path).read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    assert config["model_type"] == "test-x"


def test_saved_folder_is_remote_code_repo(x_package, tmp_path, fake_remote):
    """The loader sees the copied files as the code closure, and the folder loads through auto_map."""
    modeling = importlib.import_module("xpkg.modeling_x")
    torch.manual_seed(0)
    model = modeling.XModel(modeling.XConfig()).eval()
    model.save_pretrained(tmp_path / "out")
    snapshot = fetch(str(tmp_path / "out"))
    assert list(snapshot.code_paths) == EXPECTED_CODE
    loaded = AutoModel.from_pretrained(tmp_path / "out", trust_remote_code=True)
    values = torch.randn(2, 3)
    assert torch.equal(loaded(values), model(values))


def test_config_alone_exports_its_file(x_package, tmp_path):
    modeling = importlib.import_module("xpkg.modeling_x")
    written = modeling.XConfig(width=5).save_pretrained(tmp_path / "out")
    assert written == ["config.json", "configuration_x.py"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["auto_map"] == {
        "AutoConfig": "configuration_x.XConfig"
    }


def test_unregistered_classes_export_nothing(import_package, tmp_path):
    import_package("plainpkg", {"configuration_x.py": CONFIGURATION_X})
    config = importlib.import_module("plainpkg.configuration_x").XConfig()
    assert config.save_pretrained(tmp_path / "out") == ["config.json"]
    assert "auto_map" not in json.loads((tmp_path / "out" / "config.json").read_text())


def test_class_in_main_rejected(tmp_path):
    main_config = type("MainConfig", (PretrainedConfig,), {"model_type": "test-main", "__module__": "__main__"})
    main_config.register_for_auto_class()
    with pytest.raises(ConfigurationError, match="MainConfig is defined in __main__") as caught:
        main_config().save_pretrained(tmp_path)
    assert "move MainConfig into a module file" in caught.value.hint


def test_class_in_function_rejected(tmp_path):
    class LocalConfig(PretrainedConfig):
        model_type = "test-local"

    LocalConfig.register_for_auto_class()
    with pytest.raises(ConfigurationError, match="LocalConfig is defined inside a function"):
        LocalConfig().save_pretrained(tmp_path)


def test_class_without_source_file_rejected(tmp_path, monkeypatch):
    module = types.ModuleType("hubguard_test_ghost")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ghost = type("GhostConfig", (PretrainedConfig,), {"model_type": "test-ghost", "__module__": module.__name__})
    ghost.register_for_auto_class()
    with pytest.raises(ConfigurationError, match="cannot find the source file of hubguard_test_ghost.GhostConfig"):
        ghost().save_pretrained(tmp_path)


def test_import_leaving_folder_rejected(import_package, tmp_path):
    source = CONFIGURATION_X + "\nfrom ..outside import VALUE\n"
    import_package("climbpkg", {"outside.py": "VALUE = 1\n", "inner/__init__.py": "", "inner/configuration_x.py": source})
    config_class = importlib.import_module("climbpkg.inner.configuration_x").XConfig
    config_class.register_for_auto_class()
    with pytest.raises(ConfigurationError, match="cannot export the code of XConfig: relative import ..outside") as caught:
        config_class().save_pretrained(tmp_path / "out")
    assert caught.value.location() == "configuration_x.py:11"
    assert not (tmp_path / "out" / "configuration_x.py").exists()


def _tiny_clone(root: Path) -> Path:
    clone = root / "acme-tiny-local"
    clone.mkdir()
    (clone / "config.json").write_text(
        json.dumps(
            {
                "model_type": "test-tiny",
                "width": 3,
                "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"},
            }
        )
    )
    (clone / "configuration_tiny.py").write_text(TINY_CONFIG)
    (clone / "modeling_tiny.py").write_text(TINY_MODEL)
    (clone / "layers.py").write_text(TINY_LAYERS)
    (clone / "scratch_notes.py").write_text("STEPS = ['download', 'train']\n")
    return clone


def test_save_after_local_clone_load(tmp_path, fake_remote):
    """A model loaded from a cloned folder saves with its code closure, read from the verified snapshot."""
    clone = _tiny_clone(tmp_path)
    model = AutoModel.from_pretrained(clone, trust_remote_code=True)
    # The sandbox's copy on disk is not what gets saved: the snapshot bytes are.
    for package in fake_remote.packages:
        (fake_remote.root / package / "layers.py").write_text("raise RuntimeError('edited on disk')\n")

    out = tmp_path / "out"
    written = model.save_pretrained(out)
    assert written == ["config.json", "configuration_tiny.py", "layers.py", "model.safetensors", "modeling_tiny.py"]
    for path in ("configuration_tiny.py", "modeling_tiny.py", "layers.py"):
        assert (out / path).read_bytes() == (clone / path).read_bytes()
    saved = json.loads((out / "config.json").read_text())
    assert saved["auto_map"] == {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}


def test_reload_saved_clone_without_source(tmp_path, fake_remote):
    clone = _tiny_clone(tmp_path)
    AutoModel.from_pretrained(clone, trust_remote_code=True).save_pretrained(tmp_path / "out")
    for path in sorted(clone.iterdir()):
        path.unlink()
    clone.rmdir()
    # Forget every module the first load imported, as a fresh process would.
    for module_name in [name for name in sys.modules if name.split(".")[0] in fake_remote.packages]:
        del sys.modules[module_name]
    for package in fake_remote.packages:
        shutil.rmtree(fake_remote.root / package)
    fake_remote.packages.clear()

    reloaded = AutoModel.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert reloaded("t") == ["t", "t", "t"]


def test_same_files_from_author_and_loaded_class(tmp_path, import_package, fake_remote):
    """Saving gives the same file set whether the class was imported locally or loaded as remote code."""
    import_package("tinypkg", {"configuration_tiny.py": TINY_CONFIG, "modeling_tiny.py": TINY_MODEL, "layers.py": TINY_LAYERS})
    modeling = importlib.import_module("tinypkg.modeling_tiny")
    modeling.TinyConfig.register_for_auto_class()
    modeling.TinyModel.register_for_auto_class("AutoModel")
    author_files = modeling.TinyModel(modeling.TinyConfig(width=3)).save_pretrained(tmp_path / "author")

    loaded = AutoModel.from_pretrained(tmp_path / "author", trust_remote_code=True)
    assert type(loaded).__module__.startswith("fake_remote_")
    assert loaded.save_pretrained(tmp_path / "again") == author_files
    for path in author_files:
        if path.endswith(".py"):
            assert (tmp_path / "again" / path).read_bytes() == (tmp_path / "author" / path).read_bytes()


@pytest.fixture
def cross_repo(tmp_path, fake_remote) -> Path:
    """A weights repository whose auto_map points at code in acme/tiny-code, pinned at CODE_COMMIT."""
    code = build_snapshot(
        SourceRef(kind="hub", location="acme/tiny-code"),
        PinnedRevision(requested=CODE_COMMIT, commit=CODE_COMMIT),
        {"configuration_tiny.py": OFFSET_CONFIG.encode(), "modeling_tiny.py": OFFSET_MODEL.encode()},
        code_entries=["configuration_tiny.py", "modeling_tiny.py"],
    )
    fake_remote.code_snapshots["acme/tiny-code"] = code
    weights = tmp_path / "tiny-weights"
    weights.mkdir()
    (weights / "config.json").write_text(json.dumps({"model_type": "test-tiny", "offset": 10, "auto_map": CROSS_AUTO_MAP}))
    return weights


def test_cross_repo_reference_survives_two_saves(cross_repo, tmp_path, fake_remote):
    """auto_map stays string-equal through load -> save -> load -> save, and the code pin is kept."""
    model = AutoModel.from_pretrained(cross_repo, trust_remote_code=True, code_revision=CODE_COMMIT)
    assert model([1, 2]) == [11, 12]

    source = cross_repo
    for name in ("out1", "out2"):
        out = tmp_path / name
        assert model.save_pretrained(out) == ["config.json", "model.safetensors"]
        saved = json.loads((out / "config.json").read_text())
        assert saved["auto_map"] == CROSS_AUTO_MAP
        assert saved["hubguard"] == {"code_revisions": {"acme/tiny-code": CODE_COMMIT}}

        fake_remote.calls.clear()
        model = AutoModel.from_pretrained(out, trust_remote_code=True)
        assert model([1, 2]) == [11, 12]
        assert type(model).config_class is type(model.config)
        assert [call[2]["code_revision"] for call in fake_remote.calls] == [CODE_COMMIT, CODE_COMMIT]
        source = out
    assert source == tmp_path / "out2"


def test_cross_repo_config_records_pin(cross_repo, fake_remote):
    config = AutoConfig.from_pretrained(cross_repo, trust_remote_code=True, code_revision=CODE_COMMIT)
    assert config._hubguard_code_revisions == {"acme/tiny-code": CODE_COMMIT}
    assert config.auto_map == CROSS_AUTO_MAP


def test_cross_repo_from_config_uses_weights_repo(cross_repo, fake_remote):
    """from_config of a cross-repository config finds the model class through the repo it was read from."""
    config = AutoConfig.from_pretrained(cross_repo, trust_remote_code=True, code_revision=CODE_COMMIT)
    model = AutoModel.from_config(config, trust_remote_code=True)
    assert model([1, 2]) == [11, 12]
    assert [call[:2] for call in fake_remote.calls] == [(str(cross_repo), "AutoConfig"), (str(cross_repo), "AutoModel")]
    assert fake_remote.calls[1][2]["code_revision"] == CODE_COMMIT
