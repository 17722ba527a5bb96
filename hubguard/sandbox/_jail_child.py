"""The jailed trial child: ``python -I -m hubguard.sandbox._jail_child``.

The parent (:mod:`hubguard.sandbox.jail`) writes one JSON job to this process's standard
input and passes the write end of a pipe as ``result_fd``. The child then works in steps:

1. read the job and rebuild the :class:`Snapshot` from the private snapshot folder,
   checking every file's sha256;
2. leave the host network (a new network namespace);
3. import the trusted libraries the job needs (torch, hubguard's sandbox and model API)
   while the file system is still open to them;
4. set the resource limits, drop capabilities, apply Landlock and the seccomp filter,
   and send the ``ready`` message that lists the active layers;
5. install the audit hook that records the behaviour trace;
6. rehearse the real load and the first uses of the model. The import comes first, then
   the config and the model built with the real load's code (``_from_snapshot``, which
   ends in ``eval()``). The uses are a forward pass in eval mode, forward and backward,
   a train step, ``deepcopy``, ``state_dict`` and ``repr``. The child then shuts down
   as the interpreter would: garbage collection, a bounded wait for the code's threads,
   then ``threading``'s and ``atexit``'s handlers;
7. send the ``report`` message and leave with ``os._exit``, so no handler runs after
   the report.

Nothing from the repository runs before step 6. Messages are single JSON lines on
``result_fd``; both carry the job's nonce.
"""

from __future__ import annotations

import atexit
import copy
import ctypes
import errno
import gc
import hashlib
import importlib
import json
import os
import resource
import sys
import threading
import time
import traceback
import types
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubguard.sandbox._jail_trace import Recorder

MAX_JOB_BYTES = 64 * 1024 * 1024
MAX_DETAIL_CHARS = 300
FILE_SIZE_LIMIT_BYTES = 256 * 1024 * 1024
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522
# The package name under which repository modules are imported when the sandbox guards are off.
PLAIN_PACKAGE = "hubguard_trial_repository"


class _SetupError(Exception):
    """A jail layer could not be applied; ``layer`` names it."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(message)
        self.layer = layer


# --- messages to the parent -------------------------------------------------------------


class _Channel:
    """The pipe to the parent; each message is one JSON line tagged with the job's nonce."""

    def __init__(self, fd: int, nonce: str) -> None:
        self._fd = fd
        self._nonce = nonce

    def send(self, kind: str, body: dict[str, Any]) -> None:
        data = json.dumps({"message": kind, "nonce": self._nonce, **body}, default=str).encode() + b"\n"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


# --- (1) the job and the snapshot --------------------------------------------------------


def _read_job() -> dict[str, Any]:
    data = sys.stdin.buffer.read(MAX_JOB_BYTES + 1)
    if len(data) > MAX_JOB_BYTES:
        raise ValueError(f"the trial job is larger than {MAX_JOB_BYTES} bytes")
    job = json.loads(data)
    if not isinstance(job, dict):
        raise ValueError("the trial job is not a JSON object")
    return job


def _rebuild_snapshot(description: dict[str, Any], snapshot_dir: Path) -> Any:
    """Rebuild the parent's :class:`Snapshot` from the files it wrote, checking each sha256."""
    from hubguard.loader.snapshot import PinnedRevision, RejectedFile, Snapshot, SnapshotFile, SourceRef

    files = {entry["path"]: SnapshotFile(**entry) for entry in description["files"]}
    contents: dict[str, bytes] = {}
    for path in description["content_paths"]:
        data = (snapshot_dir / path).read_bytes()
        if hashlib.sha256(data).hexdigest() != files[path].sha256:
            raise ValueError(f"{path}: the copy in the trial folder does not match the snapshot's sha256")
        contents[path] = data
    return Snapshot(
        source=SourceRef(**description["source"]),
        revision=PinnedRevision(**description["revision"]),
        files=files,
        contents=contents,
        blob_paths={path: Path(value) for path, value in description["blob_paths"].items()},
        code_paths=tuple(description["code_paths"]),
        rejected=tuple(RejectedFile(**entry) for entry in description["rejected"]),
    )


