"""The twelve reported cases, run through the public API and the whole remote-code path.

Each class rebuilds one case's inputs as small repositories (local folders, git
repositories reached by ``git+file://`` URLs, or repositories served by olah) and loads
them with ``AutoConfig`` / ``AutoModel`` ``from_pretrained`` and ``trust_remote_code=True``,
so every load goes through fetch, audit, the trial when the policy asks for it, and the
sandboxed import. Nothing in the pipeline is replaced. Most loads use a policy that
extends the default with the jailed trial switched off, to keep the module fast; the
registry case, the helper and socket refusals and the first save-after-load load use the
default policy itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

import hubguard
from hubguard.auto import isolated_registry
from hubguard.loader import fetch
from _olah import OlahServer, RewritingProxy, commit_files, git, init_repo, olah_server  # noqa: F401  # fixture

pytestmark = pytest.mark.slow

TRIAL_OFF_POLICY = """\
extends = "default"
name = "cases-trial-off"

[trial]
mode = "off"
"""

CONFIGURATION_TINY = """\
from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "acme-tiny"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""


def _config_json(model: str = "modeling_tiny.TinyModel", **values: object) -> str:
    document = {
        "model_type": "acme-tiny",
        "width": 4,
        **values,
        "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": model},
    }
    return json.dumps(document, indent=2)


