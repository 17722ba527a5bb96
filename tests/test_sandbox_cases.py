"""Sandbox behaviour for helper modules, optional imports and Auto-registry writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubguard.audit.policy import load_policy
from hubguard.errors import SandboxImportViolation, SandboxViolation
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

POLICY = load_policy("default")

CONFIGURATION = """from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "acme-tiny"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""

HELPERS = """def describe(width):
    handle = open("@MARKER@", "w")
    handle.write("helper ran without the sandbox")
    handle.close()
    return "width=%d" % width
"""

MODELING_WITH_HELPER = """from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig
from .helpers import describe


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        return describe(self.config.width)
"""

MODELING_LAZY = """import importlib

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig


class LazyModel(PreTrainedModel):
    config_class = TinyConfig

    def describe(self):
        helpers = importlib.import_module(".helpers", __package__)
        return helpers.describe(self.config.width)
"""

MODELING_OPTIONAL = """import math

from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig

try:
    import acme_fastkern as fastkern
    HAVE_FASTKERN = True
except (ImportError, ModuleNotFoundError):
    fastkern = None
    HAVE_FASTKERN = False

try:
    import socket
except ImportError:
    socket = None


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

CONFIGURATION_TWIN = """from transformers import AutoConfig, PretrainedConfig


class TwinConfig(PretrainedConfig):
    model_type = "acme_base"

    def __init__(self, width=4, **kwargs):
        self.width = width
        self.flavour = "twin"
        super().__init__(**kwargs)


AutoConfig.register("acme_base", TwinConfig, exist_ok=True)
"""


def _snapshot(contents: dict[str, str], entries: list[str], name: str):
    encoded = {path: text.encode() for path, text in contents.items()}
    return build_snapshot(SourceRef("hub", name), PinnedRevision(None, "9" * 40), encoded, code_entries=entries)


def test_helper_module_is_sandboxed_too(tmp_path: Path) -> None:
    """A relatively imported helper runs under the same guards: its open() is refused at call time."""
    marker = tmp_path / "marker.txt"
    contents = {
        "configuration_tiny.py": CONFIGURATION,
        "helpers.py": HELPERS.replace("@MARKER@", str(marker)),
        "modeling_tiny.py": MODELING_WITH_HELPER,
    }
    code = import_snapshot(_snapshot(contents, ["modeling_tiny.py"], "acme/helpers"), POLICY)
    model = code.get_class("modeling_tiny.py", "TinyModel")(code.get_class("configuration_tiny.py", "TinyConfig")())

    with pytest.raises(SandboxViolation, match=r"builtin open\(\) is withheld") as raised:
        model.describe()

    assert raised.value.path == "helpers.py"
    assert raised.value.line == 2
    assert not marker.exists()


def test_importlib_is_not_importable(tmp_path: Path) -> None:
    """A module that pulls helpers in through importlib is refused at its import line."""
    marker = tmp_path / "marker.txt"
    contents = {
        "configuration_tiny.py": CONFIGURATION,
        "helpers.py": HELPERS.replace("@MARKER@", str(marker)),
        "modeling_lazy.py": MODELING_LAZY,
    }
    code = import_snapshot(_snapshot(contents, ["modeling_lazy.py", "helpers.py"], "acme/lazy"), POLICY)

    with pytest.raises(SandboxImportViolation, match=r"import of 'importlib' refused") as raised:
        code.get_class("modeling_lazy.py", "LazyModel")

    assert raised.value.line == 1
    assert raised.value.path == "modeling_lazy.py"
    assert not marker.exists()


def test_optional_imports_take_their_fallback() -> None:
    """Missing optional kernels and a refused guarded import leave the model loadable."""
    events: list[dict] = []
    contents = {"configuration_tiny.py": CONFIGURATION, "modeling_tiny.py": MODELING_OPTIONAL}
    code = import_snapshot(_snapshot(contents, ["modeling_tiny.py"], "acme/optional"), POLICY, report=events)
    module = code.module("modeling_tiny.py")
    model = module.TinyModel(module.TinyConfig(width=4))

    assert module.HAVE_FASTKERN is False
    assert module.socket is None
    assert model.forward([1.0, 2.0]) == [2.0, 4.0]
    refused = [event for event in events if event["verdict"] == "deny"]
    assert [(event["rule_id"], event["path"], event["line"]) for event in refused] == [("HG301", "modeling_tiny.py", 15)]
    assert "socket" in refused[0]["detail"]


def test_deferred_import_runs_at_call_time() -> None:
    """An import inside a method is decided when the method runs, and fails as ImportError."""
    contents = {"configuration_tiny.py": CONFIGURATION, "modeling_tiny.py": MODELING_OPTIONAL}
    module = import_snapshot(_snapshot(contents, ["modeling_tiny.py"], "acme/deferred"), POLICY).module("modeling_tiny.py")
    model = module.TinyModel(module.TinyConfig(width=4))

    with pytest.raises(ModuleNotFoundError, match="acme_deferred"):
        model.export_helper()


def test_auto_register_refused_and_registry_unchanged() -> None:
    """AutoConfig.register from remote code is refused, naming the call, and the registry stays as it was."""
    from hubguard.auto import _registry

    before = dict(_registry().configs)
    contents = {"configuration_twin.py": CONFIGURATION_TWIN}
    code = import_snapshot(_snapshot(contents, ["configuration_twin.py"], "acme/evil-twin"), POLICY)

    with pytest.raises(SandboxViolation, match=r"AutoConfig\.register refused") as raised:
        code.module("configuration_twin.py")

    assert raised.value.rule_id == "HG313"
    assert raised.value.path == "configuration_twin.py"
    assert raised.value.line == 13
    assert dict(_registry().configs) == before


TRANSFORMERS_NAMES = """from transformers.configuration_utils import PretrainedConfig
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import logging
import transformers

logger = logging.get_logger(__name__)

try:
    from transformers.generation.streamers import BaseStreamer
except ImportError:
    BaseStreamer = None


def names():
    return PretrainedConfig.__name__, PreTrainedModel.__name__, logger.name, BaseStreamer, transformers.AutoModel.__name__
"""


class _Report:
    """A report sink with the add_runtime_event method import_snapshot accepts."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def add_runtime_event(self, event: dict) -> None:
        self.events.append(event)


def test_transformers_names_map_to_hubguard() -> None:
    """transformers submodules resolve to hubguard's API; a missing one takes the ImportError fallback."""
    snapshot = _snapshot({"modeling_x.py": TRANSFORMERS_NAMES}, ["modeling_x.py"], "acme/transformers-names")

    module = import_snapshot(snapshot, POLICY).module("modeling_x.py")

    assert module.names() == ("PretrainedConfig", "PreTrainedModel", module.__name__, None, "AutoModel")


def test_report_object_receives_runtime_events(tmp_path: Path) -> None:
    """A report with add_runtime_event gets each refusal with its rule, file and line."""
    report = _Report()
    marker = tmp_path / "marker.txt"
    contents = {"modeling_x.py": f"def run():\n    open({str(marker)!r}, 'w')\n"}
    module = import_snapshot(_snapshot(contents, ["modeling_x.py"], "acme/report"), POLICY, report=report).module("modeling_x.py")

    with pytest.raises(SandboxViolation, match=r"builtin open\(\) is withheld"):
        module.run()

    assert [(event["rule_id"], event["path"], event["line"], event["verdict"]) for event in report.events] == [
        ("HG305", "modeling_x.py", 2, "deny")
    ]
    assert not marker.exists()
