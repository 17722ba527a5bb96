"""Ordinary model-code idioms compile and run in the sandbox; reflection that escapes it does not."""

from __future__ import annotations

import pytest

from hubguard.audit.policy import load_policy
from hubguard.errors import SandboxViolation
from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import import_snapshot

POLICY = load_policy("default")

CONFIGURATION = """from typing import List, Optional

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

MODELING = """from typing import Dict, List

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

# Every construct the restricted compiler must accept, with the value each function returns.
IDIOMS = '''from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections import OrderedDict
from typing import ClassVar

try:
    import acme_not_installed_kernel as kernel
    HAVE_KERNEL = True
except ImportError:
    kernel = None
    HAVE_KERNEL = False

_SCALE = 2


@dataclasses.dataclass(frozen=True)
class Settings:
    hidden: int = 8
    names: tuple[str, ...] = ("a", "b")
    registry: ClassVar[dict[str, int]] = {}

    def __post_init__(self):
        object.__setattr__(self, "_checked", True)


def traced(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return ("traced", function(*args, **kwargs))

    return wrapper


class Counter:
    __slots__ = ("count", "_private")

    def __init__(self):
        self.count = 0
        self._private = {}

    def __len__(self):
        return self.count

    def __getitem__(self, key):
        return self._private[key]

    def __enter__(self):
        self.count += 1
        return self

    def __exit__(self, *exc_info):
        self.count += 10
        return False


@traced
def decorated(x: int) -> int:
    return x * _SCALE


def comprehensions():
    squares = [i * i for i in range(4)]
    evens = {i for i in range(6) if i % 2 == 0}
    table = {k: v for k, v in zip("ab", (1, 2))}
    total = sum(i for i in range(5))
    return squares, sorted(evens), table, total


def context_managers():
    counter = Counter()
    with counter as inside:
        inside._private["k"] = 5
    with contextlib.suppress(KeyError):
        {}["missing"]
    return counter.count, counter["k"], len(counter)


def pattern(value):
    match value:
        case {"kind": "conv", "size": size}:
            return f"conv{size}"
        case [first, *rest]:
            return first + len(rest)
        case Settings(hidden=hidden):
            return hidden
        case _:
            return None


def closures():
    total = 0

    def add(value):
        nonlocal total
        total += value
        return total

    add(2)
    return add(3)


def unpacking():
    a, (b, c), *rest = [1, (2, 3), 4, 5]
    first, second = OrderedDict(x=1, y=2).items()
    return a + b + c + sum(rest), first, second


def augmented():
    values = [1, 2, 3]
    values[1] += 40
    settings = {"k": 1}
    settings["k"] *= 3
    return values, settings


def run_all():
    settings = Settings()
    return {
        "settings": (settings.hidden, settings.names, settings._checked),
        "decorated": (decorated(3), decorated.__name__, decorated.__wrapped__(1)),
        "comprehensions": comprehensions(),
        "context": context_managers(),
        "pattern": (pattern({"kind": "conv", "size": 3}), pattern([5, 6, 7]), pattern(Settings(hidden=4)), pattern(0)),
        "closures": closures(),
        "unpacking": unpacking(),
        "augmented": augmented(),
        "kernel": (HAVE_KERNEL, kernel),
        "math": math.sqrt(16.0),
        "annotations": Settings.__annotations__["hidden"],
        "type_name": type(settings).__name__,
    }
'''

# Reflection that leads out of the sandbox, one function per pattern, refused at run time.
BLOCKED_AT_RUN_TIME = '''class Probe:
    def __init__(self, value):
        self.value = value


def via_getattr_dict(p):
    return getattr(p, "__dict__")


def via_vars(p):
    return vars(p)


def via_getattr_mro(p):
    return getattr(type(p), "__mro__")


def via_getattr_code(fn):
    return getattr(fn, "__code__")


def via_globals_builtin():
    return globals()


def via_setattr_class(p):
    setattr(p, "__class__", int)
'''