def _write(folder: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``folder`` and return ``folder``."""
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder


def _policy(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "hubguard-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def hub(olah_server: OlahServer, monkeypatch: pytest.MonkeyPatch) -> OlahServer:
    """The olah server, set as the Hub endpoint of this test."""
    monkeypatch.setenv("HF_ENDPOINT", olah_server.endpoint)
    return olah_server


@pytest.fixture
def fast_policy(tmp_path: Path) -> Path:
    return _policy(tmp_path, "trial-off", TRIAL_OFF_POLICY)


def _publish(hub: OlahServer, repo_id: str, files: Mapping[str, str]) -> str:
    """Commit ``files`` to the olah repository ``repo_id`` (created if needed) and return the commit."""
    folder = hub.repo_folder(repo_id)
    if not (folder / ".git").exists():
        hub.create_repo(repo_id)
    return commit_files(folder, dict(files))


# --- auto-registry-isolation -------------------------------------------------------------

TWIN_CONFIGURATION = """\
from transformers import AutoConfig, PretrainedConfig


class TwinConfig(PretrainedConfig):
    model_type = "acme_base"

    def __init__(self, width=4, **kwargs):
        self.width = width
        self.flavour = "twin"
        super().__init__(**kwargs)


AutoConfig.register("acme_base", TwinConfig, exist_ok=True)
"""

TWIN_CONFIG_JSON = json.dumps(
    {"model_type": "acme_base", "width": 4, "auto_map": {"AutoConfig": "configuration_twin.TwinConfig"}}
)


def _registered_configs() -> dict[str, type]:
    from hubguard.auto import _registry

    return dict(_registry().configs)


class TestRemoteRegistrationNeverReachesTheProcessRegistry:
    def test_twin_refused_and_plain_load_gets_host_class(self, tmp_path: Path) -> None:
        class AcmeBaseConfig(hubguard.PretrainedConfig):
            model_type = "acme_base"

            def __init__(self, width: int = 4, **kwargs: object) -> None:
                self.width = width
                self.flavour = "genuine"
                super().__init__(**kwargs)

        twin = _write(tmp_path / "evil-twin", {"config.json": TWIN_CONFIG_JSON, "configuration_twin.py": TWIN_CONFIGURATION})
        plain = _write(tmp_path / "plain", {"config.json": json.dumps({"model_type": "acme_base", "width": 4})})
        with isolated_registry():
            # Step 1: the host registers its own class.
            hubguard.AutoConfig.register("acme_base", AcmeBaseConfig)
            before = _registered_configs()
            assert before["acme_base"] is AcmeBaseConfig

            # Step 2: the default policy refuses the register call before the code runs.
            with pytest.raises(hubguard.PolicyViolation, match=r"configuration_twin\.py:13") as caught:
                hubguard.AutoConfig.from_pretrained(str(twin), trust_remote_code=True)
            blocking = caught.value.report.blocking_findings()
            assert [(finding.path, finding.line, finding.rule_id) for finding in blocking] == [
                ("configuration_twin.py", 13, "HG216")
            ]
            assert "AutoConfig.register" in blocking[0].message

            # Step 3: a plain config without trust gets the host's class.
            config = hubguard.AutoConfig.from_pretrained(str(plain))
            assert type(config) is AcmeBaseConfig
            assert config.flavour == "genuine"
            assert not type(config).__module__.startswith("hubguard_modules")

            # Step 4: the registry is as the host left it.
            assert _registered_configs() == before

    def test_register_refused_at_run_time(self, tmp_path: Path) -> None:
        class AcmeBaseConfig(hubguard.PretrainedConfig):
            model_type = "acme_base"

            def __init__(self, width: int = 4, **kwargs: object) -> None:
                self.width = width
                self.flavour = "genuine"
                super().__init__(**kwargs)

        policy = _policy(tmp_path, "registry-warn", TRIAL_OFF_POLICY + '\n[code]\nregistry_write = "warn"\n')
        twin = _write(tmp_path / "evil-twin", {"config.json": TWIN_CONFIG_JSON, "configuration_twin.py": TWIN_CONFIGURATION})
        plain = _write(tmp_path / "plain", {"config.json": json.dumps({"model_type": "acme_base", "width": 4})})
        with isolated_registry():
            hubguard.AutoConfig.register("acme_base", AcmeBaseConfig)
            before = _registered_configs()
            # The runtime guard refuses the call the scan let through with a warning.
            with pytest.raises(hubguard.SandboxViolation, match=r"configuration_twin\.py:13: AutoConfig\.register refused"):
                hubguard.AutoConfig.from_pretrained(str(twin), trust_remote_code=True, policy=str(policy))
            assert _registered_configs() == before
            config = hubguard.AutoConfig.from_pretrained(str(plain))
            assert type(config) is AcmeBaseConfig
            assert config.flavour == "genuine"


# --- bandit-noise-on-model-code ----------------------------------------------------------

# Line numbers matter: the expected findings are at fixed lines.
SCAN_LOADS = """\
# Scanned only, never run.
import torch
from torch import load as tload


def load_safe(path):
    return torch.load(path, weights_only=True)


def load_default(path):
    return torch.load(path)


def load_explicit_unsafe(path):
    return torch.load(path, weights_only=False)


def load_torchscript(path):
    return torch.jit.load(path)


def build_kernel(sources):
    return torch.utils.cpp_extension.load(name="tiny_kernel", sources=sources)


def load_alias(path):
    return tload(path)


def load_flag(path, flag):
    return torch.load(path, weights_only=flag)
"""

SCAN_ASSERTS = """\
# Scanned only: a shape check as modeling files have them.
def project(x, w):
    assert len(x) == len(w), "input and weight lengths differ"
    return sum(a * b for a, b in zip(x, w))
"""


class TestBanditNoiseDoesNotDecideModelCode:
    def test_unsafe_loads_block_at_their_lines_only(self, tmp_path: Path) -> None:
        folder = _write(tmp_path / "scan", {"scan_loads.py": SCAN_LOADS, "scan_asserts.py": SCAN_ASSERTS})
        report = hubguard.audit(str(folder))
        scanned = {entry.path for entry in report.files if entry.scanned}
        assert {"scan_loads.py", "scan_asserts.py"} <= scanned
        loads = [
            (finding.line, finding.rule_id, finding.verdict, finding.policy_key)
            for finding in report.findings
            if finding.path == "scan_loads.py"
        ]
        unsafe_load = 'modules.deny["torch.load"]'
        assert loads == [
            (11, "HG211", "deny", unsafe_load),
            (15, "HG211", "deny", unsafe_load),
            (19, "HG202", "warn", 'modules.warn["torch.jit.load"]'),
            (23, "HG212", "deny", 'modules.deny["torch.utils.cpp_extension"]'),
            (27, "HG211", "deny", unsafe_load),
            (31, "HG211", "deny", unsafe_load),
        ]
        assert not any(finding.path == "scan_asserts.py" for finding in report.blocking_findings())


# --- config-overrides-and-kwargs ---------------------------------------------------------

HEADS_CONFIGURATION = """\
from transformers import PretrainedConfig


class HeadsConfig(PretrainedConfig):
    model_type = "acme-heads"

    def __init__(self, hidden=4, heads=2, **kwargs):
        if hidden % heads != 0:
            raise ValueError("hidden must be a multiple of heads")
        self.hidden = hidden
        self.heads = heads
        self.head_dim = hidden // heads
        super().__init__(**kwargs)
"""

NOKW_CONFIGURATION = """\
from transformers import PretrainedConfig


class NoKwConfig(PretrainedConfig):
    model_type = "acme-nokw"

    def __init__(self, hidden=4):
        self.hidden = hidden
        super().__init__()
"""


class TestOverridesGoThroughTheRemoteConfigInit:
    @pytest.fixture
    def heads(self, tmp_path: Path) -> Path:
        config = {"model_type": "acme-heads", "hidden": 8, "heads": 2,
                  "auto_map": {"AutoConfig": "configuration_heads.HeadsConfig"}}
        return _write(tmp_path / "heads", {"config.json": json.dumps(config), "configuration_heads.py": HEADS_CONFIGURATION})

    def test_override_reaches_init(self, heads: Path) -> None:
        config = hubguard.AutoConfig.from_pretrained(str(heads), trust_remote_code=True, heads=4)
        assert type(config).__name__ == "HeadsConfig"
        assert (config.hidden, config.heads, config.head_dim) == (8, 4, 2)

    def test_invalid_override_raises_the_init_error(self, heads: Path) -> None:
        with pytest.raises(ValueError, match="hidden must be a multiple of heads"):
            hubguard.AutoConfig.from_pretrained(str(heads), trust_remote_code=True, heads=3)

    def test_no_overrides_keeps_saved_values(self, heads: Path) -> None:
        config = hubguard.AutoConfig.from_pretrained(str(heads), trust_remote_code=True)
        assert (config.hidden, config.heads, config.head_dim) == (8, 2, 4)

    def test_init_without_kwargs_named_in_error(self, tmp_path: Path) -> None:
        config = {"model_type": "acme-nokw", "hidden": 8, "transformers_version": "4.40.0",
                  "auto_map": {"AutoConfig": "configuration_nokw.NoKwConfig"}}
        folder = _write(tmp_path / "nokw", {"config.json": json.dumps(config), "configuration_nokw.py": NOKW_CONFIGURATION})
        with pytest.raises(hubguard.ConfigurationError, match=r"NoKwConfig\.__init__ must accept \*\*kwargs") as caught:
            hubguard.AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
        assert "transformers_version" in str(caught.value)


# --- helpers-sandboxed-too ---------------------------------------------------------------

HELPERS_WRITING = """\
def describe(width):
    handle = open({marker!r}, "w")
    handle.write("helper ran without the sandbox")
    handle.close()
    return "width=%d" % width
"""

MODELING_WITH_HELPER = """\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig
from .helpers import describe


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        return describe(self.config.width)
"""

MODELING_LAZY = """\
import importlib

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class LazyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        helpers = importlib.import_module(".helpers", __package__)
        return helpers.describe(self.config.width)
"""

OPEN_WARNS_POLICY = TRIAL_OFF_POLICY + """
[builtins]
warn = ["open"]
"""


class TestHelperModulesAreSandboxedLikeTheEntry:
    @pytest.fixture
    def marker(self, tmp_path: Path) -> Path:
        return tmp_path / "helper-ran.txt"

    def _repo(self, tmp_path: Path, marker: Path, model: str) -> Path:
        return _write(tmp_path / "repo", {
            "config.json": _config_json(model),
            "configuration_tiny.py": CONFIGURATION_TINY,
            "helpers.py": HELPERS_WRITING.format(marker=str(marker)),
            "modeling_tiny.py": MODELING_WITH_HELPER,
            "modeling_lazy.py": MODELING_LAZY,
        })

    def test_default_policy_refuses_for_the_helper(self, tmp_path: Path, marker: Path) -> None:
        folder = self._repo(tmp_path, marker, "modeling_tiny.TinyModel")
        with pytest.raises(hubguard.PolicyViolation, match=r"helpers\.py:2") as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True)
        opens = [f for f in caught.value.report.blocking_findings() if f.path == "helpers.py"]
        assert [(f.line, f.policy_key) for f in opens] == [(2, 'builtins.deny["open"]')]
        assert not marker.exists()

    def test_helper_open_refused_at_run_time(self, tmp_path: Path, marker: Path) -> None:
        folder = self._repo(tmp_path, marker, "modeling_tiny.TinyModel")
        policy = _policy(tmp_path, "open-warns", OPEN_WARNS_POLICY)
        model = hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))
        with pytest.raises(hubguard.SandboxViolation, match=r"open") as caught:
            model.describe()
        assert "helpers.py:2" in str(caught.value)
        assert not marker.exists()

    def test_lazy_importlib_variant_refused(self, tmp_path: Path, marker: Path) -> None:
        folder = self._repo(tmp_path, marker, "modeling_lazy.LazyModel")
        policy = _policy(tmp_path, "open-warns", OPEN_WARNS_POLICY)
        with pytest.raises(hubguard.PolicyViolation, match=r"modeling_lazy\.py:1") as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))
        keys = [(f.path, f.line, f.policy_key) for f in caught.value.report.blocking_findings()]
        assert ("modeling_lazy.py", 1, 'modules.deny["importlib"]') in keys
        assert not marker.exists()

    def test_importlib_refused_at_run_time(self, tmp_path: Path, marker: Path) -> None:
        folder = self._repo(tmp_path, marker, "modeling_lazy.LazyModel")
        text = OPEN_WARNS_POLICY.replace("[builtins]", '[modules]\nwarn = ["importlib"]\n\n[builtins]')
        policy = _policy(tmp_path, "importlib-warns", text)
        with pytest.raises(hubguard.SandboxImportViolation, match=r"modeling_lazy\.py:1: import of 'importlib' refused"):
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))
        assert not marker.exists()


# --- module-cache-staleness --------------------------------------------------------------

MODELING_MAGIC = """\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig
from .helpers import MAGIC


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def magic(self):
        return MAGIC
"""

MODELING_MAGIC_C = MODELING_MAGIC.replace("return MAGIC", 'return "C" if MAGIC == "A" else "C?"')


class TestModuleCacheKeyedOnWholeClosure:
    def test_same_leaf_name_and_edited_helper(self, tmp_path: Path, fast_policy: Path) -> None:
        def checkpoint(run: str, helper: str, modeling: str) -> Path:
            return _write(tmp_path / "runs" / run / "ckpt", {
                "config.json": _config_json(),
                "configuration_tiny.py": CONFIGURATION_TINY,
                "helpers.py": f"MAGIC = {helper!r}\n",
                "modeling_tiny.py": modeling,
            })

        def load(folder: Path) -> hubguard.PreTrainedModel:
            return hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy))

        a = checkpoint("a", "A", MODELING_MAGIC)
        b = checkpoint("b", "B", MODELING_MAGIC)
        c = checkpoint("c", "A", MODELING_MAGIC_C)
        models = [load(a), load(b), load(c)]
        assert [model.magic() for model in models] == ["A", "B", "C"]
        classes = [type(model) for model in models]
        assert len({id(cls) for cls in classes}) == 3
        assert len({cls.__module__ for cls in classes}) == 3

        (a / "helpers.py").write_text('MAGIC = "A2"\n', encoding="utf-8")
        assert load(a).magic() == "A2"

        again = load(b)
        assert again.magic() == "B"
        assert type(again) is classes[1]


# --- optional-imports --------------------------------------------------------------------

MODELING_OPTIONAL = """\
import math

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

try:
    import acme_fastkern as fastkern
    HAVE_FASTKERN = True
except (ImportError, ModuleNotFoundError):
    fastkern = None
    HAVE_FASTKERN = False

try:
    from acme_fused_ops import (
        fused_norm,
        fused_scale,
    )
except ImportError:
    fused_norm = None
    fused_scale = None


def kernels_enabled():
    return False


if kernels_enabled():
    import acme_if_guarded

print("optional-imports modeling ran")


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = math.sqrt(config.width)

    def forward(self, values):
        if HAVE_FASTKERN:
            return fastkern.scale(values, self.scale)
        return [v * self.scale for v in values]

    def export_helper(self):
        import acme_deferred
        return acme_deferred.VERSION
"""

MODELING_HARD_DEP = """\
import math

print("hard-dep modeling ran")

import acme_required_dep

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, values):
        return [acme_required_dep.scale(v, math.pi) for v in values]
