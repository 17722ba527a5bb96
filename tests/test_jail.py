"""Tests of the jailed trial load (Linux): each hostile payload is stopped by the operating system.

Most tests import the repository plainly (``sandbox_guards=False``), so only the jail's
own layers stand between the payload and the host. Each payload, if it ran, would only
create a marker under the test's tmp folder, connect to a listening socket on
127.0.0.1, or signal a ``sleep`` process the test started.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from hubguard.errors import TrialError
from hubguard.loader.snapshot import PinnedRevision, Snapshot, SourceRef, build_snapshot
from hubguard.sandbox import jail
from hubguard.sandbox.jail import TrialEvent, TrialSettings, jail_support, run_trial

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or jail_support(disable=()).missing() != [],
    reason="the jail needs Linux with Landlock and seccomp",
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_resnet"
COMMIT = "sha256:" + "ab" * 32
# The stages of a trial that completes: a plain class gets deepcopy and repr; a torch model
# with an input shape also gets a backward pass, a train step and state_dict.
PLAIN_STAGES = ("import", "instantiate", "deepcopy", "repr", "threads", "atexit")
MODEL_STAGES = ("import", "instantiate", "forward", "backward", "train", "deepcopy", "state_dict", "repr", "threads", "atexit")

WRITES_MARKER = """\
class Net:
    pass
open({marker!r}, "w").write("escaped")
"""

CONNECTS_TO_PORT = """\
import socket
connection = socket.create_connection(("127.0.0.1", {port}), timeout=2)

class Net:
    pass
"""

SPAWNS_TOUCH = """\
import subprocess
subprocess.run(["/bin/touch", {marker!r}])

class Net:
    pass
"""

RUNS_OS_SYSTEM = """\
import os
os.system("/bin/touch {marker}")

class Net:
    pass
"""

CALLS_LIBC = """\
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.system(b"/bin/touch {marker}")
libc.open(b"{marker}", 0o101, 0o644)

class Net:
    pass
"""

LOADS_SYSTEM_LIBRARY = """\
import ctypes
library = ctypes.CDLL({library!r})

class Net:
    pass
"""

READS_HOST_FILE = """\
secret = open("/etc/hostname").read()

class Net:
    pass
"""

KILLS_PROCESS = """\
import os, signal
os.kill({pid}, signal.SIGKILL)

class Net:
    pass
"""

SPINS_FOREVER = """\
while True:
    pass
"""

ALLOCATES_50_GB = """\
block = bytearray(50 * 1024 ** 3)
"""

DEREFERENCES_NULL = """\
import ctypes
ctypes.string_at(0)
"""

FORGES_REPORT = """\
import os
for fd in range(3, 64):
    try:
        os.write(fd, b'{"message": "report", "outcome": {"stages": ["import"]}, "events": []}\\n')
    except OSError:
        pass
os._exit(0)
"""

FORGES_REPORT_WITH_NONCE = """\
import gc, json, os
job = next(item for item in gc.get_objects() if isinstance(item, dict) and "nonce" in item and "result_fd" in item)
forged = {"message": "report", "nonce": job["nonce"], "outcome": {"stages": ["import"]}, "events": []}
os.write(job["result_fd"], json.dumps(forged).encode() + b"\\n")


class Net:
    pass
"""

WRITES_MARKER_IN_DEL = """\
class Net:
    def __del__(self):
        open({marker!r}, "w").write("escaped")
"""

BENIGN_MODULE = """\
class TinyConfig:
    def __init__(self, width=4):
        self.width = width


class Net:
    config_class = TinyConfig

    def __init__(self, config):
        self.width = config.width
        scratch = open("scratch.txt", "w")
        scratch.write("temp folder only")
        scratch.close()
"""

FORWARD_WRITES_MARKER = """\
import torch


class TinyConfig:
    def __init__(self, width=4):
        self.width = width


class Net(torch.nn.Module):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__()
        self.linear = torch.nn.Linear(config.width, 2)

    def forward(self, x):
        open({marker!r}, "w").write("escaped")
        return self.linear(x)