# --- (2)-(4) the jail ---------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what} failed: {os.strerror(number)}")


def _enter_network_namespace() -> str:
    """Move into a new, empty network namespace; return how (as root or through a user namespace)."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "network namespace"
    first = ctypes.get_errno()
    if first == errno.EPERM and libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "user and network namespace"
    number = ctypes.get_errno()
    raise OSError(number, f"unshare(CLONE_NEWNET) failed: {os.strerror(number)}")


def _drop_capabilities() -> None:
    libc = _libc()
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for capability in range(last + 1):
        # EPERM without CAP_SETPCAP (not root): the bounding set then stays, but capset still clears the rest.
        libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _set_limits(limits: dict[str, Any]) -> dict[str, int]:
    """Set the resource limits; ``memory_mb`` is added to the address space already mapped."""
    mapped = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            mapped = int(line.split()[1]) * 1024
    address_space = mapped + int(limits["memory_mb"]) * 1024 * 1024
    cpu = int(limits["cpu_seconds"])
    values = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (address_space, address_space),
        "RLIMIT_NOFILE": (int(limits["open_files"]),) * 2,
        "RLIMIT_FSIZE": (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES),
        "RLIMIT_CORE": (0, 0),
    }
    for name, (soft, hard) in values.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    return {name: soft for name, (soft, _) in values.items()}


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _installation_roots() -> list[Path]:
    """Return the folders of trusted code: the Python installation, site-packages and hubguard."""
    import site

    import hubguard

    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(hubguard.__file__).parent}
    roots.update(Path(path) for path in site.getsitepackages())
    return sorted(roots)


def _snapshot_roots(job: dict[str, Any]) -> list[Path]:
    """Return the snapshot folder, the weights snapshot's folder and the weight files in the cache."""
    roots = [Path(job["snapshot_dir"])]
    roots.extend(Path(path) for path in job["snapshot"]["blob_paths"].values())
    if "weights" in job:
        roots.append(Path(job["weights_dir"]))
        roots.extend(Path(path) for path in job["weights"]["blob_paths"].values())
    return roots


def _apply_layer(
    layers: dict[str, Any], name: str, required: set[str], disabled: set[str], apply: Callable[[], Any]
) -> Any:
    """Apply one layer, recording success or the reason it is missing; raise if it is required."""
    if name in disabled:
        layers["errors"][name] = "disabled for this run (HUBGUARD_JAIL_DISABLE or disable=)"
        if name in required:
            raise _SetupError(name, layers["errors"][name])
        return None
    try:
        value = apply()
    except (OSError, ValueError) as error:  # setrlimit raises ValueError for a limit above the hard maximum
        layers["errors"][name] = str(error)
        if name in required:
            raise _SetupError(name, str(error)) from error
        return None
    layers[name] = True
    return value


def _preload(job: dict[str, Any]) -> None:
    for name in job["preload"]:
        importlib.import_module(name)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        # The first operation sets up the CPU kernels and reads /proc and /sys, so run one now.
        torch.nn.functional.relu(torch.zeros(1))