"""

MODELING_GUARDED_SOCKET = """\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

# Guarded like an optional dependency; the module itself is denied.
try:
    import socket
except ImportError:
    socket = None


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, values):
        return values
"""

ACME_ALLOWED_POLICY = TRIAL_OFF_POLICY + """
[modules]
allow = ["acme_fastkern", "acme_fused_ops", "acme_if_guarded", "acme_deferred", "acme_required_dep"]
"""

CONFIGURATION_PRINTING = CONFIGURATION_TINY.replace(
    "\n\nclass TinyConfig", '\nprint("optional-imports configuration ran")\n\n\nclass TinyConfig'
)


class TestOptionalImportsAreNotRequirements:
    def _repo(self, tmp_path: Path, model: str) -> Path:
        return _write(tmp_path / "repo", {
            "config.json": _config_json(model),
            "configuration_tiny.py": CONFIGURATION_PRINTING,
            "modeling_tiny.py": MODELING_OPTIONAL,
            "modeling_tiny_hard_dep.py": MODELING_HARD_DEP,
            "modeling_tiny_guarded_socket.py": MODELING_GUARDED_SOCKET,
        })

    def test_guarded_imports_optional_and_load_succeeds(self, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
        folder = self._repo(tmp_path, "modeling_tiny.TinyModel")
        policy = _policy(tmp_path, "acme", ACME_ALLOWED_POLICY)
        report = hubguard.audit(str(folder), policy=str(policy))
        assert report.dependencies.optional == ("acme_deferred", "acme_fastkern", "acme_fused_ops", "acme_if_guarded")
        assert report.missing_required() == []
        model = hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))
        module = sys.modules[type(model).__module__]
        assert module.HAVE_FASTKERN is False
        assert module.fastkern is None
        assert model.forward([1.0, 2.0]) == [2.0, 4.0]
        assert "optional-imports modeling ran" in capfd.readouterr().out

    def test_unguarded_missing_module_refused_before_code_runs(
        self, tmp_path: Path, capfd: pytest.CaptureFixture[str]
    ) -> None:
        folder = self._repo(tmp_path, "modeling_tiny_hard_dep.TinyModel")
        policy = _policy(tmp_path, "acme", ACME_ALLOWED_POLICY)
        with pytest.raises(hubguard.MissingDependencyError, match="acme_required_dep") as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(policy))
        assert caught.value.missing == ["acme_required_dep"]
        assert "ran" not in capfd.readouterr().out

    def test_guarded_socket_refused_by_import_policy(self, tmp_path: Path) -> None:
        folder = self._repo(tmp_path, "modeling_tiny_guarded_socket.TinyModel")
        with pytest.raises(hubguard.PolicyViolation, match=r"modeling_tiny_guarded_socket\.py:7") as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True)
        keys = [(f.path, f.line, f.policy_key) for f in caught.value.report.blocking_findings()]
        assert ("modeling_tiny_guarded_socket.py", 7, 'modules.deny["socket"]') in keys


# --- relative-imports --------------------------------------------------------------------

MODELING_RELATIVE = '''\
"""Tiny model with every spelling of a relative import.