"""


def make_snapshot(source: str, *, extra: dict[str, bytes] | None = None) -> Snapshot:
    contents = {"modeling_x.py": source.encode(), **(extra or {})}
    return build_snapshot(
        SourceRef("local", "/repos/acme-tiny"),
        PinnedRevision(requested=None, commit=COMMIT),
        contents,
        code_entries=["modeling_x.py"],
    )


def trial(source: str, **kwargs: object) -> jail.TrialResult:
    options: dict[str, object] = {"reference": "modeling_x.Net", "input_shape": None, "sandbox_guards": False, "timeout": 30}
    options.update(kwargs)
    return run_trial(make_snapshot(source), None, **options)  # type: ignore[arg-type]  # options hold run_trial's keywords


def kinds(result: jail.TrialResult) -> list[tuple[str, str | None, str | None, int | None]]:
    return [(event.kind, event.refused_by, event.path, event.line) for event in result.events]


@pytest.fixture(autouse=True)
def no_disabled_layers(monkeypatch):
    """Pin HUBGUARD_JAIL_DISABLE unset, so every layer this kernel has is used unless a test asks."""
    monkeypatch.delenv("HUBGUARD_JAIL_DISABLE", raising=False)


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    yield server
    server.close()


def assert_nothing_connected(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


# --- files ----------------------------------------------------------------------------------


def test_file_write_outside_temp_refused_by_landlock(tmp_path):
    marker = tmp_path / "marker"
    result = trial(WRITES_MARKER.format(marker=str(marker)))
    assert not marker.exists()
    assert result.verdict == "deny"
    assert kinds(result) == [("open:write", "landlock", "modeling_x.py", 3)]
    assert result.events[0].detail == f"{marker} (mode w)"
    assert result.reason == f"modeling_x.py:3: the code attempted open:write {marker} (mode w), refused by landlock"


def test_file_write_denied_verdict_raises_trial_error(tmp_path):
    marker = tmp_path / "marker"
    result = trial(WRITES_MARKER.format(marker=str(marker)))
    with pytest.raises(TrialError, match=r"refused the code: modeling_x.py:3: the code attempted open:write") as raised:
        result.raise_for_verdict()
    assert raised.value.rule_id == "HG401"
    assert raised.value.path == "modeling_x.py"
    assert raised.value.line == 3
    assert raised.value.result is result


def test_finalizer_payload_traced(tmp_path):
    marker = tmp_path / "marker"
    result = trial(WRITES_MARKER_IN_DEL.format(marker=str(marker)))
    assert not marker.exists()
    assert result.stages == PLAIN_STAGES
    assert kinds(result) == [("open:write", "landlock", "modeling_x.py", 3)]


def test_host_file_read_refused_by_landlock():
    result = trial(READS_HOST_FILE)
    assert result.verdict == "deny"
    assert kinds(result) == [("open:outside", "landlock", "modeling_x.py", 1)]
    assert result.events[0].detail == "/etc/hostname"


def test_temp_folder_write_allowed_and_recorded():
    result = trial(BENIGN_MODULE, settings=TrialSettings(deny_events=("socket.*",)))
    assert result.verdict == "pass"
    assert result.stages == PLAIN_STAGES
    assert [event.kind for event in result.events] == ["open:write"]
    assert result.events[0].refused_by is None
    assert result.events[0].detail.endswith("/work/scratch.txt (mode w)")
    assert (result.events[0].path, result.events[0].line) == ("modeling_x.py", 11)
    assert result.to_dict()["events"][0]["denied"] is False


def test_temp_folder_write_denied_by_default_policy_events():
    result = trial(BENIGN_MODULE)
    assert result.verdict == "deny"
    assert result.reason.startswith("modeling_x.py:11: the code attempted open:write ")


# --- network ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        ((), [("socket.getaddrinfo", None, "modeling_x.py", 2), ("socket.__new__", "seccomp", "modeling_x.py", 2)]),
        (
            ("seccomp",),
            [("socket.getaddrinfo", None, "modeling_x.py", 2), ("socket.__new__", "landlock", "modeling_x.py", 2),
             ("socket.connect", "landlock", "modeling_x.py", 2)],
        ),
        (
            ("seccomp", "landlock"),
            [("socket.getaddrinfo", None, "modeling_x.py", 2), ("socket.__new__", "netns", "modeling_x.py", 2),
             ("socket.connect", "netns", "modeling_x.py", 2)],
        ),
    ],
    ids=["seccomp", "landlock-tcp", "netns"],
)
def test_connect_to_loopback_refused(listener, disabled, expected):
    port = listener.getsockname()[1]
    result = trial(CONNECTS_TO_PORT.format(port=port), disable=disabled)
    assert_nothing_connected(listener)
    assert result.verdict == "deny"
    assert kinds(result) == expected


# --- processes, libraries, signals --------------------------------------------------------


def test_subprocess_refused_by_seccomp(tmp_path):
    marker = tmp_path / "marker"
    result = trial(SPAWNS_TOUCH.format(marker=str(marker)))
    assert not marker.exists()
    assert result.verdict == "deny"
    assert kinds(result) == [("subprocess.Popen", "seccomp", "modeling_x.py", 2)]
    assert result.events[0].detail == f"/bin/touch ['/bin/touch', '{marker}']"


def test_subprocess_refused_by_landlock_without_seccomp(tmp_path):
    marker = tmp_path / "marker"
    result = trial(SPAWNS_TOUCH.format(marker=str(marker)), disable=["seccomp"])
    assert not marker.exists()
    assert kinds(result) == [("subprocess.Popen", "landlock", "modeling_x.py", 2)]


def test_os_system_refused_by_seccomp(tmp_path):
    marker = tmp_path / "marker"
    result = trial(RUNS_OS_SYSTEM.format(marker=str(marker)))
    assert not marker.exists()
    assert kinds(result) == [("os.system", "seccomp", "modeling_x.py", 2)]


def test_native_calls_through_ctypes_refused(tmp_path):
    marker = tmp_path / "marker"
    result = trial(CALLS_LIBC.format(marker=str(marker)))
    assert not marker.exists()
    assert result.verdict == "deny"
    assert kinds(result) == [
        ("ctypes.dlopen", None, "modeling_x.py", 2),
        ("ctypes.dlsym", None, "modeling_x.py", 3),
        ("ctypes.dlsym", None, "modeling_x.py", 4),
    ]
    assert [event.detail for event in result.events] == ["libc.so.6", "system", "open"]


def test_shared_library_outside_python_refused_by_landlock():
    candidates = [
        Path("/lib/x86_64-linux-gnu/libutil.so.1"),
        Path("/lib/x86_64-linux-gnu/libz.so.1"),
        Path("/usr/lib/x86_64-linux-gnu/libz.so.1"),
        Path("/lib/aarch64-linux-gnu/libz.so.1"),
    ]
    existing = [str(path) for path in candidates if path.exists()]
    assert existing, "no system shared library outside the Python installation to load"
    library = existing[0]
    result = trial(LOADS_SYSTEM_LIBRARY.format(library=library), settings=TrialSettings(deny_events=()))
    assert result.verdict == "error"
    assert kinds(result) == [("ctypes.dlopen", "landlock", "modeling_x.py", 2)]
    assert result.reason.startswith("modeling_x.py:2: the import stage raised OSError: ")
    assert "Permission denied" in result.reason


def test_signal_to_other_process_refused():
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = trial(KILLS_PROCESS.format(pid=sleeper.pid))
        assert sleeper.poll() is None
        assert kinds(result) == [("os.kill", "seccomp", "modeling_x.py", 2)]
        assert result.events[0].detail == f"{sleeper.pid} 9"
    finally:
        sleeper.kill()
        sleeper.wait()


# --- limits, crashes and a lying child -----------------------------------------------------


def test_endless_loop_killed_at_wall_clock_timeout():
    result = trial(SPINS_FOREVER, timeout=2)
    assert result.verdict == "error"
    assert result.reason == "the trial timed out after 2 s of wall-clock time and was killed"
    assert result.duration_seconds < 10
    assert result.layers.active() == ["netns", "landlock", "seccomp", "rlimits"]


def test_endless_loop_killed_at_cpu_limit():
    result = trial(SPINS_FOREVER, settings=TrialSettings(cpu_seconds=1))
    assert result.verdict == "error"
    assert result.reason == "the trial was killed by SIGXCPU: it used up its CPU time limit of 1 s"


def test_memory_blow_up_stopped_by_address_space_limit():
    result = trial(ALLOCATES_50_GB, settings=TrialSettings(memory_mb=256))
    assert result.verdict == "error"
    assert result.reason == (
        "modeling_x.py:1: the import stage ran out of memory (limit: 256 MB on top of the preloaded libraries)"
    )


def test_crash_reported_with_signal():
    result = trial(DEREFERENCES_NULL)
    assert result.verdict == "error"
    assert result.reason == "the trial crashed with SIGSEGV"
    with pytest.raises(TrialError, match="crashed with SIGSEGV"):
        result.raise_for_verdict()


def test_forged_report_without_nonce_rejected():
    result = trial(FORGES_REPORT)
    assert result.verdict == "error"
    assert result.reason == "the child's result pipe holds a message without the job's nonce; the report is not trusted"


def test_forged_report_with_nonce_detected_as_extra_message():
    result = trial(FORGES_REPORT_WITH_NONCE)
    assert result.verdict == "error"
    assert result.reason == "the child wrote more trial messages than the harness sends; the report is not trusted"


# --- policy modes and missing layers ----------------------------------------------------------


def test_required_mode_refuses_without_landlock():
    with pytest.raises(TrialError, match=r"requires a jailed trial load but this system lacks landlock \(disabled") as raised:
        trial(BENIGN_MODULE, settings=TrialSettings(mode="required"), disable=["landlock"])
    assert raised.value.rule_id == "HG402"


def test_if_available_mode_runs_without_landlock_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="hubguard.sandbox.jail"):
        result = trial(BENIGN_MODULE, settings=TrialSettings(deny_events=()), disable=["landlock"])
    assert result.verdict == "pass"
    assert result.layers.landlock is False
    assert result.layers.missing == ("landlock",)
    assert result.layers.active() == ["netns", "seccomp", "rlimits"]
    assert [record.getMessage() for record in caplog.records] == [
        "jailed trial runs without landlock (disabled by HUBGUARD_JAIL_DISABLE): the policy allows it (if-available)"
    ]


def test_disable_variable_read_from_environment(monkeypatch):
    monkeypatch.setenv("HUBGUARD_JAIL_DISABLE", "landlock, netns")
    support = jail_support()
    assert support.disabled == ("landlock", "netns")
    assert support.missing() == ["landlock"]
    assert support.available is False


def test_unknown_layer_to_disable_rejected():
    with pytest.raises(TrialError, match="unknown jail layer 'apparmor' to disable"):
        jail_support(disable=["apparmor"])


def test_off_mode_skips_without_starting_child(tmp_path):
    marker = tmp_path / "marker"
    result = trial(WRITES_MARKER.format(marker=str(marker)), settings=TrialSettings(mode="off"))
    assert result.verdict == "skipped"
    assert result.reason == "the trial is off in policy None"
    assert result.events == ()
    result.raise_for_verdict()


def test_reference_to_other_repository_rejected():
    with pytest.raises(TrialError, match="is not of the form 'module.Class' inside one repository"):
        trial(BENIGN_MODULE, reference="acme/other--modeling_x.Net")


def test_reference_to_missing_module_rejected():
    with pytest.raises(TrialError, match=r"modeling_y.py is not a file of /repos/acme-tiny@sha256:abab"):
        trial(BENIGN_MODULE, reference="modeling_y.Net")


def test_result_to_dict_lists_layers_and_events(tmp_path):
    marker = tmp_path / "marker"
    data = trial(WRITES_MARKER.format(marker=str(marker))).to_dict()
    assert sorted(data) == [
        "deny_events", "dropped_events", "duration_seconds", "events", "layers", "policy", "reason", "rule_id",
        "stages", "verdict",
    ]
    assert data["deny_events"] == list(jail.DEFAULT_DENY_EVENTS)
    assert data["layers"] == {
        "netns": True,
        "landlock": True,
        "landlock_abi": jail_support().landlock_abi,
        "seccomp": True,
        "rlimits": True,
        "capabilities_dropped": True,
        "missing": [],
    }
    assert data["events"] == [
        {
            "kind": "open:write",
            "detail": f"{marker} (mode w)",
            "refused_by": "landlock",
            "path": "modeling_x.py",
            "line": 3,
            "denied": True,
        }
    ]


def test_event_location_text():
    assert TrialEvent("open:write", "/x", "landlock", "modeling_x.py", 3).location() == "modeling_x.py:3"
    assert TrialEvent("import", "os").location() == "-"


# --- end to end with torch ----------------------------------------------------------------------


@pytest.mark.slow
def test_forward_pass_payload_stopped(tmp_path):
    marker = tmp_path / "marker"
    result = trial(FORWARD_WRITES_MARKER.format(marker=str(marker)), config={"width": 4}, input_shape=(1, 4))
    assert not marker.exists()
    assert result.verdict == "deny"
    # The refused write ended the forward pass; the later uses are skipped, the exit handlers still run.
    assert result.stages == ("import", "instantiate", "threads", "atexit")
    assert kinds(result) == [("open:write", "landlock", "modeling_x.py", 17)]


@pytest.mark.slow
def test_example_resnet_passes_trial():
    contents = {path.name: path.read_bytes() for path in EXAMPLE.glob("*.py")}
    snapshot = build_snapshot(
        SourceRef("local", str(EXAMPLE)), PinnedRevision(None, COMMIT), contents, code_entries=["modeling_resnet.py"]
    )
    result = run_trial(
        snapshot,
        None,
        reference="modeling_resnet.ResnetModelForImageClassification",
        config={"block_type": "basic", "layers": [1, 1, 1, 1], "num_classes": 10},
        input_shape=(1, 3, 32, 32),
        sandbox_guards=False,
    )
    assert result.verdict == "pass"
    assert result.stages == MODEL_STAGES
    assert result.reason == "import, instantiation and forward pass ran in the jail (dict {logits: Tensor of shape (1, 10)})"
    assert [event.kind for event in result.events] == ["import"]
    assert result.events[0].detail == "hubguard_trial_repository.configuration_resnet"


CATCHES_REFUSED_IMPORT = """\
try:
    import socket