def _snapshot(contents: dict[str, str], entries: list[str], name: str = "acme/tiny"):
    encoded = {path: text.encode() for path, text in contents.items()}
    return build_snapshot(SourceRef("hub", name), PinnedRevision(None, "f" * 40), encoded, code_entries=entries)


def test_tiny_model_idioms_load_and_run() -> None:
    """Annotations, super().__init__(**kwargs), _private members, __call__ and __repr__ all work."""
    snapshot = _snapshot({"configuration_tiny.py": CONFIGURATION, "modeling_tiny.py": MODELING}, ["modeling_tiny.py"])
    code = import_snapshot(snapshot, POLICY)
    config_class = code.get_class("configuration_tiny.py", "TinyConfig")
    model_class = code.get_class("modeling_tiny.py", "TinyModel")

    config = config_class(width=8)
    model = model_class(config)
    output = model.forward([1.0])

    assert config.summary() == "acme-tiny:8x3"
    assert config.layers == [1, 2]
    assert output == [64.0]
    assert repr(model) == "TinyModel(blocks=2)"
    assert model._cache == {"calls": 1}


def test_language_idioms_compile_and_run() -> None:
    """Dataclasses, decorators, comprehensions, with, match, nonlocal, unpacking and fallbacks run."""
    events: list[dict] = []
    snapshot = _snapshot({"modeling_idioms.py": IDIOMS}, ["modeling_idioms.py"], name="acme/idioms")

    module = import_snapshot(snapshot, POLICY, report=events).module("modeling_idioms.py")
    results = module.run_all()

    assert results["settings"] == (8, ("a", "b"), True)
    assert results["decorated"] == (("traced", 6), "decorated", 2)
    assert results["comprehensions"] == ([0, 1, 4, 9], [0, 2, 4], {"a": 1, "b": 2}, 10)
    assert results["context"] == (11, 5, 11)
    assert results["pattern"] == ("conv3", 7, 4, None)
    assert results["closures"] == 5
    assert results["unpacking"] == (15, ("x", 1), ("y", 2))
    assert results["augmented"] == ([1, 42, 3], {"k": 3})
    assert results["kernel"] == (False, None)
    assert results["math"] == 4.0
    assert results["annotations"] == "int"
    assert results["type_name"] == "Settings"
    assert [event["detail"] for event in events if event["operation"] == "import"] == [
        "acme_not_installed_kernel used; the policy warns"
    ]


@pytest.mark.parametrize(
    ("function", "argument", "message"),
    [
        ("via_getattr_dict", "probe", r"special attribute '__dict__'"),
        ("via_vars", "probe", r"builtin vars\(\) is withheld"),
        ("via_getattr_mro", "probe", r"special attribute '__mro__'"),
        ("via_getattr_code", "function", r"special attribute '__code__'"),
        ("via_globals_builtin", None, r"builtin globals\(\) is withheld"),
        ("via_setattr_class", "probe", r"assigning the special attribute '__class__'"),
    ],
)
def test_reflection_refused_per_call(function: str, argument: str | None, message: str) -> None:
    """Each reflective call raises a SandboxViolation and returns nothing."""
    snapshot = _snapshot({"blocked.py": BLOCKED_AT_RUN_TIME}, ["blocked.py"], name="acme/blocked")
    module = import_snapshot(snapshot, POLICY).module("blocked.py")
    arguments = {"probe": (module.Probe(1),), "function": (module.via_vars,), None: ()}[argument]

    with pytest.raises(SandboxViolation, match=message) as raised:
        getattr(module, function)(*arguments)

    assert raised.value.path == "blocked.py"
    assert raised.value.rule_id in {"HG302", "HG304", "HG305"}


def test_stock_restricted_python_refuses_the_tiny_model() -> None:
    """RestrictedPython's own policy rejects the model file that hubguard's policy accepts."""
    from RestrictedPython import compile_restricted_exec

    result = compile_restricted_exec(MODELING, filename="modeling_tiny.py")

    assert result.code is None
    assert any('"_no_split_modules"' in error or "_init_weights" in error for error in result.errors)
