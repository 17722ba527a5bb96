"""Tests that the jailed trial rehearses what the real load and the first uses of a model do.

Each payload fires only in one place the real load or a first use reaches: eval mode, an
overridden ``train()``, ``copy.deepcopy``, a thread started with a delay, or the
interpreter's exit handlers. The repository is imported plainly (``sandbox_guards=False``),
so the jail's layers and its trace must catch each one. If a payload ran, it would only
create a marker under the test's tmp folder.
"""

from __future__ import annotations

import hashlib
import logging
import platform

import pytest

from hubguard.loader.snapshot import PinnedRevision, SourceRef, build_snapshot
from hubguard.sandbox import jail
from hubguard.sandbox.jail import TrialSettings, jail_support, run_trial

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or jail_support(disable=()).missing() != [],
    reason="the jail needs Linux with Landlock and seccomp",
)

COMMIT = "sha256:" + "cd" * 32

WRITES_AT_ATEXIT = """\
import atexit


def _later():
    open({marker!r}, "w").write("escaped")


class Net:
    def __init__(self, width=4):
        atexit.register(_later)
"""

WRITES_AT_THREADING_EXIT = """\
import threading


def _later():
    open({marker!r}, "w").write("escaped")


class Net:
    def __init__(self, width=4):
        threading._register_atexit(_later)
"""

WRITES_IN_EXIT_FINALIZER = """\
import weakref


def _later():
    open({marker!r}, "w").write("escaped")


class Net:
    def __init__(self, width=4):
        self.finalizer = weakref.finalize(Net, _later)
"""

WRITES_IN_DELAYED_THREAD = """\
import threading
import time


def _later():
    time.sleep(0.5)
    open({marker!r}, "w").write("escaped")


class Net:
    def __init__(self, width=4):
        threading.Thread(target=_later, daemon={daemon}).start()
"""

WRITES_AT_DEEPCOPY = """\
class Net:
    def __init__(self, width=4):
        self.width = width

    def __deepcopy__(self, memo):
        open({marker!r}, "w").write("escaped")
        return Net(self.width)
"""

OUTLIVES_THE_TRIAL = """\
import threading
import time


class Net:
    def __init__(self, width=4):
        threading.Thread(target=time.sleep, args=(60,), name="sleeper").start()
"""

TORCH_MODEL = """\
import torch


class TinyConfig:
    def __init__(self, width=4):
        self.width = width


class Net(torch.nn.Module):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__()
        self.linear = torch.nn.Linear(config.width, 2)
{methods}"""

WRITES_IN_EVAL_FORWARD = """
    def forward(self, x):
        if not self.training:
            open({marker!r}, "w").write("escaped")
        return self.linear(x)
"""

WRITES_IN_EVAL = """
    def eval(self):
        open({marker!r}, "w").write("escaped")
        return super().eval()
"""

WRITES_IN_TRAIN = """
    def train(self, mode=True):
        if mode:
            open({marker!r}, "w").write("escaped")
        return super().train(mode)
"""


def trial(source: str, **kwargs: object) -> jail.TrialResult:
    snapshot = build_snapshot(
        SourceRef("local", "/repos/acme-deferred"),
        PinnedRevision(requested=None, commit=COMMIT),
        {"modeling_x.py": source.encode()},
        code_entries=["modeling_x.py"],
    )
    options: dict[str, object] = {"reference": "modeling_x.Net", "input_shape": None, "sandbox_guards": False, "timeout": 30}
    options.update(kwargs)
    policy = options.pop("policy", None)
    return run_trial(snapshot, policy, **options)  # type: ignore[arg-type]  # options hold run_trial's keywords


def assert_denied_write(result: jail.TrialResult, marker, line: int) -> None:
    assert not marker.exists()
    assert result.verdict == "deny"
    assert [(event.kind, event.refused_by, event.path, event.line) for event in result.events] == [
        ("open:write", "landlock", "modeling_x.py", line)
    ]
    assert result.reason == f"modeling_x.py:{line}: the code attempted open:write {marker} (mode w), refused by landlock"


@pytest.mark.parametrize(
    ("source", "last_stages"),
    [
        (WRITES_AT_ATEXIT, ("threads", "atexit")),
        # As at interpreter exit, an exception from a threading handler ends threading's shutdown.
        (WRITES_AT_THREADING_EXIT, ("atexit",)),
        (WRITES_IN_EXIT_FINALIZER, ("threads", "atexit")),
    ],
    ids=["atexit", "threading", "finalize"],
)
def test_exit_handler_payload_runs_in_jail(tmp_path, source, last_stages):
    marker = tmp_path / "marker"
    result = trial(source.format(marker=str(marker)))
    assert_denied_write(result, marker, 5)
    assert result.stages == ("import", "instantiate", "deepcopy", "repr", *last_stages)