except ImportError:
    socket = None


class Net:
    def __init__(self, width=4):
        self.width = width
"""


@pytest.mark.slow
def test_example_resnet_passes_sandboxed_trial():
    from hubguard.audit.policy import load_policy

    contents = {path.name: path.read_bytes() for path in EXAMPLE.glob("*.py")}
    snapshot = build_snapshot(
        SourceRef("local", str(EXAMPLE)), PinnedRevision(None, COMMIT), contents, code_entries=["modeling_resnet.py"]
    )
    result = run_trial(
        snapshot,
        load_policy("default"),
        reference="modeling_resnet.ResnetModelForImageClassification",
        config={"block_type": "basic", "layers": [1, 1, 1, 1], "num_classes": 10},
        input_shape=(1, 3, 32, 32),
    )
    assert result.verdict == "pass"
    assert result.policy == "default"
    assert result.stages == MODEL_STAGES
    assert result.events == ()


@pytest.mark.slow
def test_import_refusal_caught_by_code_still_denies():
    from hubguard.audit.policy import load_policy

    result = run_trial(
        make_snapshot(CATCHES_REFUSED_IMPORT), load_policy("default"), reference="modeling_x.Net", input_shape=None
    )
    assert result.verdict == "deny"
    assert result.stages == PLAIN_STAGES
    assert kinds(result) == [("import:denied", "sandbox", "modeling_x.py", 2)]
    assert result.events[0].detail.startswith("import: import of 'socket' refused")


PIVOTS_THROUGH_TORCH_SAVE = """\
import torch
torch.save(torch.zeros(1), {marker!r})


