"""Benign uses of what the red-team fixes guard: stored functions, type(), metaclasses, class patterns."""

from __future__ import annotations

import copy

import torch

from hubguard.audit.policy import load_policy
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

POLICY = load_policy("default")

MODELING = '''import abc
import dataclasses
import functools

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    scale = torch.relu

    def __init__(self):
        super().__init__()
        self.act = F.gelu
        self.pointwise = torch.relu
        self.norm = functools.partial(torch.nn.LayerNorm, eps=1e-6)(2)
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.scale(self.pointwise(self.act(self.norm(self.linear(x)))))


class Registry(type):
    created = []

    def __new__(mcs, name, bases, namespace):
        cls = super().__new__(mcs, name, bases, namespace)
        mcs.created.append(name)
        return cls


class Plugin(metaclass=Registry):
    pass


class Base(metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def size(self):
        pass


class Sized(Base):
    def size(self):
        return 3


@dataclasses.dataclass
class Point:
    x: int
    y: int


def shapes(value):
    match value:
        case Point(x, y=0):
            return ("on the x axis", x)
        case Point(x=0, y=y):
            return ("on the y axis", y)
        case {"point": Point(x, y)}:
            return ("in a mapping", x + y)
        case [first, *rest]:
            return ("sequence", first, len(rest))
        case _:
            return None


def typing_checks():
    Dynamic = type("Dynamic", (object,), {"value": 5, "double": lambda self: self.value * 2})
    table = {"relu": torch.relu}
    return (
        type(3) is int,
        isinstance(int, type),
        issubclass(Registry, type),
        Dynamic().double(),
        Registry.created,
        isinstance(Sized(), Base),
        Sized().size(),
        table.get("relu") is torch.relu,
        list(table.values()) == [torch.relu],
        max([3, 1, 2]),
        next(iter([7])),
    )
'''


def _module():
    snapshot = build_snapshot(
        SourceRef("hub", "acme/stored-callables"), PinnedRevision(None, "e" * 40),
        {"modeling_x.py": MODELING.encode()}, code_entries=["modeling_x.py"],
    )
    return import_snapshot(snapshot, POLICY).module("modeling_x.py")


def test_stored_library_functions_run_and_survive_eval_and_deepcopy() -> None:
    """F.gelu, torch.relu and a partial stored on a model still compute the same values after eval() and deepcopy."""
    module = _module()
    torch.manual_seed(0)
    block = module.Block()
    x = torch.randn(3, 2)

    block.eval()
    copied = copy.deepcopy(block)
    expected = torch.relu(torch.relu(torch.nn.functional.gelu(block.norm(block.linear(x)))))

    assert torch.equal(block(x), expected)
    assert torch.equal(copied(x), expected)
    assert block.act(torch.tensor([0.0])).item() == 0.0
    assert block.act.__name__ == "gelu"
    assert isinstance(block.norm, torch.nn.LayerNorm)


def test_type_metaclasses_and_container_reads_behave_as_in_python() -> None:
    """type(x), isinstance(x, type), metaclasses and dict reads give Python's own answers."""
    assert _module().typing_checks() == (True, True, True, 10, ["Plugin"], True, 3, True, True, 3, 7)


def test_class_and_mapping_patterns_match_as_in_python() -> None:
    """Positional and keyword class patterns, nested in mappings, bind the same values."""
    module = _module()

    assert module.shapes(module.Point(4, 0)) == ("on the x axis", 4)
    assert module.shapes(module.Point(0, 5)) == ("on the y axis", 5)
    assert module.shapes({"point": module.Point(2, 3)}) == ("in a mapping", 5)
    assert module.shapes([1, 2, 3]) == ("sequence", 1, 2)
    assert module.shapes("other") is None


def test_policy_allow_of_open_leaves_open_withheld(tmp_path) -> None:
    """A policy that allows open passes the static audit, but the sandbox still withholds open() (docs/policy.md)."""
    import pytest

    from hubguard.errors import SandboxViolation

    policy_file = tmp_path / "tokenizer.toml"
    policy_file.write_text('extends = "default"\nname = "tokenizer-open"\n\n[builtins]\nallow = ["open"]\n')
    marker = tmp_path / "marker"
    source = f"def run():\n    open({str(marker)!r}, 'w').write('x')\n"
    snapshot = build_snapshot(
        SourceRef("hub", "acme/tokenizer"), PinnedRevision(None, "e" * 40),
        {"modeling_x.py": source.encode()}, code_entries=["modeling_x.py"],
    )
    module = import_snapshot(snapshot, load_policy(policy_file)).module("modeling_x.py")

    with pytest.raises(SandboxViolation, match=r"open\(\) is withheld .* whatever the policy's \[builtins\] allow says") as raised:
        module.run()

    assert raised.value.rule_id == "HG305"
    assert raised.value.line == 2
    assert not marker.exists()
