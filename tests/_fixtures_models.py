"""Fixtures for the config, model and Auto-class tests: small model packages written to tmp folders.

Each test gets its own content cache (``HUBGUARD_CACHE``) and its own Auto registry
scope, so registrations made by one test never reach another.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hubguard.auto import isolated_registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

HEADS_CONFIG = '''\
from hubguard import PretrainedConfig


class HeadsConfig(PretrainedConfig):
    model_type = "test-heads"

    def __init__(self, hidden=4, heads=2, **kwargs):
        if hidden % heads != 0:
            raise ValueError("hidden must be a multiple of heads")
        self.hidden = hidden
        self.heads = heads
        self.head_dim = hidden // heads
        super().__init__(**kwargs)
'''

NO_KWARGS_CONFIG = '''\
from hubguard import PretrainedConfig


class NoKwConfig(PretrainedConfig):
    model_type = "test-nokw"

    def __init__(self, hidden=4):
        self.hidden = hidden
        super().__init__()
'''

# A language-model-like class written the tutorial way: __init__ calls
# super().__init__(config), builds the layers and ties the head to the embedding,
# with no post_init() or tie hook of any kind.
TIED_MODEL = '''\
import torch

from hubguard import PreTrainedModel

from .configuration_tied import TiedConfig


class TiedModel(PreTrainedModel):
    config_class = TiedConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab, config.width)
        self.mix = torch.nn.Linear(config.width, config.width)
        self.head = torch.nn.Linear(config.width, config.vocab, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.full((config.width,), 0.5))
        self.register_buffer("offset", torch.nn.init.constant_(torch.empty(config.width), 3.0), persistent=False)

    def forward(self, ids):
        hidden = self.mix(self.embed(ids)) * self.scale + self.offset
        return self.head(hidden)
'''

TIED_CONFIG = '''\
from hubguard import PretrainedConfig


class TiedConfig(PretrainedConfig):
    model_type = "test-tied"

    def __init__(self, vocab=11, width=6, **kwargs):
        self.vocab = vocab
        self.width = width
        super().__init__(**kwargs)
'''


@pytest.fixture(autouse=True)
def _private_cache_and_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HUBGUARD_CACHE", str(tmp_path_factory.mktemp("hubguard-cache")))
    with isolated_registry():
        yield


def write_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``files`` (repository path -> source) as package ``name`` under ``root``; return its folder."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    for path, text in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def import_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Return ``load(name, files) -> package folder``: write a package and make it importable."""
    root = tmp_path / "packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    names: list[str] = []

    def load(name: str, files: dict[str, str]) -> Path:
        names.append(name)
        return write_package(root, name, files)

    yield load
    for module_name in list(sys.modules):
        if any(module_name == name or module_name.startswith(name + ".") for name in names):
            del sys.modules[module_name]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``examples/custom_resnet`` as the package ``custom_resnet`` and register its classes."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    package = importlib.import_module("custom_resnet")
    package.register_auto_classes()
    return package


@pytest.fixture
def tied(import_package: object) -> ModuleType:
    """Import the tied-weights package and return its modeling module."""
    import_package("tiedpkg", {"configuration_tied.py": TIED_CONFIG, "modeling_tied.py": TIED_MODEL})  # type: ignore[operator]  # the fixture's loader
    return importlib.import_module("tiedpkg.modeling_tied")


class FakeRemote:
    """Stand-in for ``hubguard._remote.load_class``: records each call and imports the snapshot's code.

    The code is written from the snapshot's verified bytes to a private package, so the
    returned class carries ``__hubguard_snapshot__`` and ``__hubguard_module_path__``
    as a sandbox-loaded class does.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str, dict[str, object]]] = []
        self.packages: list[str] = []
        # Repo id -> code snapshot, for "org/repo--module.Class" references.
        self.code_snapshots: dict[str, object] = {}

    def load_class(self, snapshot: object, auto_class_name: str, **options: object) -> type:
        from hubguard._remote import auto_map_reference

        self.calls.append((snapshot.source.location, auto_class_name, options))  # type: ignore[attr-defined]  # a Snapshot
        reference = auto_map_reference(snapshot, auto_class_name)  # type: ignore[arg-type]  # a Snapshot
        repo, separator, local_reference = reference.rpartition("--")
        code_snapshot = self.code_snapshots[repo] if separator else snapshot
        module_name, _, class_name = local_reference.rpartition(".")
        # One package per code id, as the sandbox keeps one namespace per closure.
        package = f"fake_remote_{code_snapshot.code_id()[:16]}"  # type: ignore[attr-defined]  # a Snapshot
        if package not in self.packages:
            self.packages.append(package)
            files = {path: code_snapshot.read_text(path) for path in code_snapshot.code_paths}  # type: ignore[attr-defined]  # a Snapshot
            write_package(self.root, package, files)
        cls = getattr(importlib.import_module(f"{package}.{module_name}"), class_name)
        cls.__hubguard_snapshot__ = code_snapshot
        cls.__hubguard_module_path__ = module_name.replace(".", "/") + ".py"
        return cls


@pytest.fixture
def fake_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRemote]:
    """Replace ``hubguard._remote.load_class`` with a :class:`FakeRemote`."""
    from hubguard import _remote

    root = tmp_path / "remote-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fake = FakeRemote(root)
    monkeypatch.setattr(_remote, "load_class", fake.load_class)
    yield fake
    for module_name in list(sys.modules):
        if module_name.split(".")[0] in fake.packages:
            del sys.modules[module_name]