class Net:
    pass
"""


@pytest.mark.slow
def test_sandbox_refusal_ending_job_denies(tmp_path):
    from hubguard.audit.policy import load_policy

    marker = tmp_path / "marker"
    snapshot = make_snapshot(PIVOTS_THROUGH_TORCH_SAVE.format(marker=str(marker)))
    result = run_trial(snapshot, load_policy("default"), reference="modeling_x.Net", input_shape=None)
    assert not marker.exists()
    assert result.verdict == "deny"
    assert result.stages == ("threads", "atexit")
    assert result.reason.startswith("the import stage was stopped by the sandbox guards: ")
    assert kinds(result) == [("sandbox", "sandbox", "modeling_x.py", 2)]
    assert "torch.save is refused" in result.events[0].detail


def test_strict_policy_refuses_without_landlock():
    from hubguard.audit.policy import load_policy

    with pytest.raises(TrialError, match=r"requires a jailed trial load but this system lacks landlock") as raised:
        run_trial(make_snapshot(BENIGN_MODULE), load_policy("strict"), reference="modeling_x.Net", disable=["landlock"])
    assert raised.value.rule_id == "HG402"


@pytest.mark.slow
def test_example_passes_trial_then_loads_in_process(tmp_path, caplog):
    import torch

    import hubguard
    from hubguard.demo import build_example_repo

    repo, commit, reference_model, sample = build_example_repo(tmp_path, small=True)
    with caplog.at_level(logging.INFO, logger="hubguard.sandbox.jail"):
        model = hubguard.AutoModelForImageClassification.from_pretrained(
            str(repo), revision=commit, trust_remote_code=True, policy=hubguard.load_policy("default")
        )
    finished = [record.getMessage() for record in caplog.records if "%.2f s" in record.msg]
    assert len(finished) == 1
    assert finished[0].startswith("jailed trial of modeling_resnet.ResnetModelForImageClassification: pass in ")
    assert "with netns, landlock, seccomp, rlimits: " in finished[0]
    with torch.no_grad():
        assert torch.equal(model(sample)["logits"], reference_model(sample)["logits"])


def test_config_not_json_rejected():
    with pytest.raises(TrialError, match="the trial config cannot be sent to the child as JSON: Object of type PosixPath is not JSON serializable"):
        trial(BENIGN_MODULE, config={"width": Path("/tmp")})