A usage note in this docstring is text, not an import:

    from .ghost_module import NotReal
"""
from transformers import PreTrainedModel

from . import helpers
from .configuration_tiny import TinyConfig
from .layers import (
    TinyBlock,
    TinyNorm,
)
from .utils.posenc import position_code

# from .commented_out import AlsoNotReal


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.block = TinyBlock(config.width)
        self.norm = TinyNorm()

    def describe(self):
        parts = [helpers.tag(), self.block.name(), self.norm.name(), position_code(3)]
        return "|".join(parts)
'''

RELATIVE_FILES = {
    "configuration_tiny.py": CONFIGURATION_TINY,
    "modeling_tiny.py": MODELING_RELATIVE,
    "helpers.py": 'def tag():\n    return "helpers"\n\n\ndef clamp(value, low, high):\n    return max(low, min(high, value))\n',
    "layers.py": textwrap.dedent("""\
        class TinyBlock:
            def __init__(self, width):
                self.width = width

            def name(self):
                return "block%d" % self.width


        class TinyNorm:
            def name(self):
                return "norm"
        """),
    "utils/__init__.py": '"""Utilities of the tiny model."""\n',
    "utils/posenc.py": 'from ..helpers import clamp\n\n\ndef position_code(index):\n    return "pos%d" % clamp(index, 0, 2)\n',
    "modeling_escape.py": textwrap.dedent("""\
        from transformers import PreTrainedModel

        from .. import outside_the_repo
        from .configuration_tiny import TinyConfig


        class EscapeModel(PreTrainedModel):
            config_class = TinyConfig

            def forward(self, values):
                return outside_the_repo.run(values)
        """),
}

RELATIVE_CLOSURE = {
    "modeling_tiny.py", "configuration_tiny.py", "helpers.py", "layers.py", "utils/__init__.py", "utils/posenc.py",
}


class TestRelativeImportsFormTheClosure:
    def test_closure_describe_and_saved_files(self, tmp_path: Path, fast_policy: Path) -> None:
        folder = _write(tmp_path / "repo", {"config.json": _config_json(), **RELATIVE_FILES})
        snapshot = fetch(str(folder))
        assert set(snapshot.code_paths) == RELATIVE_CLOSURE

        model = hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy))
        assert model.describe() == "helpers|block4|norm|pos2"

        out = tmp_path / "out"
        model.save_pretrained(out)
        saved = {path.relative_to(out).as_posix() for path in out.rglob("*.py")}
        assert saved == RELATIVE_CLOSURE
        assert (out / "utils").is_dir()
        for name in RELATIVE_CLOSURE:
            assert (out / name).read_text(encoding="utf-8") == RELATIVE_FILES[name]

    def test_import_above_repository_root_refused(self, tmp_path: Path, fast_policy: Path) -> None:
        folder = _write(tmp_path / "repo", {"config.json": _config_json("modeling_escape.EscapeModel"), **RELATIVE_FILES})
        marker = tmp_path / "outside_the_repo.py"
        marker.write_text("raise SystemExit('imported from outside the repository')\n", encoding="utf-8")
        with pytest.raises(hubguard.UnsafeRepositoryError, match="leaves the repository root") as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy))
        assert (caught.value.path, caught.value.line, caught.value.rule_id) == ("modeling_escape.py", 3, "HG107")
        assert "modeling_escape.py:3" in caught.value.diagnostics()


# --- sandbox-accepts-model-idioms --------------------------------------------------------

IDIOM_CONFIGURATION = """\
from typing import List, Optional