def _build_jail(job: dict[str, Any]) -> dict[str, Any]:
    """Apply every jail layer; return what is active. Raise _SetupError for a missing required layer."""
    from hubguard.sandbox import _landlock, _seccomp

    required = set(job["required_layers"])
    disabled = set(job["disabled_layers"])
    layers: dict[str, Any] = {
        "netns": False,
        "landlock": False,
        "landlock_abi": 0,
        "seccomp": False,
        "rlimits": False,
        "capabilities": False,
        "errors": {},
    }
    network = _apply_layer(layers, "netns", required, disabled, _enter_network_namespace)
    if network:
        layers["netns_kind"] = network

    _preload(job)
    sys.dont_write_bytecode = True
    read_roots = _installation_roots() + _snapshot_roots(job)
    abi = _landlock.abi_version()
    seccomp_ready = _seccomp.available()  # also loads libseccomp while /usr/lib is readable
    threads = _thread_count()
    if threads != 1:
        raise _SetupError("landlock", f"the child has {threads} threads before lockdown; Landlock would miss all but one")

    limits = _apply_layer(layers, "rlimits", required, disabled, lambda: _set_limits(job["limits"]))
    if limits:
        layers["limits"] = limits
    _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _apply_layer(layers, "capabilities", set(), disabled, _drop_capabilities)

    def apply_landlock() -> dict[str, bool]:
        if abi < 1:
            raise OSError(errno.ENOSYS, "the kernel does not offer Landlock")
        return _landlock.restrict_self(read_paths=read_roots, write_paths=[Path(job["work_dir"])], abi=abi)

    landlock = _apply_layer(layers, "landlock", required, disabled, apply_landlock)
    if landlock:
        layers["landlock_abi"] = abi
        layers["landlock_tcp"] = landlock["tcp"]
        layers["landlock_scopes"] = landlock["scopes"]

    def apply_seccomp() -> list[str]:
        if not seccomp_ready:
            raise OSError(errno.ENOSYS, "seccomp filters or libseccomp.so.2 are not available")
        return _seccomp.install_filter(own_pid=os.getpid())

    refused = _apply_layer(layers, "seccomp", required, disabled, apply_seccomp)
    if refused:
        layers["seccomp_refused"] = refused
    return layers


# --- (6) the job ---------------------------------------------------------------------------


def _import_plain(snapshot_dir: Path, module_path: str) -> types.ModuleType:
    """Import a repository module with the normal import system, under a private package name."""
    package = types.ModuleType(PLAIN_PACKAGE)
    package.__path__ = [str(snapshot_dir)]
    package.__package__ = PLAIN_PACKAGE
    sys.modules[PLAIN_PACKAGE] = package
    dotted = module_path[: -len(".py")].replace("/", ".")
    return importlib.import_module(f"{PLAIN_PACKAGE}.{dotted}")


def _load_class(job: dict[str, Any], snapshot: Any, policy: Any, sandbox_events: list[dict[str, Any]]) -> type:
    module_path, class_name = job["module_path"], job["class_name"]
    if job["sandbox_guards"]:
        from hubguard.sandbox import import_snapshot

        return import_snapshot(snapshot, policy, report=sandbox_events).get_class(module_path, class_name)
    module = _import_plain(Path(job["snapshot_dir"]), module_path)
    return getattr(module, class_name)


def _build_config(model_class: type, config: dict[str, Any]) -> Any:
    """Build the config as the real load does: ``config_class.from_dict`` for hubguard's configs."""
    config_class = getattr(model_class, "config_class", None)
    if config_class is None:
        return None
    from_dict = getattr(config_class, "from_dict", None)
    if callable(from_dict):
        return from_dict(config)
    return config_class(**config)


def _instantiate(model_class: type, config: dict[str, Any], weights: Any, policy: Any) -> Any:
    """Build the model with the real load's code, including its ``eval()`` call.

    A hubguard model with weights in the snapshot goes through ``_from_snapshot``, the
    method the Auto classes call. Without weights the trial repeats its steps: a
    construction with ``torch.nn.init`` switched off, a normal construction (the real
    load does one when buffers are not saved or keys are missing), then ``eval()``.
    """
    built_config = _build_config(model_class, config)
    if built_config is None:
        return model_class(**config)
    if "hubguard.modeling" in sys.modules:
        from hubguard import modeling

        if isinstance(model_class, type) and issubclass(model_class, modeling.PreTrainedModel):
            if weights.blob_paths:
                return model_class._from_snapshot(weights, config=built_config, policy=policy)
            with modeling._skip_init():
                model_class(built_config)
            model = model_class(built_config)
            model.eval()
            return model
    model = model_class(built_config)
    if callable(getattr(model, "eval", None)):
        model.eval()
    return model