@pytest.mark.parametrize("daemon", [False, True])
def test_delayed_thread_payload_runs_in_jail(tmp_path, daemon):
    marker = tmp_path / "marker"
    result = trial(WRITES_IN_DELAYED_THREAD.format(marker=str(marker), daemon=daemon))
    assert_denied_write(result, marker, 7)


def test_deepcopy_payload_runs_in_jail(tmp_path):
    marker = tmp_path / "marker"
    result = trial(WRITES_AT_DEEPCOPY.format(marker=str(marker)))
    assert_denied_write(result, marker, 6)
    # The refused write ended the copy; the trial goes on and lists it.
    assert result.stages == ("import", "instantiate", "repr", "threads", "atexit")


def test_thread_outliving_the_trial_is_an_error():
    result = trial(OUTLIVES_THE_TRIAL, timeout=8)
    assert result.verdict == "error"
    assert result.reason == "the shutdown stage raised TimeoutError: threads sleeper still ran 2.0 s after the load"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("methods", "input_shape", "line"),
    [
        (WRITES_IN_EVAL_FORWARD, (1, 4), 18),
        # Without an input shape the trial guesses (1, 4) from the first Linear layer.
        (WRITES_IN_EVAL_FORWARD, None, 18),
        (WRITES_IN_EVAL, None, 17),
        (WRITES_IN_TRAIN, None, 18),
    ],
    ids=["eval-forward", "eval-forward-guessed", "eval-override", "train-override"],
)
def test_mode_payload_runs_in_jail(tmp_path, methods, input_shape, line):
    marker = tmp_path / "marker"
    source = TORCH_MODEL.format(methods=methods.format(marker=str(marker)))
    result = trial(source, config={"width": 4}, input_shape=input_shape)
    assert_denied_write(result, marker, line)


BENIGN_TORCH_MODEL = TORCH_MODEL.format(methods="""
    def forward(self, x):
        return self.linear(x)
""")


@pytest.mark.slow
def test_guessed_input_rehearses_every_use():
    result = trial(BENIGN_TORCH_MODEL, config={"width": 4})
    assert result.verdict == "pass"
    assert result.events == ()
    assert result.stages == (
        "import", "instantiate", "forward", "backward", "train", "deepcopy", "state_dict", "repr", "threads", "atexit"
    )


FAILS_IN_REPR = """\
class Net:
    def __init__(self, width=4):
        self.width = width

    def __repr__(self):
        raise ValueError("no repr")
"""


def test_later_use_failure_logged_not_fatal(caplog):
    with caplog.at_level(logging.INFO, logger="hubguard.sandbox.jail"):
        result = trial(FAILS_IN_REPR)
    assert result.verdict == "pass"
    assert result.stages == ("import", "instantiate", "deepcopy", "threads", "atexit")
    assert "jailed trial: modeling_x.py:6: the repr stage raised ValueError: no repr" in caplog.messages


@pytest.mark.slow
def test_sandbox_refusal_in_later_use_denies(tmp_path):
    from hubguard.audit.policy import load_policy

    marker = tmp_path / "marker"
    result = trial(
        WRITES_AT_DEEPCOPY.format(marker=str(marker)),
        policy=load_policy("default"),
        sandbox_guards=True,
        settings=TrialSettings(deny_events=("socket.*",)),
    )
    assert not marker.exists()
    assert result.verdict == "deny"
    assert result.reason.startswith("the deepcopy stage was stopped by the sandbox guards: ")
    assert "modeling_x.py:6" in result.reason


KEYS_ON_REAL_WEIGHTS = """\
import torch

from hubguard.configuration import PretrainedConfig
from hubguard.modeling import PreTrainedModel


class TinyConfig(PretrainedConfig):
    model_type = "tiny-weights"

    def __init__(self, width=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width


class Net(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(config.width, 2)

    def forward(self, x):
        if self.linear.bias[0].item() == 7.0:
            open({marker!r}, "w").write("escaped")
        return self.linear(x)
"""


@pytest.mark.slow
def test_weights_of_other_snapshot_loaded(tmp_path):
    import torch
    from safetensors.torch import save_file

    marker = tmp_path / "marker"
    weights_file = tmp_path / "model.safetensors"
    save_file({"linear.weight": torch.zeros(2, 4), "linear.bias": torch.tensor([7.0, 0.0])}, str(weights_file))
    data = weights_file.read_bytes()
    weights = build_snapshot(
        SourceRef("local", "/repos/acme-weights"),
        PinnedRevision(requested=None, commit=COMMIT),
        {"config.json": b'{"model_type": "tiny-weights", "width": 4}'},
        blob_files={"model.safetensors": (weights_file, len(data), hashlib.sha256(data).hexdigest())},
        code_entries=[],
    )
    result = trial(KEYS_ON_REAL_WEIGHTS.format(marker=str(marker)), config={"width": 4}, input_shape=(1, 4), weights=weights)
    assert_denied_write(result, marker, 24)