from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "acme-tiny"
    layers: List[int]

    def __init__(self, layers: Optional[List[int]] = None, width: int = 4, **kwargs):
        self.layers = layers if layers is not None else [1, 2]
        self.width = width
        super().__init__(**kwargs)

    def summary(self) -> str:
        total: int = sum(self.layers)
        return f"{self.model_type}:{self.width}x{total}"
"""

IDIOM_MODELING = """\
from typing import Dict, List

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyBlock:
    def __init__(self, width: int):
        self.width = width

    def __call__(self, values: List[float]) -> List[float]:
        return [v * self.width for v in values]


class TinyPreTrainedModel(PreTrainedModel):
    config_class = TinyConfig
    base_model_prefix = "tiny"
    _no_split_modules = ["TinyBlock"]

    def _init_weights(self, module):
        module.initialised = True


class TinyModel(TinyPreTrainedModel):
    def __init__(self, config: TinyConfig):
        super().__init__(config)
        self.blocks = [TinyBlock(config.width) for _ in config.layers]
        self._cache: Dict[str, int] = {}

    def forward(self, values: List[float]) -> List[float]:
        for block in self.blocks:
            values = block(values)
        self._cache["calls"] = self._cache.get("calls", 0) + 1
        return values

    def __repr__(self) -> str:
        return f"TinyModel(blocks={len(self.blocks)})"
"""

# Line numbers matter: each function's return line is expected to be refused.
BLOCKED_PATTERNS = """\
class Probe:
    def __init__(self, value):
        self.value = value


def via_class(p):
    return p.__class__.__mro__


def via_super_init(p):
    return super(Probe, p).__init__.__globals__


def via_subclasses():
    return type(Probe).__subclasses__(type)


def via_getattr_string(p):
    return getattr(p, "__dict__")


def via_vars(p):
    return vars(p)


def via_code(fn):
    return fn.__code__.co_consts