def _describe_output(output: Any) -> str:
    """Describe a forward pass's output: a tensor's shape, or a mapping's keys and shapes."""
    shape = getattr(output, "shape", None)
    if shape is not None:
        return f"{type(output).__name__} of shape {tuple(shape)}"
    if isinstance(output, dict):
        items = ", ".join(f"{key}: {_describe_output(value)}" for key, value in list(output.items())[:8])
        return f"dict {{{items}}}"
    if isinstance(output, (tuple, list)):
        return f"{type(output).__name__} of {len(output)} items"
    return type(output).__name__


def _failure(stage: str, error: BaseException, recorder: Recorder) -> dict[str, Any]:
    """Describe an exception that ended a stage, with the innermost repository frame."""
    path, line = None, None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        located = recorder.repository_path(frame.f_code.co_filename)
        if located is not None:
            path, line = located, lineno
    failure: dict[str, Any] = {
        "stage": stage,
        "type": type(error).__name__,
        "message": str(error)[:MAX_DETAIL_CHARS],
        "path": path,
        "line": line,
    }
    for attribute in ("rule_id", "operation", "policy_rule"):
        value = getattr(error, attribute, None)
        if isinstance(value, str):
            failure[attribute] = value
    if getattr(error, "path", None) and isinstance(error.path, str) and failure["path"] is None:
        failure["path"], failure["line"] = error.path, getattr(error, "line", None)
    return failure


def _loss_of(output: Any) -> Any:
    """Return the tensor to call ``backward()`` on: the output itself, its ``loss`` or its ``logits``."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in ("loss", "logits"):
        value = output.get(name) if isinstance(output, dict) else getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return None


# The sequence length of the index input guessed for a model that starts with an embedding.
_GUESSED_SEQUENCE_LENGTH = 8
# The side of the spatial dimensions guessed for a model that starts with a convolution.
_GUESSED_SPATIAL_SIZE = 32


def _given_input(shape: list[int]) -> Callable[[int], Any]:
    """Return a maker of random inputs of ``shape`` with the batch size replaced."""
    import torch

    return lambda batch: torch.randn(batch, *shape[1:])


def _guessed_input(model: Any) -> Callable[[int], Any] | None:
    """Guess an input from the model's first embedding, linear or convolution layer, or return ``None``.

    The caller gave no input shape, but the real process will call the model, so the
    trial tries one. A forward pass on a guessed input that fails does not decide the verdict.
    """
    import torch

    nn = torch.nn
    convolutions = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return lambda batch: torch.zeros(batch, _GUESSED_SEQUENCE_LENGTH, dtype=torch.long)
        if isinstance(module, nn.Linear):
            features = module.in_features
            return lambda batch: torch.randn(batch, features)
        for kind, dimensions in convolutions.items():
            if type(module) is kind:
                channels = module.in_channels
                return lambda batch: torch.randn(batch, channels, *[_GUESSED_SPATIAL_SIZE] * dimensions)
    return None


def _forward(model: Any, make_input: Callable[[int], Any]) -> None:
    """Run a forward pass in eval mode without gradients, as inference code does."""
    import torch

    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        model(make_input(1))


def _forward_and_backward(model: Any, make_input: Callable[[int], Any], batch: int = 1) -> None:
    """Run a forward pass with gradients and, when the output has a tensor to reduce, a backward pass."""
    import torch

    torch.manual_seed(1)
    loss = _loss_of(model(make_input(batch)))
    if loss is not None and loss.requires_grad:
        loss.float().sum().backward()


def _train_step(model: Any, make_input: Callable[[int], Any]) -> None:
    """Switch to train mode, run forward and backward on a batch of two, and switch back to eval."""
    model.train()
    # Batch norm rejects a batch of one in train mode when a layer's output is 1x1.
    _forward_and_backward(model, make_input, batch=2)
    model.eval()


def _rehearsals(model: Any, input_shape: list[int] | None) -> list[tuple[str, Callable[[], Any]]]:
    """Return the first uses of a loaded model that the trial rehearses, as (stage, call) pairs."""
    steps: list[tuple[str, Callable[[], Any]]] = []
    is_module = "torch" in sys.modules and isinstance(model, sys.modules["torch"].nn.Module)
    make_input = None
    if is_module:
        make_input = _given_input(input_shape) if input_shape is not None else _guessed_input(model)
        if input_shape is None and make_input is not None:
            steps.append(("forward", lambda: _forward(model, make_input)))
    if make_input is not None:
        steps.append(("backward", lambda: _forward_and_backward(model, make_input)))
        steps.append(("train", lambda: _train_step(model, make_input)))
    elif is_module:
        steps.append(("train", lambda: (model.train(), model.eval())))
    steps.append(("deepcopy", lambda: copy.deepcopy(model)))
    if is_module:
        steps.append(("state_dict", model.state_dict))
    steps.append(("repr", lambda: repr(model)))
    return steps


def _settle_threads(deadline: float) -> list[str]:
    """Join the threads the code started until ``deadline``; return the non-daemon ones still running."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in threading.enumerate() if thread is not current and thread.is_alive() and not thread.daemon]


