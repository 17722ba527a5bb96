"""The jailed trial load: rehearse the load and the model's first uses in a locked-down child.

CPython's audit hooks and RestrictedPython run inside the process they guard, so native
code that an allowed library runs, or an escape from the restricted compiler, is beyond
them. The operating system can draw a real boundary. Before hubguard imports remote
code into the caller's process, :func:`run_trial` runs the same load in a fresh
``python -I -m hubguard.sandbox._jail_child`` process that, before it reads any
repository code:

- leaves the host network (a new, empty network namespace);
- drops every capability and sets ``PR_SET_NO_NEW_PRIVS``;
- applies Landlock, which allows reads only under the Python installation, site-packages,
  hubguard, the snapshot copy and the weight files, and writes only in a private temp
  folder. From ABI 4 on it also refuses TCP bind and connect, and from ABI 6 on signals
  and abstract UNIX sockets that leave the process;
- applies a seccomp filter that makes ``execve``, new processes, sockets, namespaces,
  mounts, ``ptrace``, BPF, ``io_uring``, kernel modules and similar calls fail with EPERM;
- sets ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_NOFILE`` and ``RLIMIT_FSIZE``.

The parent enforces the wall-clock timeout by killing the child's process group. An
audit hook in the child records what the code attempted (:class:`TrialEvent`); the
parent applies the policy's ``[trial] deny_events`` to that trace and returns a
:class:`TrialResult`. See ``docs/jail.md`` for what each layer stops and what it cannot.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hubguard.errors import HubguardError, TrialError
from hubguard.loader.closure import module_to_path
from hubguard.loader.snapshot import Snapshot

logger = logging.getLogger(__name__)

Verdict = Literal["pass", "deny", "error", "skipped"]
LAYERS = ("netns", "landlock", "seccomp", "rlimits")
# Without these a trial cannot keep the code from the host; "required" mode refuses to run without them.
REQUIRED_LAYERS = ("landlock", "seccomp", "rlimits")
DISABLE_VARIABLE = "HUBGUARD_JAIL_DISABLE"
MAX_EVENTS = 500
MAX_REPORT_BYTES = 4 * 1024 * 1024
STDERR_TAIL_BYTES = 2000
DEFAULT_DENY_EVENTS = (
    "socket.*", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "urllib.Request",
    "open:write", "open:outside", "os.remove", "os.rename", "shutil.rmtree", "import:denied", "sandbox",
)

# Trusted libraries the child may import before the jail closes, when the repository imports them.
PRELOADABLE = ("torch", "torchvision", "timm", "numpy", "safetensors", "einops")

# How long the child waits, after the rehearsed uses, for threads the code started (at most a quarter of the timeout).
SETTLE_SECONDS = 3.0

RULE_REFUSED = "HG401"
RULE_UNAVAILABLE = "HG402"


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialEvent:
    """One thing the code attempted in the jail.

    ``kind`` is the audit event name (``socket.connect``, ``subprocess.Popen``,
    ``ctypes.dlopen`` …) or one of ``open:read`` (inside the snapshot or temp folder),
    ``open:write``, ``open:outside`` (a read outside every allowed folder), ``import``,
    ``import:denied`` and ``sandbox`` (refusals by hubguard's sandbox guards).
    ``refused_by`` names the layer whose rule refuses the operation (``landlock``,
    ``seccomp``, ``netns``, ``sandbox``), or is ``None`` when the jail allows it.
    ``path`` and ``line`` point at the innermost repository frame that led to it.
    """

    kind: str
    detail: str
    refused_by: str | None = None
    path: str | None = None
    line: int | None = None

    def location(self) -> str:
        """Return ``path:line``, ``path``, or ``-`` when no repository frame was on the stack."""
        if self.path is None:
            return "-"
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class JailLayers:
    """The jail layers that were active in the child, and the missing ones."""

    netns: bool = False
    landlock: bool = False
    landlock_abi: int = 0
    seccomp: bool = False
    rlimits: bool = False
    capabilities_dropped: bool = False
    missing: tuple[str, ...] = ()

    def active(self) -> list[str]:
        """Return the names of the active layers, in a fixed order."""
        return [name for name in LAYERS if getattr(self, name)]

    def to_dict(self) -> dict[str, Any]:
        """Return the layers as JSON-ready data."""
        data = asdict(self)
        data["missing"] = list(self.missing)
        return data


@dataclass(frozen=True)
class TrialResult:
    """The outcome of a jailed trial: verdict, reason, trace and active layers.

    ``verdict`` is ``pass`` (the load ran and nothing in ``deny_events`` happened),
    ``deny`` (the code attempted a denied operation), ``error`` (the load failed,
    crashed, ran out of time or memory) or ``skipped`` (the policy or the platform left
    the trial out). ``reason`` is one sentence for the user; ``rule_id`` is ``HG401``
    for ``deny`` and ``error``. ``stages`` lists what completed, from ``import``,
    ``instantiate`` and ``forward``. ``deny_events`` are the policy's patterns the trace
    was checked against; ``to_dict`` marks each matching event ``"denied": true``.
    """

    verdict: Verdict
    reason: str
    events: tuple[TrialEvent, ...] = ()
    layers: JailLayers = field(default_factory=JailLayers)
    duration_seconds: float = 0.0
    stages: tuple[str, ...] = ()
    rule_id: str | None = None
    policy: str | None = None
    dropped_events: int = 0
    deny_events: tuple[str, ...] = ()

    def denied_events(self, deny_events: Sequence[str]) -> list[TrialEvent]:
        """Return the events whose kind matches one of the ``fnmatch`` patterns ``deny_events``."""
        return [event for event in self.events if _matches(event.kind, deny_events)]

    def raise_for_verdict(self) -> None:
        """Raise :class:`TrialError` unless the verdict is ``pass`` or ``skipped``.

        Raises:
            TrialError: the verdict is ``deny`` or ``error``; ``error.result`` is this result.
        """
        if self.verdict in {"pass", "skipped"}:
            return
        first = next((event for event in self.events if event.path is not None), None)
        raise TrialError(
            f"the jailed trial load refused the code: {self.reason}",
            rule_id=self.rule_id or RULE_REFUSED,
            path=first.path if self.verdict == "deny" and first else None,
            line=first.line if self.verdict == "deny" and first else None,
            hint="read the trial section of the audit report (hubguard audit --trial) for what the code attempted",
            result=self,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data for the audit report's ``trial`` section."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "policy": self.policy,
            "duration_seconds": round(self.duration_seconds, 3),
            "stages": list(self.stages),
            "layers": self.layers.to_dict(),
            "deny_events": list(self.deny_events),
            "events": [{**event.to_dict(), "denied": _matches(event.kind, self.deny_events)} for event in self.events],
            "dropped_events": self.dropped_events,
        }


# --- settings and kernel support --------------------------------------------------------


@dataclass(frozen=True)
class TrialSettings:
    """Limits and decisions of one trial; read from the policy's ``[trial]`` section.

    ``memory_mb`` is the address space the child may add on top of what the interpreter
    and the preloaded libraries (torch maps about 3 GB of mostly reserved space) already
    map when the limits are set. ``deny_events`` are ``fnmatch`` patterns over
    :attr:`TrialEvent.kind`.
    """

    mode: Literal["required", "if-available", "off"] = "if-available"
    cpu_seconds: int = 60
    memory_mb: int = 4096
    open_files: int = 64
    timeout_seconds: float = 120.0
    deny_events: tuple[str, ...] = DEFAULT_DENY_EVENTS

    @classmethod
    def from_policy(cls, policy: Any) -> TrialSettings:
        """Return the ``[trial]`` settings of a policy; defaults for ``None``.

        Raises:
            TrialError: the mode is not ``required``, ``if-available`` or ``off``.
        """
        trial = getattr(policy, "trial", None)
        if trial is None:
            return cls()
        settings = cls(
            mode=trial.mode,
            cpu_seconds=int(trial.cpu_seconds),
            memory_mb=int(trial.memory_mb),
            open_files=int(trial.open_files),
            timeout_seconds=float(trial.timeout_seconds),
            deny_events=tuple(trial.deny_events),
        )
        if settings.mode not in {"required", "if-available", "off"}:
            raise TrialError(
                f"trial mode {settings.mode!r} is not one of 'required', 'if-available', 'off'",
                rule_id=RULE_UNAVAILABLE,
                hint='set [trial] mode = "if-available" in the policy',
            )
        return settings


@dataclass(frozen=True)
class JailSupport:
    """The jail layers this system offers, probed without applying anything.

    ``netns`` is a prediction (root, or unprivileged user namespaces enabled); the child
    reports whether the namespace was really created.
    """

    linux: bool
    landlock_abi: int
    seccomp: bool
    netns: bool
    disabled: tuple[str, ...] = ()

    @property
    def landlock(self) -> bool:
        """Whether Landlock can be used (ABI 1 or later, not disabled)."""
        return self.landlock_abi >= 1 and "landlock" not in self.disabled

    def missing(self) -> list[str]:
        """Return the required layers this system lacks, in :data:`REQUIRED_LAYERS` order."""
        present = {
            "landlock": self.landlock,
            "seccomp": self.seccomp and "seccomp" not in self.disabled,
            "rlimits": self.linux and "rlimits" not in self.disabled,
        }
        return [name for name in REQUIRED_LAYERS if not present[name]]

    @property
    def available(self) -> bool:
        """Whether every required layer is present."""
        return self.linux and not self.missing()

    def missing_description(self) -> str:
        """Describe the missing layers for an error or log line."""
        if not self.linux:
            return f"a Linux kernel (this is {platform.system() or 'an unknown system'})"
        reasons = []
        for name in self.missing():
            if name in self.disabled:
                reasons.append(f"{name} (disabled by {DISABLE_VARIABLE})")
            elif name == "landlock":
                reasons.append("Landlock (needs Linux 5.13+ with landlock in the lsm= boot list)")
            elif name == "seccomp":
                reasons.append("seccomp (needs seccomp filters in the kernel and libseccomp.so.2)")
            else:
                reasons.append(name)
        return ", ".join(reasons) or "nothing"


def _disabled_layers(disable: Iterable[str] | None) -> tuple[str, ...]:
    if disable is None:
        disable = [part.strip() for part in os.environ.get(DISABLE_VARIABLE, "").split(",") if part.strip()]
    names = tuple(sorted(set(disable)))
    unknown = sorted(set(names) - set(LAYERS))
    if unknown:
        raise TrialError(
            f"unknown jail layer {unknown[0]!r} to disable",
            rule_id=RULE_UNAVAILABLE,
            hint=f"name layers from {', '.join(LAYERS)} (in {DISABLE_VARIABLE} or disable=)",
        )
    return names


def jail_support(*, disable: Iterable[str] | None = None) -> JailSupport:
    """Probe which jail layers this system offers.

    Args:
        disable: layers to treat as missing (to test the fallbacks); ``None`` reads the
            comma-separated ``HUBGUARD_JAIL_DISABLE`` environment variable.

    Example:
        >>> jail_support().missing()
        []
    """
    disabled = _disabled_layers(disable)
    if platform.system() != "Linux":
        return JailSupport(linux=False, landlock_abi=0, seccomp=False, netns=False, disabled=disabled)
    from hubguard.sandbox import _landlock, _seccomp

    netns = os.geteuid() == 0
    if not netns:
        try:
            netns = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
        except (OSError, ValueError):
            netns = False
    return JailSupport(
        linux=True,
        landlock_abi=_landlock.abi_version(),
        seccomp=_seccomp.available(),
        netns=netns and "netns" not in disabled,
        disabled=disabled,
    )


# --- the trial ------------------------------------------------------------------------------


def run_trial(
    snapshot: Snapshot,
    policy: Any,
    *,
    reference: str,
    config: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = (1, 3, 32, 32),
    timeout: float | None = None,
    settings: TrialSettings | None = None,
    sandbox_guards: bool = True,
    disable: Iterable[str] | None = None,
    weights: Snapshot | None = None,
) -> TrialResult:
    """Rehearse loading ``reference`` from ``snapshot`` in the jail and return what happened.

    The child imports the module (through :func:`hubguard.sandbox.import_snapshot` unless
    ``sandbox_guards`` is false), builds the config and the model as the real load does
    (``_from_snapshot`` when the snapshot has weights) and calls the model in eval mode
    on ``torch.randn(*input_shape)``. It then rehearses the first uses (forward and
    backward, a train step, ``copy.deepcopy``, ``state_dict``, ``repr``) and the
    interpreter's shutdown (threads the code started, ``threading`` and ``atexit``
    handlers), so deferred code runs while the trace records. A timeout, crash or memory
    blow-up gives an ``error`` result; call :meth:`TrialResult.raise_for_verdict` to turn
    ``deny`` and ``error`` into :class:`TrialError`.

    Args:
        snapshot: the verified snapshot holding the code.
        policy: a loaded ``Policy``; ``None`` uses :class:`TrialSettings` defaults and,
            with ``sandbox_guards``, the default policy.
        reference: ``"module.Class"`` inside ``snapshot`` (``"sub.module.Class"`` for
            ``sub/module.py``).
        config: the config's values, passed to ``config_class.from_dict`` (hubguard's
            configs) or ``config_class(**config)``; ``None`` takes ``config.json`` of the
            snapshot (or no values without one).
        input_shape: the dummy input's shape. ``None`` guesses an input from the
            model's first embedding, linear or convolution layer, and a failure on the
            guessed input is logged without deciding the verdict.
        timeout: wall-clock seconds, overriding the policy's ``timeout_seconds``.
        settings: trial settings overriding the policy's ``[trial]`` section.
        sandbox_guards: import through hubguard's sandbox inside the jail. ``False``
            imports the files plainly, so only the jail's operating-system layers hold.
        disable: jail layers to leave out (see :func:`jail_support`).
        weights: the snapshot whose weight files the real load reads, when it is not
            ``snapshot`` (code taken from a second repository). The trial then loads
            these weights as the real load does.

    Raises:
        TrialError: the policy requires the trial and a required layer is missing, or
            ``reference`` does not name a module of the snapshot.

    Example:
        >>> result = run_trial(snapshot, policy, reference="modeling_tiny.TinyNet", config={"width": 8})
        >>> result.verdict, result.layers.active()
        ('pass', ['netns', 'landlock', 'seccomp', 'rlimits'])
    """
    settings = settings or TrialSettings.from_policy(policy)
    policy_name = getattr(policy, "name", None)
    if settings.mode == "off":
        return TrialResult(verdict="skipped", reason=f"the trial is off in policy {policy_name!r}", policy=policy_name)

    module_path, class_name = _split_reference(snapshot, reference)
    support = jail_support(disable=disable)
    missing = support.missing()
    if missing and settings.mode == "required":
        raise TrialError(
            f"the policy requires a jailed trial load but this system lacks {support.missing_description()}",
            rule_id=RULE_UNAVAILABLE,
            hint='run on a Linux kernel with Landlock and seccomp, or use a policy with trial mode = "if-available"',
        )
    if not support.linux:
        logger.warning("jailed trial skipped: this system lacks %s", support.missing_description())
        return TrialResult(
            verdict="skipped",
            reason=f"the jail needs {support.missing_description()}",
            layers=JailLayers(missing=tuple(REQUIRED_LAYERS)),
            policy=policy_name,
        )
    if missing:
        logger.warning("jailed trial runs without %s: the policy allows it (if-available)", support.missing_description())

    if config is None:
        config = snapshot.config() if snapshot.has("config.json") else {}
    try:
        json.dumps(dict(config))
    except (TypeError, ValueError) as error:
        raise TrialError(
            f"the trial config cannot be sent to the child as JSON: {error}",
            rule_id=RULE_UNAVAILABLE,
            hint="pass config as a dict of JSON values (numbers, strings, lists, dicts, None)",
        ) from error
    job = {
        "module_path": module_path,
        "class_name": class_name,
        "config": dict(config),
        "instantiate": True,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "sandbox_guards": sandbox_guards,
        "policy": _policy_payload(policy),
        "limits": {
            "cpu_seconds": settings.cpu_seconds,
            "memory_mb": settings.memory_mb,
            "open_files": settings.open_files,
        },
        "disabled_layers": list(support.disabled),
        "required_layers": list(REQUIRED_LAYERS) if settings.mode == "required" else [],
        "preload": _preload_modules(snapshot, sandbox_guards, input_shape),
        "max_events": MAX_EVENTS,
    }
    wall_clock = settings.timeout_seconds if timeout is None else timeout
    job["settle_seconds"] = min(SETTLE_SECONDS, wall_clock / 4)
    logger.info("jailed trial of %s in %s started", reference, snapshot.source.display())
    result = _run_child(
        snapshot, job, weights=weights, wall_clock=wall_clock, settings=settings, policy_name=policy_name
    )
    logger.info(
        "jailed trial of %s: %s in %.2f s with %s: %s",
        reference,
        result.verdict,
        result.duration_seconds,
        ", ".join(result.layers.active()) or "no layers",
        result.reason,
    )
    return result


def _split_reference(snapshot: Snapshot, reference: str) -> tuple[str, str]:
    module, _, class_name = reference.rpartition(".")
    if "--" in reference or not module or not class_name:
        raise TrialError(
            f"class reference {reference!r} is not of the form 'module.Class' inside one repository",
            rule_id=RULE_UNAVAILABLE,
            hint="pass the snapshot that holds the code and a reference such as 'modeling_x.XModel'",
        )
    module_path = module_to_path(module)
    if not snapshot.has(module_path):
        raise TrialError(
            f"{module_path} is not a file of {snapshot.source.display()}@{snapshot.revision.commit}",
            rule_id=RULE_UNAVAILABLE,
            hint="check the module part of the class reference",
        )
    return module_path, class_name


def _policy_payload(policy: Any) -> dict[str, Any]:
    """Return the policy for the child: the sandbox guards and the weight loading read it."""
    if policy is None:
        from hubguard.audit.policy import load_policy

        policy = load_policy(None)
    return {"data": policy.data, "origin": policy.origin}


def _top_level_imports(snapshot: Snapshot) -> set[str]:
    """Return the first component of every absolute import in the code closure."""
    names: set[str] = set()
    for path in snapshot.code_paths:
        try:
            tree = ast.parse(snapshot.read_text(path), filename=path)
        except (SyntaxError, ValueError, HubguardError):
            continue  # the import in the child reports the same problem with its location
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _preload_modules(snapshot: Snapshot, sandbox_guards: bool, input_shape: Sequence[int] | None) -> list[str]:
    """Return the trusted modules the child imports before the jail closes and the trace starts.

    Preloading keeps the trace about the repository: a library imported inside the jail
    would show up with every file, shared library and temp folder its own import touches.
    Only the fixed :data:`PRELOADABLE` libraries qualify, because whatever is preloaded
    runs outside the jail.
    """
    modules = ["hubguard.loader.snapshot"]
    if sandbox_guards:
        modules += ["torch", "hubguard.sandbox", "hubguard.audit.policy", "hubguard.configuration", "hubguard.modeling"]
    elif input_shape is not None:
        modules.append("torch")
    wanted = _top_level_imports(snapshot)
    if "transformers" in wanted:
        wanted.add("hubguard")  # the sandbox maps transformers onto hubguard's own API
    for name in PRELOADABLE:
        if name in wanted and name not in modules and importlib.util.find_spec(name) is not None:
            modules.append(name)
    if "hubguard" in wanted:
        modules += ["hubguard.configuration", "hubguard.modeling"]
    return list(dict.fromkeys(modules))


# --- the child process --------------------------------------------------------------------


def _write_snapshot(snapshot: Snapshot, folder: Path) -> dict[str, Any]:
    """Copy the snapshot's code and config bytes into ``folder``; return the child's description of it."""
    for path, data in snapshot.contents.items():
        target = (folder / path).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise TrialError(f"{path} leaves the trial folder", rule_id=RULE_UNAVAILABLE, path=path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o444)
    return {
        "source": asdict(snapshot.source),
        "revision": asdict(snapshot.revision),
        "files": [asdict(entry) for entry in snapshot.files.values()],
        "content_paths": sorted(snapshot.contents),
        "blob_paths": {path: str(Path(value).resolve()) for path, value in snapshot.blob_paths.items()},
        "code_paths": list(snapshot.code_paths),
        "rejected": [asdict(entry) for entry in snapshot.rejected],
    }


def _child_environment(work_dir: Path) -> dict[str, str]:
    return {
        "PATH": "/nonexistent",
        "HOME": str(work_dir),
        "TMPDIR": str(work_dir),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


class _PipeReader(threading.Thread):
    """Read the child's result pipe to the end, keeping at most MAX_REPORT_BYTES."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self._fd = fd
        self.data = bytearray()
        self.overflow = False

    def run(self) -> None:
        with os.fdopen(self._fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                if len(self.data) + len(chunk) > MAX_REPORT_BYTES:
                    self.overflow = True
                    continue
                self.data.extend(chunk)


def _run_child(
    snapshot: Snapshot,
    job: dict[str, Any],
    *,
    weights: Snapshot | None,
    wall_clock: float,
    settings: TrialSettings,
    policy_name: str | None,
) -> TrialResult:
    root = Path(tempfile.mkdtemp(prefix="hubguard-trial-"))
    started = time.monotonic()
    try:
        snapshot_dir = root / "snapshot"
        work_dir = root / "work"
        snapshot_dir.mkdir()
        work_dir.mkdir(mode=0o700)
        job["snapshot"] = _write_snapshot(snapshot, snapshot_dir)
        job["snapshot_dir"] = str(snapshot_dir)
        if weights is not None and weights is not snapshot:
            weights_dir = root / "weights"
            weights_dir.mkdir()
            job["weights"] = _write_snapshot(weights, weights_dir)
            job["weights_dir"] = str(weights_dir)
        job["work_dir"] = str(work_dir)
        job["nonce"] = secrets.token_hex(16)

        read_fd, write_fd = os.pipe()
        job["result_fd"] = write_fd
        with open(root / "child.log", "wb") as log:
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-m", "hubguard.sandbox._jail_child"],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    cwd=work_dir,
                    env=_child_environment(work_dir),
                    pass_fds=(write_fd,),
                    start_new_session=True,
                )
            finally:
                os.close(write_fd)
            reader = _PipeReader(read_fd)
            reader.start()
            timed_out = _feed_and_wait(process, json.dumps(job).encode(), wall_clock)
            reader.join(timeout=5)
        duration = time.monotonic() - started
        stderr_tail = (root / "child.log").read_bytes()[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        return _decide(
            job,
            bytes(reader.data),
            returncode=process.returncode,
            timed_out=timed_out,
            wall_clock=wall_clock,
            stderr_tail=stderr_tail,
            settings=settings,
            policy_name=policy_name,
            duration=duration,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _feed_and_wait(process: subprocess.Popen[bytes], job: bytes, wall_clock: float) -> bool:
    """Send the job, wait for the child, and kill its process group; return whether it timed out.

    The group is killed after a normal exit too, in case a layer that refuses ``fork``
    was missing and the code left a process behind.
    """
    try:
        if process.stdin is not None:
            process.stdin.write(job)
            process.stdin.close()
    except BrokenPipeError:
        pass  # the child died early, and its exit status gives the reason
    try:
        process.wait(timeout=wall_clock)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    return timed_out


# --- the verdict ----------------------------------------------------------------------------


def _matches(kind: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(kind, pattern) for pattern in patterns)


def _parse_messages(data: bytes, nonce: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """Split the result pipe into the ``ready`` (or ``setup-failed``) and ``report`` messages.

    Returns the two messages and a problem description when the stream was tampered with.
    """
    messages = []
    for line in data.splitlines():
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, None, "the child's result pipe holds data that is not a trial message"
        if not isinstance(message, dict) or message.get("nonce") != nonce:
            return None, None, "the child's result pipe holds a message without the job's nonce"
        messages.append(message)
    if not messages:
        return None, None, None
    first, rest = messages[0], messages[1:]
    if len(rest) > 1 or (rest and rest[0].get("message") != "report"):
        return first, None, "the child wrote more trial messages than the harness sends"
    return first, (rest[0] if rest else None), None


def _layers_from(message: dict[str, Any] | None) -> JailLayers:
    if message is None or message.get("message") != "ready":
        return JailLayers(missing=tuple(LAYERS))
    layers = message.get("layers") or {}
    present = {name: bool(layers.get(name)) for name in LAYERS}
    return JailLayers(
        netns=present["netns"],
        landlock=present["landlock"],
        landlock_abi=int(layers.get("landlock_abi") or 0),
        seccomp=present["seccomp"],
        rlimits=present["rlimits"],
        capabilities_dropped=bool(layers.get("capabilities")),
        missing=tuple(name for name in LAYERS if not present[name]),
    )


def _events_from(report: dict[str, Any]) -> tuple[TrialEvent, ...]:
    """Rebuild events from the child's report, keeping only well-typed fields."""
    events = []
    for raw in report.get("events") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            continue
        line = raw.get("line")
        events.append(
            TrialEvent(
                kind=raw["kind"][:100],
                detail=str(raw.get("detail", ""))[:500],
                refused_by=raw["refused_by"] if isinstance(raw.get("refused_by"), str) else None,
                path=raw["path"] if isinstance(raw.get("path"), str) else None,
                line=line if isinstance(line, int) and not isinstance(line, bool) else None,
            )
        )
    return tuple(events[:MAX_EVENTS])


def _describe_exit(returncode: int, *, timed_out: bool, wall_clock: float, settings: TrialSettings) -> str:
    if timed_out:
        return f"the trial timed out after {wall_clock:g} s of wall-clock time and was killed"
    if returncode < 0:
        number = -returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        if number == signal.SIGXCPU or (number == signal.SIGKILL and settings.cpu_seconds):
            return f"the trial was killed by {name}: it used up its CPU time limit of {settings.cpu_seconds} s"
        if number == signal.SIGXFSZ:
            return f"the trial was killed by {name}: it wrote a file larger than the file size limit"
        return f"the trial crashed with {name}"
    return f"the trial child exited with status {returncode} before sending its report"


def _setup_failure(message: dict[str, Any], required_layers: Sequence[str]) -> str:
    """Describe a child that stopped before running repository code; raise if a required layer failed.

    Raises:
        TrialError: HG402, the layer that failed is required by the policy.
    """
    layer = message.get("layer")
    if not layer:
        return f"the trial child failed before running any repository code: {message.get('error')}"
    text = f"the jail could not be set up ({layer}): {message.get('error')}"
    if layer in required_layers:
        raise TrialError(
            text,
            rule_id=RULE_UNAVAILABLE,
            hint='run on a Linux kernel with Landlock and seccomp, or use a policy with trial mode = "if-available"',
        )
    return text


def _failure_reason(failure: dict[str, Any], settings: TrialSettings) -> str:
    """Describe the exception that ended a stage of the job."""
    stage = failure.get("stage")
    if failure.get("sandbox_refusal") is True:
        return f"the {stage} stage was stopped by the sandbox guards: {failure.get('message')}"
    location = f"{failure.get('path')}:{failure.get('line')}: " if failure.get("path") else ""
    kind = str(failure.get("type"))
    if kind == "MemoryError":
        return f"{location}the {stage} stage ran out of memory (limit: {settings.memory_mb} MB on top of the preloaded libraries)"
    return f"{location}the {stage} stage raised {kind}: {failure.get('message')}"


def _decide(
    job: dict[str, Any],
    data: bytes,
    *,
    returncode: int,
    timed_out: bool,
    wall_clock: float,
    stderr_tail: str,
    settings: TrialSettings,
    policy_name: str | None,
    duration: float,
) -> TrialResult:
    """Turn the child's exit status and messages into a :class:`TrialResult`."""
    first, report, tampered = _parse_messages(data, job["nonce"])
    layers = _layers_from(first)

    def result(verdict: Verdict, reason: str, **extra: Any) -> TrialResult:
        rule_id = None if verdict == "pass" else RULE_REFUSED
        return TrialResult(
            verdict=verdict,
            reason=reason,
            layers=layers,
            duration_seconds=duration,
            rule_id=rule_id,
            policy=policy_name,
            deny_events=settings.deny_events,
            **extra,
        )

    if first is not None and first.get("message") == "setup-failed":
        return result("error", _setup_failure(first, job["required_layers"]))
    if tampered:
        return result("error", f"{tampered}; the report is not trusted")
    events = _events_from(report) if report else ()
    dropped = int(report.get("dropped_events") or 0) if report else 0
    if report is None:
        reason = _describe_exit(returncode, timed_out=timed_out, wall_clock=wall_clock, settings=settings)
        if not timed_out and returncode >= 0 and first is None and stderr_tail.strip():
            reason += f"; its last output: {stderr_tail.strip().splitlines()[-1][:300]}"
        return result("error", reason)

    outcome = report.get("outcome") if isinstance(report.get("outcome"), dict) else {}
    stages = tuple(stage for stage in outcome.get("stages") or [] if isinstance(stage, str))
    denied = [event for event in events if _matches(event.kind, settings.deny_events)]
    if denied:
        event = denied[0]
        refused = f", refused by {event.refused_by}" if event.refused_by else ""
        more = f" (and {len(denied) - 1} more denied events)" if len(denied) > 1 else ""
        reason = f"{event.location()}: the code attempted {event.kind} {event.detail}{refused}{more}"
        return result("deny", reason, events=events, stages=stages, dropped_events=dropped)

    failure = outcome.get("failure")
    later = [item for item in outcome.get("rehearsal_failures") or [] if isinstance(item, dict)]
    for item in later:
        logger.info("jailed trial: %s", _failure_reason(item, settings))
    if not isinstance(failure, dict):
        # The sandbox guards refusing a later use (train mode, a copy) stop the load too.
        failure = next((item for item in later if item.get("sandbox_refusal") is True), None)
    if isinstance(failure, dict):
        # A sandbox refusal is a deny: the load in the caller's process would stop at the same place.
        verdict: Verdict = "deny" if failure.get("sandbox_refusal") is True else "error"
        return result(verdict, _failure_reason(failure, settings), events=events, stages=stages, dropped_events=dropped)

    output = outcome.get("output")
    reason = f"import, instantiation and forward pass ran in the jail ({output})" if output else f"completed stages: {', '.join(stages) or 'none'}"
    return result("pass", reason, events=events, stages=stages, dropped_events=dropped)


__all__ = ["JailLayers", "JailSupport", "TrialEvent", "TrialResult", "TrialSettings", "jail_support", "run_trial"]