"""

BLOCKED_LINES = {"via_class": 7, "via_super_init": 11, "via_subclasses": 15, "via_getattr_string": 19,
                 "via_vars": 23, "via_code": 27}


class TestSandboxAcceptsModelIdioms:
    def test_canonical_config_and_model_run(self, tmp_path: Path, fast_policy: Path) -> None:
        folder = _write(tmp_path / "repo", {
            "config.json": _config_json(width=8),
            "configuration_tiny.py": IDIOM_CONFIGURATION,
            "modeling_tiny.py": IDIOM_MODELING,
        })
        loaded = hubguard.AutoConfig.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy))
        assert type(loaded).__module__.startswith("hubguard_modules.")
        config = type(loaded)(width=8)
        assert config.summary() == "acme-tiny:8x3"
        assert config.layers == [1, 2]

        model_class = type(hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy)))
        model = model_class(config)
        assert model.forward([1.0]) == [64.0]
        assert repr(model) == "TinyModel(blocks=2)"
        assert model._cache == {"calls": 1}

    def test_reflection_patterns_refused(self, tmp_path: Path, fast_policy: Path) -> None:
        modeling = IDIOM_MODELING.replace(
            "from .configuration_tiny import TinyConfig\n",
            "from .configuration_tiny import TinyConfig\nfrom . import blocked_patterns\n",
        )
        folder = _write(tmp_path / "repo", {
            "config.json": _config_json(width=8),
            "configuration_tiny.py": IDIOM_CONFIGURATION,
            "modeling_tiny.py": modeling,
            "blocked_patterns.py": BLOCKED_PATTERNS,
        })
        with pytest.raises(hubguard.PolicyViolation) as caught:
            hubguard.AutoModel.from_pretrained(str(folder), trust_remote_code=True, policy=str(fast_policy))
        refused_lines = {f.line for f in caught.value.report.blocking_findings() if f.path == "blocked_patterns.py"}
        assert refused_lines == set(BLOCKED_LINES.values())
        assert not any(f.path != "blocked_patterns.py" for f in caught.value.report.blocking_findings())


# --- revision-reaches-all-code -----------------------------------------------------------


def _versioned_files(word: str, width: int) -> dict[str, str]:
    return {
        "config.json": _config_json(width=width),
        "configuration_tiny.py": textwrap.dedent(f"""\
            from transformers import PretrainedConfig

            CODE_VERSION = "{word}"


            class TinyConfig(PretrainedConfig):
                model_type = "acme-tiny"

                def __init__(self, width=4, **kwargs):
                    self.width = width
                    self.code_version = CODE_VERSION
                    super().__init__(**kwargs)
            """),
        "helpers.py": f'HELPER_VERSION = "{word}"\n',
        "modeling_tiny.py": textwrap.dedent(f"""\
            from transformers import PreTrainedModel

            from .configuration_tiny import TinyConfig
            from .helpers import HELPER_VERSION

            CODE_VERSION = "{word}"


            class TinyModel(PreTrainedModel):
                config_class = TinyConfig

                def versions(self):
                    return (CODE_VERSION, HELPER_VERSION, self.config.code_version, self.config.width)
            """),
    }


FLOATING_POLICY = TRIAL_OFF_POLICY + "\n[revisions]\nallow_floating = true\n"


class TestRevisionReachesEveryCodeFetch:
    @pytest.fixture
    def repo(self, tmp_path: Path) -> dict[str, str]:
        folder = init_repo(tmp_path / "acme-tiny-git")
        one = commit_files(folder, _versioned_files("one", 1), message="first version")
        two = commit_files(folder, _versioned_files("two", 2), message="second version")
        git(folder, "tag", "v-two", two)
        return {"url": f"git+file://{folder}", "one": one, "two": two}

    def test_a_pinned_commit(self, repo: dict[str, str], fast_policy: Path) -> None:
        model = hubguard.AutoModel.from_pretrained(
            repo["url"], revision=repo["one"], trust_remote_code=True, policy=str(fast_policy)
        )
        assert model.versions() == ("one", "one", "one", 1)

    def test_b_from_config_keeps_the_config_commit(self, repo: dict[str, str], fast_policy: Path) -> None:
        config = hubguard.AutoConfig.from_pretrained(
            repo["url"], revision=repo["one"], trust_remote_code=True, policy=str(fast_policy)
        )
        model = hubguard.AutoModel.from_config(config, trust_remote_code=True, policy=str(fast_policy))
        assert model.versions() == ("one", "one", "one", 1)
        assert type(model).config_class is type(config)
        assert type(model).__hubguard_snapshot__.revision.commit == repo["one"]

    def test_c_branch_resolved_once(
        self, repo: dict[str, str], tmp_path: Path
    ) -> None:
        policy = _policy(tmp_path, "floating", FLOATING_POLICY)
        model = hubguard.AutoModel.from_pretrained(repo["url"], revision="main", trust_remote_code=True, policy=str(policy))
        assert model.versions() == ("two", "two", "two", 2)
        revision = type(model).__hubguard_snapshot__.revision
        assert (revision.requested, revision.commit, revision.floating) == ("main", repo["two"], True)
        assert {source.resolved_revision for source in model.hubguard_report.sources} == {repo["two"]}

    @pytest.mark.parametrize("name", ["tag", "short"])
    def test_d_names_float_only_by_policy(
        self, repo: dict[str, str], tmp_path: Path, name: str
    ) -> None:
        requested, expected = ("v-two", repo["two"]) if name == "tag" else (repo["one"][:7], repo["one"])
        with pytest.raises(hubguard.UnpinnedRevisionError, match=f"Revision '{requested}' is not pinned"):
            hubguard.AutoModel.from_pretrained(repo["url"], revision=requested, trust_remote_code=True)
        with pytest.raises(hubguard.UnpinnedRevisionError, match=f"Revision '{requested}' is not pinned"):
            hubguard.AutoModel.from_pretrained(repo["url"], revision=requested, trust_remote_code=True, policy="strict")
        policy = _policy(tmp_path, "floating", FLOATING_POLICY)
        model = hubguard.AutoModel.from_pretrained(repo["url"], revision=requested, trust_remote_code=True, policy=str(policy))
        revision = type(model).__hubguard_snapshot__.revision
        assert (revision.requested, revision.commit) == (requested, expected)
        assert model.hubguard_report.sources[0].resolved_revision == expected

    def test_e_code_revision_for_all_code(self, repo: dict[str, str], fast_policy: Path) -> None:
        model = hubguard.AutoModel.from_pretrained(
            repo["url"], revision=repo["two"], code_revision=repo["one"], trust_remote_code=True, policy=str(fast_policy)
        )
        assert model.versions() == ("one", "one", "one", 2)

    def test_e_from_config_keeps_the_code_revision(self, repo: dict[str, str], fast_policy: Path) -> None:
        config = hubguard.AutoConfig.from_pretrained(
            repo["url"], revision=repo["two"], code_revision=repo["one"], trust_remote_code=True, policy=str(fast_policy)
        )
        model = hubguard.AutoModel.from_config(config, trust_remote_code=True, policy=str(fast_policy))
        assert model.versions() == ("one", "one", "one", 2)
        assert type(model).config_class is type(config)
        loaded = hubguard.AutoModel.from_pretrained(
            repo["url"], revision=repo["two"], config=config, trust_remote_code=True, policy=str(fast_policy)
        )
        assert loaded.versions() == ("one", "one", "one", 2)


# --- cross-repo-code-roundtrip -----------------------------------------------------------

CROSS_MODELING = """\
from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def forward(self, values):
        return [v + self.config.width for v in values]