def _clear_exit_handlers() -> None:
    """Drop the exit handlers of the preloaded libraries, so only the repository's run at the end.

    The child used to leave without running any, so dropping the trusted ones changes
    nothing for them; ``weakref.finalize`` registers its handler again on next use.
    """
    atexit._clear()
    threading._threading_atexits.clear()  # type: ignore[attr-defined]  # threading._register_atexit's list
    weakref.finalize._registered_with_atexit = False  # type: ignore[attr-defined]  # see weakref.finalize.__init__


def _run_step(
    stage: str, call: Callable[[], Any], outcome: dict[str, Any], recorder: Recorder
) -> BaseException | None:
    """Run one rehearsal step; return a sandbox refusal, record other failures without ending the trial."""
    from hubguard.errors import SandboxViolation

    try:
        call()
    except SandboxViolation as error:
        outcome["rehearsal_failures"].append({**_failure(stage, error, recorder), "sandbox_refusal": True})
        return error
    except BaseException as error:  # noqa: BLE001  # rehearsals of later uses do not decide the verdict
        outcome["rehearsal_failures"].append(_failure(stage, error, recorder))
        return None
    outcome["stages"].append(stage)
    return None


def _run_job(job: dict[str, Any], snapshot: Any, weights: Any, policy: Any, recorder: Recorder) -> dict[str, Any]:
    """Rehearse the load and its first uses; return the stages reached and the first failure.

    Import, instantiation (as the real load builds the model) and the forward pass in
    eval mode decide the verdict when they fail. The later uses (forward and backward
    with gradients, train mode, deepcopy, state_dict, repr) and the process's shutdown
    (garbage collection, threads, ``threading`` and ``atexit`` handlers) run so their
    events reach the trace; their ordinary failures are only listed.
    """
    from hubguard.errors import SandboxViolation

    outcome: dict[str, Any] = {"stages": [], "failure": None, "output": None, "rehearsal_failures": []}
    sandbox_events: list[dict[str, Any]] = []
    refusals: list[BaseException] = []
    stage = "import"
    model = None
    _clear_exit_handlers()
    try:
        model_class = _load_class(job, snapshot, policy, sandbox_events)
        outcome["stages"].append("import")
        if job["instantiate"]:
            stage = "instantiate"
            model = _instantiate(model_class, job["config"], weights, policy)
            outcome["stages"].append("instantiate")
        if job["input_shape"] is not None and model is not None:
            stage = "forward"
            import torch

            torch.manual_seed(0)
            model.eval()
            with torch.no_grad():
                output = model(torch.randn(*job["input_shape"]))
            outcome["output"] = _describe_output(output)
            outcome["stages"].append("forward")
    except SandboxViolation as error:
        outcome["failure"] = _failure(stage, error, recorder)
        outcome["failure"]["sandbox_refusal"] = True
        refusals.append(error)
    except BaseException as error:  # noqa: BLE001  # the trial reports every failure of repository code
        outcome["failure"] = _failure(stage, error, recorder)
    if outcome["failure"] is None and model is not None:
        for name, call in _rehearsals(model, job["input_shape"]):
            refusal = _run_step(name, call, outcome, recorder)
            if refusal is not None:
                refusals.append(refusal)
    # Finalizers of repository objects run here, while the trace is still recorded.
    model = None
    model_class = None
    output = None
    gc.collect()
    # The interpreter's own shutdown order: wait for threads, threading's handlers, atexit's.
    deadline = time.monotonic() + float(job["settle_seconds"])
    running = _settle_threads(deadline)
    if running:
        error = TimeoutError(f"threads {', '.join(running)} still ran {job['settle_seconds']} s after the load")
        outcome["failure"] = outcome["failure"] or _failure("shutdown", error, recorder)
    else:
        refusal = _run_step("threads", threading._shutdown, outcome, recorder)  # type: ignore[attr-defined]  # as at interpreter exit
        if refusal is not None:
            refusals.append(refusal)
        refusal = _run_step("atexit", atexit._run_exitfuncs, outcome, recorder)
        if refusal is not None:
            refusals.append(refusal)
        gc.collect()
        _settle_threads(deadline)
    # Refusals the code caught (an ImportError fallback, for example) are only in the guards' report.
    reported = [event for event in list(sandbox_events) if isinstance(event, dict)]
    for event in reported:
        recorder.record_sandbox_event(event)
    if not any(event.get("verdict") == "deny" for event in reported):
        for refusal in refusals:
            recorder.record_refusal(refusal)
    return outcome


