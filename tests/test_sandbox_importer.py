"""The sandbox importer: namespaces per source and code id, caching, unloading and shadowing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hubguard.audit.policy import load_policy
from hubguard.errors import SandboxImportViolation, SandboxViolation
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot, namespace_of, unload
from hubguard.sandbox.importer import escape_component

POLICY = load_policy("default")

CONFIG_JSON = b'{"model_type": "acme-tiny", "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}}'
CONFIGURATION = b"""from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "acme-tiny"

    def __init__(self, width=4, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""
MODELING = b"""from transformers import PreTrainedModel

from .configuration_tiny import TinyConfig
from .helpers import MAGIC


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def magic(self):
        return MAGIC
"""


def _repo(magic: str, *, modeling: bytes = MODELING) -> dict[str, bytes]:
    return {
        "config.json": CONFIG_JSON,
        "configuration_tiny.py": CONFIGURATION,
        "modeling_tiny.py": modeling,
        "helpers.py": f"MAGIC = {magic}\n".encode(),
    }


def _snapshot(location: str, contents: dict[str, bytes], *, kind: str = "hub", commit: str = "a" * 40):
    return build_snapshot(SourceRef(kind, location), PinnedRevision(None, commit), contents)  # type: ignore[arg-type]  # kind is a SourceKind


def _magic(snapshot) -> object:
    code = import_snapshot(snapshot, POLICY)
    config_class = code.get_class("configuration_tiny.py", "TinyConfig")
    model_class = code.get_class("modeling_tiny.py", "TinyModel")
    return model_class(config_class()).magic()


@pytest.fixture(autouse=True)
def _unload_after_test():
    before = set(sys.modules)
    yield
    for name in [name for name in sys.modules if name.startswith("hubguard_modules.") and name not in before]:
        del sys.modules[name]


def test_escape_component_is_injective() -> None:
    """Dots, underscores and hyphens map to different escapes, so look-alike ids never collide."""
    assert escape_component("acme/tiny-resnet-v1.5") == "acme_stiny_dresnet_dv1_p5"
    assert escape_component("acme/tiny-resnet-v1_5") == "acme_stiny_dresnet_dv1_u5"
    assert escape_component("a_p") != escape_component("a.")
    assert escape_component("ü") == "_x0000fc"


def test_repo_ids_get_distinct_valid_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Look-alike and digit-leading repo ids and the local path "." load side by side."""
    folder = tmp_path / "local_dot"
    folder.mkdir()
    monkeypatch.chdir(folder)
    snapshots = [
        _snapshot("acme/tiny-resnet-v1.5", _repo("15")),
        _snapshot("acme/tiny-resnet-v1_5", _repo("99")),
        _snapshot("acme/2fast.model", _repo("2")),
        _snapshot(".", _repo("7"), kind="local"),
    ]

    values = [_magic(snapshot) for snapshot in snapshots]
    namespaces = [namespace_of(snapshot) for snapshot in snapshots]

    assert values == [15, 99, 2, 7]
    assert len(set(namespaces)) == 4
    for namespace in namespaces:
        assert all(part.isidentifier() for part in namespace.split("."))
    assert escape_component(str(folder)) in namespaces[3]


def test_code_id_keys_the_module_cache() -> None:
    """Same leaf folder name, changed helper, changed entry: each load sees its own code."""
    modeling_c = MODELING.replace(b"return MAGIC", b'return "C"')
    run_a = _snapshot("/runs/a/ckpt", _repo('"A"'), kind="local")
    run_b = _snapshot("/runs/b/ckpt", _repo('"B"'), kind="local")
    run_c = _snapshot("/runs/c/ckpt", _repo('"A"', modeling=modeling_c), kind="local")

    assert [_magic(run_a), _magic(run_b), _magic(run_c)] == ["A", "B", "C"]
    first_b = import_snapshot(run_b, POLICY).get_class("modeling_tiny.py", "TinyModel")

    edited_a = _snapshot("/runs/a/ckpt", _repo('"A2"'), kind="local")
    reloaded_b = _snapshot("/runs/b/ckpt", _repo('"B"'), kind="local")

    assert namespace_of(edited_a) != namespace_of(run_a)
    assert _magic(edited_a) == "A2"
    assert _magic(reloaded_b) == "B"
    assert import_snapshot(reloaded_b, POLICY).get_class("modeling_tiny.py", "TinyModel") is first_b


def test_two_commits_load_side_by_side() -> None:
    """Two commits of one repository keep separate modules in one process."""
    old = _snapshot("acme/tiny", _repo("1"), commit="1" * 40)
    new = _snapshot("acme/tiny", _repo("2"), commit="2" * 40)

    old_class = import_snapshot(old, POLICY).get_class("modeling_tiny.py", "TinyModel")
    new_class = import_snapshot(new, POLICY).get_class("modeling_tiny.py", "TinyModel")

    assert old_class is not new_class
    assert old_class.__module__ != new_class.__module__
    assert _magic(old) == 1
    assert _magic(new) == 2


def test_created_classes_carry_snapshot_and_module_path() -> None:
    """Every class the sandbox creates names its snapshot and repository module."""
    snapshot = _snapshot("acme/tiny", _repo("3"))
    code = import_snapshot(snapshot, POLICY)

    model_class = code.get_class("modeling_tiny.py", "TinyModel")
    config_class = code.get_class("configuration_tiny.py", "TinyConfig")

    assert model_class.__hubguard_snapshot__ is snapshot
    assert model_class.__hubguard_module_path__ == "modeling_tiny.py"
    assert config_class.__hubguard_module_path__ == "configuration_tiny.py"
    assert model_class.__module__ == f"{namespace_of(snapshot)}.modeling_tiny"


def test_unload_removes_modules() -> None:
    """Unloading removes every module of the namespace; a new import runs the code again."""
    snapshot = _snapshot("acme/unload", _repo("4"))
    code = import_snapshot(snapshot, POLICY)
    first = code.get_class("modeling_tiny.py", "TinyModel")
    namespace = code.namespace

    unload(code)

    assert not [name for name in sys.modules if name.startswith(namespace)]
    second = import_snapshot(snapshot, POLICY).get_class("modeling_tiny.py", "TinyModel")
    assert second is not first


def test_repo_file_named_like_stdlib_never_shadows() -> None:
    """torch.py and typing.py in the repository leave the real modules in place."""
    contents = {
        "torch.py": b"SHADOW = True\n",
        "typing.py": b"SHADOW = True\n",
        "modeling_x.py": b"import torch\nimport typing\nfrom . import torch as local_torch\n\n"
        b"def names():\n    return torch.__name__, typing.__name__, local_torch.SHADOW\n",
    }
    snapshot = build_snapshot(SourceRef("hub", "acme/shadow"), PinnedRevision(None, "c" * 40), contents, code_entries=["modeling_x.py"])

    module = import_snapshot(snapshot, POLICY).module("modeling_x.py")

    assert module.names() == ("torch", "typing", True)
    assert sys.modules["typing"].__name__ == "typing"
    assert not hasattr(sys.modules["torch"], "SHADOW")


def test_sys_path_is_unchanged() -> None:
    """Importing a snapshot never adds a folder to sys.path."""
    before = list(sys.path)

    _magic(_snapshot("acme/path", _repo("5")))

    assert sys.path == before


def test_refused_import_leaves_nothing_half_loaded() -> None:
    """A module whose import is refused, and the modules it pulled in, leave sys.modules."""
    contents = {
        "helpers.py": b"VALUE = 1\n",
        "modeling_x.py": b"from .helpers import VALUE\nimport socket\n",
    }
    snapshot = build_snapshot(SourceRef("hub", "acme/half"), PinnedRevision(None, "d" * 40), contents, code_entries=["modeling_x.py"])
    code = import_snapshot(snapshot, POLICY)

    with pytest.raises(SandboxImportViolation, match=r"import of 'socket' refused") as raised:
        code.module("modeling_x.py")

    assert isinstance(raised.value, ImportError)
    assert raised.value.line == 2
    assert not [name for name in sys.modules if name.startswith(code.namespace + ".")]


def test_compile_refusal_lists_every_construct() -> None:
    """One import_snapshot call reports every refused construct of the closure with its line."""
    contents = {"modeling_x.py": b"a = f.__code__\nb = g.gi_frame\nc = __builtins__\n"}
    snapshot = build_snapshot(SourceRef("hub", "acme/many"), PinnedRevision(None, "e" * 40), contents, code_entries=["modeling_x.py"])

    with pytest.raises(SandboxViolation, match=r"line 1: .*__code__.*; line 2: .*gi_frame.*; line 3: .*__builtins__") as raised:
        import_snapshot(snapshot, POLICY)

    assert raised.value.rule_id == "HG306"
    assert raised.value.line == 1


def test_packages_and_parent_relative_imports() -> None:
    """Subpackages with __init__.py and ``..`` imports resolve inside the snapshot."""
    contents = {
        "utils/__init__.py": b"from .scale import factor\n",
        "utils/scale.py": b"from ..constants import BASE\n\ndef factor():\n    return BASE * 2\n",
        "constants.py": b"BASE = 21\n",
        "modeling_x.py": b"from .utils import factor\nfrom .utils import scale\n\ndef run():\n    return factor(), scale.factor()\n",
    }
    snapshot = build_snapshot(SourceRef("hub", "acme/packages"), PinnedRevision(None, "8" * 40), contents, code_entries=["modeling_x.py"])

    module = import_snapshot(snapshot, POLICY).module("modeling_x.py")

    assert module.run() == (42, 42)
    assert sys.modules[f"{namespace_of(snapshot)}.utils.scale"].factor() == 42


def test_cache_hit_with_equal_policy_loaded_twice() -> None:
    """Two loads of the same policy file share the cache; another policy re-imports."""
    snapshot = _snapshot("acme/policy-cache", _repo("6"))

    first = import_snapshot(snapshot, load_policy("default")).get_class("modeling_tiny.py", "TinyModel")
    second = import_snapshot(snapshot, load_policy("default")).get_class("modeling_tiny.py", "TinyModel")
    strict = import_snapshot(snapshot, load_policy("strict")).get_class("modeling_tiny.py", "TinyModel")

    assert second is first
    assert strict is not first


def test_compile_refusals_of_all_files_in_one_error() -> None:
    """Refused constructs in two files of the closure come back in one error."""
    contents = {
        "helpers.py": b"leak = f.__globals__\n",
        "modeling_x.py": b"from .helpers import leak\nframe = g.tb_frame\n",
    }
    snapshot = build_snapshot(SourceRef("hub", "acme/two-files"), PinnedRevision(None, "e" * 40), contents, code_entries=["modeling_x.py"])

    with pytest.raises(SandboxViolation, match=r"helpers\.py uses .*__globals__.*; .*modeling_x\.py uses .*tb_frame") as raised:
        import_snapshot(snapshot, POLICY)

    assert raised.value.path == "helpers.py"
    assert raised.value.line == 1