"""

CROSS_AUTO_MAP = {
    "AutoConfig": "acme/tiny-code--configuration_tiny.TinyConfig",
    "AutoModel": "acme/tiny-code--modeling_tiny.TinyModel",
}


class _RecordingProxy(RewritingProxy):
    """A proxy in front of olah that records every requested path."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.paths: list[str] = []

    def _forward(self, handler: object, method: str) -> None:
        self.paths.append(handler.path)  # type: ignore[attr-defined]  # a BaseHTTPRequestHandler
        super()._forward(handler, method)


class TestCrossRepoCodeSurvivesSaveAndReload:
    def test_two_save_cycles_keep_reference_and_pin(
        self, hub: OlahServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_policy: Path
    ) -> None:
        code_x = _publish(hub, "acme/tiny-code", {
            "configuration_tiny.py": CONFIGURATION_TINY, "modeling_tiny.py": CROSS_MODELING,
        })
        config = {"model_type": "acme-tiny", "width": 10, "auto_map": CROSS_AUTO_MAP}
        weights = _publish(hub, "acme/tiny-weights", {
            "config.json": json.dumps(config),
            # Never to be fetched: the auto_map points at the code repository.
            "modeling_tiny.py": CROSS_MODELING.replace("v + self", "v * 1000 + self"),
        })
        proxy = _RecordingProxy(hub.endpoint)
        try:
            monkeypatch.setenv("HF_ENDPOINT", proxy.endpoint)
            model = hubguard.AutoModel.from_pretrained(
                "acme/tiny-weights", revision=weights, code_revision=code_x, trust_remote_code=True,
                policy=str(fast_policy),
            )
            assert model.forward([1, 2]) == [11, 12]
            weights_requests = [path for path in proxy.paths if "acme/tiny-weights" in path]
            assert weights_requests and not [path for path in weights_requests if path.endswith(".py")]
            code_requests = [path for path in proxy.paths if "acme/tiny-code" in path and "/resolve/" in path]
            assert code_requests and all(f"/resolve/{code_x}/" in path for path in code_requests)
            assert type(model).__hubguard_snapshot__.revision.commit == code_x
            assert type(model).config_class is type(model.config)

            current = model
            for name in ("out1", "out2"):
                out = tmp_path / name
                current.save_pretrained(out)
                saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
                assert saved["auto_map"] == CROSS_AUTO_MAP
                assert saved["hubguard"]["code_revisions"] == {"acme/tiny-code": code_x}
                assert not list(out.glob("*.py"))
                current = hubguard.AutoModel.from_pretrained(str(out), trust_remote_code=True, policy=str(fast_policy))
                assert current.forward([1, 2]) == [11, 12]
                assert type(current).config_class is type(current.config)
        finally:
            proxy.close()

        # Step 4: the code repository's main moves on; the saved pin still holds, also when
        # the code has to be downloaded again.
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path / "fresh-cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "fresh-hf-home"))
        code_y = commit_files(hub.repo_folder("acme/tiny-code"), {
            "modeling_tiny.py": CROSS_MODELING.replace("v + self", "v - self"),
        })
        assert code_y != code_x
        reloaded = hubguard.AutoModel.from_pretrained(
            str(tmp_path / "out2"), trust_remote_code=True, policy=str(fast_policy)
        )
        assert reloaded.forward([1, 2]) == [11, 12]
        assert type(reloaded).__hubguard_snapshot__.revision.commit == code_x


    def test_code_branch_needs_pin_or_floating(
        self, hub: OlahServer, tmp_path: Path, fast_policy: Path
    ) -> None:
        code_x = _publish(hub, "acme/tiny-code-floating", {
            "configuration_tiny.py": CONFIGURATION_TINY, "modeling_tiny.py": CROSS_MODELING,
        })
        auto_map = {name: value.replace("acme/tiny-code--", "acme/tiny-code-floating--") for name, value in CROSS_AUTO_MAP.items()}
        weights = _publish(hub, "acme/tiny-weights-floating", {
            "config.json": json.dumps({"model_type": "acme-tiny", "width": 10, "auto_map": auto_map}),
        })
        with pytest.raises(hubguard.UnpinnedRevisionError, match=code_x):
            hubguard.AutoModel.from_pretrained("acme/tiny-weights-floating", revision=weights, trust_remote_code=True)
        policy = _policy(tmp_path, "floating", FLOATING_POLICY)
        model = hubguard.AutoModel.from_pretrained(
            "acme/tiny-weights-floating", revision=weights, trust_remote_code=True, policy=str(policy)
        )
        assert model.forward([1, 2]) == [11, 12]
        out = tmp_path / "out"
        model.save_pretrained(out)
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        assert saved["hubguard"]["code_revisions"] == {"acme/tiny-code-floating": code_x}


