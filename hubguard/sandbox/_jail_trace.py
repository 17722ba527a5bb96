"""The behaviour trace of the jailed trial: a PEP 578 audit hook that records, never blocks.

The jail's operating-system layers do the refusing. This hook only writes down what the
code attempted and which layer's fixed rules refuse it: for example, Landlock refuses a
file written outside the private temp folder. Reads of the trusted Python
installation are counted, not listed, so the trace shows what the repository did rather
than how torch imports itself. Identical events are kept once, and the trace stops
growing at ``max_events``; the summary says how many were dropped.

A hook is Python code inside the process it watches: code that escapes the sandbox
guards can find and change the recorder. The trace is evidence, not a boundary.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

MAX_DETAIL_CHARS = 300
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

NETWORK_EVENTS = frozenset(
    {
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo",
        "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect", "poplib.connect",
        "imaplib.open", "nntplib.connect", "telnetlib.Telnet.open",
    }
)
PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "pty.spawn", "os.startfile", "webbrowser.open",
    }
)
SIGNAL_EVENTS = frozenset({"os.kill", "os.killpg", "signal.pthread_kill"})
FILE_CHANGE_EVENTS = frozenset(
    {
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
        "os.truncate", "os.utime", "os.chflags", "os.lchflags", "shutil.rmtree", "shutil.copyfile",
        "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.chown",
        "shutil.make_archive", "shutil.unpack_archive", "tempfile.mkstemp", "tempfile.mkdtemp",
    }
)
LISTING_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})
LIBRARY_EVENTS = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle"})
CODE_EVENTS = frozenset({"compile", "exec"})
INTROSPECTION_EVENTS = frozenset(
    {
        "sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "object.__getattr__", "object.__setattr__", "object.__delattr__", "sys.settrace", "sys.setprofile",
        "sys.addaudithook", "code.__new__", "function.__new__",
    }
)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_DETAIL_CHARS:
        return text[: MAX_DETAIL_CHARS - 1] + "…"
    return text


def _as_path(value: Any) -> str | None:
    if isinstance(value, int):
        return None
    try:
        path = os.fspath(value)
    except TypeError:
        return None
    if isinstance(path, bytes):
        path = path.decode("utf-8", "surrogateescape")
    return os.path.abspath(path)


def _is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _is_importer(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


def _is_write(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str) and any(letter in mode for letter in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


class Recorder:
    """Collects trial events from the audit hook between :meth:`start` and :meth:`stop`.

    Args:
        work_dir: the private temp folder the child may write.
        installation_roots: folders of trusted code; reads there are counted, not listed.
        snapshot_roots: the snapshot folder and the weight files; reads there are listed.
        code_paths: repository paths of the code closure, to recognise repository frames.
        max_events: the cap on distinct events kept.
    """

    def __init__(
        self,
        *,
        work_dir: Path,
        installation_roots: Sequence[Path],
        snapshot_roots: Sequence[Path],
        code_paths: Sequence[str],
        max_events: int,
    ) -> None:
        self.active = False
        self._local = threading.local()
        self._work_dir = str(work_dir)
        self._snapshot_dir = str(snapshot_roots[0])
        self._installation_roots = [str(root) for root in installation_roots]
        self._allowed_reads = [str(root) for root in snapshot_roots] + [self._work_dir]
        self._code_paths = tuple(code_paths)
        self._layers: dict[str, Any] = {}
        self._max_events = max_events
        self._events: list[dict[str, Any]] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._dropped = 0
        self._quiet_reads = 0
        self._filenames: dict[str, str | None] = {}
        self._own_pid = os.getpid()
        self._hubguard_dir = str(Path(__file__).resolve().parents[1])

    def start(self, layers: dict[str, Any]) -> None:
        """Start recording; ``layers`` are the active jail layers, as sent in the ``ready`` message."""
        self._layers = layers
        self.active = True

    def stop(self) -> None:
        """Stop recording."""
        self.active = False

    # --- locating repository code -------------------------------------------------------

    def repository_path(self, filename: str) -> str | None:
        """Return the repository path of a code object's file name, or ``None`` for other code.

        Plain imports name files inside the snapshot folder; the sandboxed importer names
        them by repository path, possibly behind a prefix such as ``org/name@commit/``.
        """
        if filename in self._filenames:
            return self._filenames[filename]
        found = None
        if filename.startswith(self._snapshot_dir + "/"):
            found = filename[len(self._snapshot_dir) + 1 :]
        else:
            for path in self._code_paths:
                if filename == path or filename.endswith("/" + path):
                    found = path
                    break
        self._filenames[filename] = found
        return found

    def _locate(self, frame: FrameType | None, *, through_hubguard: bool = True) -> tuple[str | None, int | None, bool]:
        """Return the innermost repository frame's path and line, and whether it made the call.

        The call is direct when only import machinery and, with ``through_hubguard``,
        hubguard's own frames (the sandbox's import guard, the model base classes) sit
        between it and the event.
        """
        direct = True
        while frame is not None:
            filename = frame.f_code.co_filename
            path = self.repository_path(filename)
            if path is not None:
                return path, frame.f_lineno, direct
            transparent = filename.startswith("<frozen importlib") or (
                through_hubguard and _is_under(filename, [self._hubguard_dir])
            )
            if not transparent:
                direct = False
            frame = frame.f_back
        return None, None, False

    # --- the hook -------------------------------------------------------------------------

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """Record ``event`` if it is one the trial traces; exceptions are counted as dropped events."""
        if not self.active or getattr(self._local, "busy", False):
            return
        handler = _HANDLERS.get(event)
        if handler is None:
            return
        self._local.busy = True
        try:
            handler(self, event, args, sys._getframe(1))
        except Exception:  # noqa: BLE001  # an exception here would break the operation being traced
            self._dropped += 1
        finally:
            self._local.busy = False

    def record(self, kind: str, detail: str, *, refused_by: str | None, frame: FrameType | None) -> None:
        """Add one event, located at the innermost repository frame of ``frame``'s stack."""
        path, line, _ = self._locate(frame)
        self._add(kind, detail, refused_by, path, line)

    def _add(self, kind: str, detail: str, refused_by: str | None, path: str | None, line: int | None) -> None:
        key = (kind, detail, refused_by, path, line)
        if key in self._seen:
            return
        if len(self._events) >= self._max_events:
            self._dropped += 1
            return
        self._seen.add(key)
        self._events.append({"kind": kind, "detail": detail, "refused_by": refused_by, "path": path, "line": line})

    def _record_from_repository(self, kind: str, detail: str, frame: FrameType | None) -> None:
        """Record an allowed operation only when repository code led to it (not the importer)."""
        path, line, _ = self._locate(frame)
        if path is not None:
            self._add(kind, detail, None, path, line)

    def record_refusal(self, error: BaseException) -> None:
        """Record a ``SandboxViolation`` that ended the job."""
        self.record_sandbox_event(
            {
                "operation": getattr(error, "operation", None),
                "verdict": "deny",
                "detail": getattr(error, "message", str(error)),
                "path": getattr(error, "path", None),
                "line": getattr(error, "line", None),
            }
        )

    def record_sandbox_event(self, event: dict[str, Any]) -> None:
        """Record one event of the sandbox guards' report: a refusal, or a use the policy warns about."""
        operation = event.get("operation")
        if event.get("verdict") != "deny":
            kind = "sandbox:warn"
        elif operation == "import":
            kind = "import:denied"
        else:
            kind = "sandbox"
        detail = _text(f"{operation}: {event.get('detail')}" if operation else event.get("detail"))
        path = event.get("path") if isinstance(event.get("path"), str) else None
        line = event.get("line") if isinstance(event.get("line"), int) else None
        self._add(kind, detail, "sandbox" if kind != "sandbox:warn" else None, path, line)

    def summary(self) -> dict[str, Any]:
        """Return the events, the number dropped, and the number of unlisted trusted reads."""
        return {"events": list(self._events), "dropped_events": self._dropped, "quiet_reads": self._quiet_reads}

    # --- which layer refuses what -------------------------------------------------------

    def _layer(self, name: str) -> str | None:
        return name if self._layers.get(name) else None

    def _refused_outside_work(self, paths: Sequence[str]) -> str | None:
        if any(not _is_under(path, [self._work_dir]) for path in paths):
            return self._layer("landlock")
        return None

    def _on_open(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        path = _as_path(args[0])
        if path is None:
            return
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else None
        opened_how = f"mode {mode}" if isinstance(mode, str) else f"flags {oct(flags) if isinstance(flags, int) else flags}"
        if _is_write(mode, flags):
            self.record("open:write", f"{path} ({opened_how})", refused_by=self._refused_outside_work([path]), frame=frame)
        elif _is_under(path, self._installation_roots) or _is_importer(frame) and _is_under(path, self._allowed_reads):
            self._quiet_reads += 1
        elif _is_under(path, self._allowed_reads):
            self._record_from_repository("open:read", path, frame)
        else:
            self.record("open:outside", path, refused_by=self._layer("landlock"), frame=frame)

    def _on_file_change(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        paths = [path for path in (_as_path(value) for value in args[:2]) if path is not None]
        if not paths:
            return
        self.record(event, " -> ".join(paths), refused_by=self._refused_outside_work(paths), frame=frame)

    def _on_listing(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        path = _as_path(args[0]) if args else None
        if path is None or _is_under(path, self._installation_roots):
            return
        if _is_under(path, self._allowed_reads):
            self._record_from_repository(event, path, frame)
        else:
            self.record(event, path, refused_by=self._layer("landlock"), frame=frame)

    def _on_network(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        if event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            detail = f"socket(family={_family_name(family)})"
            refused = self._layer("seccomp") or self._socket_layer(family)
        elif event in {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}:
            family = getattr(args[0], "family", None)
            detail = f"{event.split('.')[1]} {_text(args[1])}" if len(args) > 1 else event
            refused = self._layer("seccomp") or self._socket_layer(family)
        else:
            # Name lookups may succeed (a numeric address needs no system call); the connection cannot.
            detail = " ".join(_text(value) for value in args[:2])
            refused = None
        self.record(event, detail, refused_by=refused, frame=frame)

    def _socket_layer(self, family: Any) -> str | None:
        if family in {socket.AF_INET, socket.AF_INET6} and self._layers.get("landlock_tcp"):
            return "landlock"
        return self._layer("netns")

    def _on_process(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        detail = " ".join(_text(value) for value in args[:2] if value is not None) or event
        refused = self._layer("seccomp")
        if refused is None and event not in {"os.fork", "os.forkpty"}:
            refused = self._layer("landlock")  # the ruleset never grants the execute right
        self.record(event, detail, refused_by=refused, frame=frame)

    def _on_signal(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        if event == "os.kill" and args and args[0] == self._own_pid:
            return
        refused = self._layer("seccomp") or ("landlock" if self._layers.get("landlock_scopes") else None)
        self.record(event, " ".join(_text(value) for value in args[:2]), refused_by=refused, frame=frame)

    def _on_library(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        if event == "ctypes.dlopen":
            name = _text(args[0]) if args else "None"
            refused = None
            if "/" in name and not _is_under(os.path.abspath(name), self._installation_roots + self._allowed_reads):
                refused = self._layer("landlock")
            self.record(event, name, refused_by=refused, frame=frame)
        else:
            self.record(event, _text(args[-1]) if args else event, refused_by=None, frame=frame)

    def _on_import(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        path, line, direct = self._locate(frame)
        if path is not None and direct:
            self._add("import", _text(args[0]), None, path, line)

    def _on_code(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        """Record code that repository code compiles or executes itself (``exec``, ``eval``, ``compile``)."""
        path, line, direct = self._locate(frame)
        if path is None or not direct:
            return
        filename = args[1] if event == "compile" and len(args) > 1 else getattr(args[0], "co_filename", None)
        if isinstance(filename, str) and (self.repository_path(filename) is not None or _is_under(filename, self._installation_roots)):
            return  # a module being imported, not code built at run time
        self._add(event, _text(filename), None, path, line)

    def _on_introspection(self, event: str, args: tuple[Any, ...], frame: FrameType | None) -> None:
        # The sandbox guards inspect frames themselves, so only calls made by repository code count.
        path, line, direct = self._locate(frame, through_hubguard=False)
        if path is not None and direct:
            detail = " ".join(_text(value) for value in args[1:2]) or event
            self._add(event, detail, None, path, line)


def _family_name(family: Any) -> str:
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return _text(family)


_Handler = Callable[[Recorder, str, tuple[Any, ...], FrameType | None], None]
_HANDLERS: dict[str, _Handler] = {"open": Recorder._on_open, "import": Recorder._on_import}
_HANDLERS.update(dict.fromkeys(FILE_CHANGE_EVENTS, Recorder._on_file_change))
_HANDLERS.update(dict.fromkeys(LISTING_EVENTS, Recorder._on_listing))
_HANDLERS.update(dict.fromkeys(NETWORK_EVENTS, Recorder._on_network))
_HANDLERS.update(dict.fromkeys(PROCESS_EVENTS, Recorder._on_process))
_HANDLERS.update(dict.fromkeys(SIGNAL_EVENTS, Recorder._on_signal))
_HANDLERS.update(dict.fromkeys(LIBRARY_EVENTS, Recorder._on_library))
_HANDLERS.update(dict.fromkeys(CODE_EVENTS, Recorder._on_code))
_HANDLERS.update(dict.fromkeys(INTROSPECTION_EVENTS, Recorder._on_introspection))