def main() -> None:
    """Run one trial job and exit; see the module docstring for the steps."""
    job = _read_job()
    channel = _Channel(int(job["result_fd"]), str(job["nonce"]))
    # Audit hooks run in the order they were added, and a hook that raises (the sandbox's
    # own guard) keeps later ones from seeing the event, so the recorder goes in first.
    recorder = Recorder(
        work_dir=Path(job["work_dir"]),
        installation_roots=_installation_roots(),
        snapshot_roots=_snapshot_roots(job),
        code_paths=job["snapshot"]["code_paths"],
        max_events=int(job["max_events"]),
    )
    sys.addaudithook(recorder.hook)
    try:
        from hubguard.errors import HubguardError

        snapshot = _rebuild_snapshot(job["snapshot"], Path(job["snapshot_dir"]))
        weights = snapshot
        if "weights" in job:
            weights = _rebuild_snapshot(job["weights"], Path(job["weights_dir"]))
        policy = None
        if job["policy"] is not None:
            from hubguard.audit.policy import Policy

            policy = Policy(job["policy"]["data"], origin=job["policy"]["origin"])
        layers = _build_jail(job)
    except _SetupError as error:
        channel.send("setup-failed", {"layer": error.layer, "error": str(error)})
        os._exit(0)
    except (OSError, ValueError, KeyError, ImportError, HubguardError) as error:
        channel.send("setup-failed", {"layer": None, "error": f"{type(error).__name__}: {error}"})
        os._exit(0)

    channel.send("ready", {"layers": layers})
    recorder.start(layers)
    outcome = _run_job(job, snapshot, weights, policy, recorder)
    recorder.stop()
    channel.send("report", {"outcome": outcome, **recorder.summary()})
    os._exit(0)


if __name__ == "__main__":
    main()