# --- repo-ids-not-module-names -----------------------------------------------------------


def _magic_repo(magic: int) -> dict[str, str]:
    return {
        "config.json": _config_json(),
        "configuration_tiny.py": CONFIGURATION_TINY,
        "helpers.py": f"MAGIC = {magic}\n",
        "modeling_tiny.py": MODELING_MAGIC,
    }


class TestRepoIdsBecomeDistinctModuleNames:
    def test_dots_digits_and_current_folder(
        self, hub: OlahServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_policy: Path
    ) -> None:
        expected = {"acme/tiny-resnet-v1.5": 15, "acme/tiny-resnet-v1_5": 99, "acme/2fast.model": 2}
        classes = []
        for repo_id, magic in expected.items():
            commit = _publish(hub, repo_id, _magic_repo(magic))
            model = hubguard.AutoModel.from_pretrained(
                repo_id, revision=commit, trust_remote_code=True, policy=str(fast_policy)
            )
            assert model.magic() == magic, repo_id
            classes.append(type(model))

        local = _write(tmp_path / "local_dot", _magic_repo(7))
        monkeypatch.chdir(local)
        model = hubguard.AutoModel.from_pretrained(".", trust_remote_code=True, policy=str(fast_policy))
        assert model.magic() == 7
        classes.append(type(model))
        assert type(model).__hubguard_snapshot__.source.location == str(local)

        namespaces = [cls.__module__.rpartition(".modeling_tiny")[0] for cls in classes]
        assert len(set(namespaces)) == 4
        assert len({name.split(".")[1] for name in namespaces}) == 4
        for cls in classes:
            assert all(part.isidentifier() for part in cls.__module__.split(".")), cls.__module__


# --- save-after-local-load ---------------------------------------------------------------

SAVE_FILES = {
    "config.json": _config_json(width=3),
    "configuration_tiny.py": CONFIGURATION_TINY,
    "modeling_tiny.py": textwrap.dedent("""\
        from transformers import PreTrainedModel

        from .configuration_tiny import TinyConfig
        from .layers import repeat_width


        class TinyModel(PreTrainedModel):
            config_class = TinyConfig

            def forward(self, token):
                return repeat_width(token, self.config.width)
        """),
    "layers.py": "def repeat_width(token, width):\n    return [token] * width\n",
    "scratch_notes.py": '# Not imported by the model code.\nSTEPS = ["download", "train", "evaluate"]\n',
}

RELOAD_SCRIPT = """\
import sys
import hubguard
model = hubguard.AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True, policy=sys.argv[2])
print(repr(model.forward("t")))
"""


class TestSaveAfterLocalLoadCarriesTheCode:
    def test_saved_folder_loads_in_fresh_process_without_source(
        self, hub: OlahServer, tmp_path: Path, fast_policy: Path
    ) -> None:
        clone = _write(tmp_path / "acme-tiny-local", SAVE_FILES)
        # The default policy: this load runs the jailed trial where the system has one.
        model = hubguard.AutoModel.from_pretrained(str(clone), trust_remote_code=True)
        assert model.forward("t") == ["t", "t", "t"]
        assert model.hubguard_report.trial is not None
        out = tmp_path / "out"
        model.save_pretrained(out)

        saved = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
        assert [name for name in saved if name.endswith(".py")] == ["configuration_tiny.py", "layers.py", "modeling_tiny.py"]
        assert "config.json" in saved
        for name in ("configuration_tiny.py", "layers.py", "modeling_tiny.py"):
            assert (out / name).read_bytes() == (clone / name).read_bytes()
        assert json.loads((out / "config.json").read_text())["auto_map"] == json.loads(SAVE_FILES["config.json"])["auto_map"]

        # The same code published to the Hub saves the same file set.
        commit = _publish(hub, "acme/tiny-save", SAVE_FILES)
        from_hub = hubguard.AutoModel.from_pretrained(
            "acme/tiny-save", revision=commit, trust_remote_code=True, policy=str(fast_policy)
        )
        hub_out = tmp_path / "hub-out"
        from_hub.save_pretrained(hub_out)
        assert sorted(path.relative_to(hub_out).as_posix() for path in hub_out.rglob("*") if path.is_file()) == saved

        for path in sorted(clone.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        clone.rmdir()
        completed = subprocess.run(
            [sys.executable, "-c", RELOAD_SCRIPT, str(out), str(fast_policy)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "HUBGUARD_CACHE": str(tmp_path / "fresh-cache")},
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip().splitlines()[-1] == "['t', 't', 't']"
