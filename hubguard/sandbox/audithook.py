"""A PEP 578 audit hook that refuses dangerous operations while sandboxed code is running.

The guards see what sandboxed code does in Python; the audit hook sees what the
interpreter does on its behalf, including inside allowed libraries: a ``numpy.save`` or
``torch.save`` that writes a file, a socket that an HTTP client opens, a process that a
helper starts. The hook acts only while a sandboxed frame is on the current thread's
stack (or a torch ``Module.__call__`` of a sandboxed model, so forward hooks count):

* always refused then: file writes and other file-system changes, sockets and other
  network clients, processes (``subprocess``, ``os.system``, the exec and spawn families,
  ``fork``), ``ctypes``, environment changes, new audit or trace hooks, ``pickle`` and
  ``marshal`` loads;
* refused by path: reads and directory listings outside the Python installation, the
  hubguard package and the snapshot's weight files;
* refused by origin: compiling or executing new code, building code or function objects,
  frame attributes and imports, when sandboxed code (not a library) caused the event.
  Libraries keep their lazy imports and code generation (``dataclasses``,
  ``collections.namedtuple``), since they run only the library's own templates.

Audit hooks cannot be removed, so the hook stays installed for the life of the process;
before the first sandboxed load and outside sandboxed code it returns after one lookup.
What it cannot see: native code that an allowed library runs without raising an audit
event (torch operators, a C extension's own file or network calls), and callbacks that a
library stores and calls later when no sandboxed frame is on the stack.
"""

from __future__ import annotations

import contextlib
import os
import site
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from hubguard.errors import SandboxImportViolation, SandboxViolation
from hubguard.sandbox.guards import _CREATED_CLASSES, CONTEXT_KEY

_state = threading.local()
_installed = False
_allowed_files: set[str] = set()
_read_roots: tuple[str, ...] = ()
_call_impl_codes: frozenset[types.CodeType] = frozenset()

# Event -> (rule id, operation): refused whenever sandboxed code is on the stack.
_REFUSED_EVENTS: dict[str, tuple[str, str]] = {
    "subprocess.Popen": ("HG310", "process"), "os.system": ("HG310", "process"), "os.exec": ("HG310", "process"),
    "os.posix_spawn": ("HG310", "process"), "os.spawn": ("HG310", "process"), "os.fork": ("HG310", "process"),
    "os.forkpty": ("HG310", "process"), "pty.spawn": ("HG310", "process"), "os.startfile": ("HG310", "process"),
    "os.kill": ("HG310", "process"), "os.killpg": ("HG310", "process"), "builtins.input": ("HG310", "terminal input"),
    "builtins.breakpoint": ("HG310", "debugger"),
    "os.remove": ("HG307", "file write"), "os.rename": ("HG307", "file write"), "os.rmdir": ("HG307", "file write"),
    "os.mkdir": ("HG307", "file write"), "os.chmod": ("HG307", "file write"), "os.chown": ("HG307", "file write"),
    "os.link": ("HG307", "file write"), "os.symlink": ("HG307", "file write"), "os.truncate": ("HG307", "file write"),
    "os.utime": ("HG307", "file write"), "os.chflags": ("HG307", "file write"), "os.lchflags": ("HG307", "file write"),
    "os.lchmod": ("HG307", "file write"), "os.lchown": ("HG307", "file write"), "os.chdir": ("HG307", "file write"),
    "os.putenv": ("HG307", "environment change"), "os.unsetenv": ("HG307", "environment change"),
    "tempfile.mkstemp": ("HG307", "file write"), "tempfile.mkdtemp": ("HG307", "file write"),
    "urllib.Request": ("HG309", "network"), "http.client.connect": ("HG309", "network"),
    "http.client.send": ("HG309", "network"), "webbrowser.open": ("HG310", "process"),
    "sys.addaudithook": ("HG315", "process hook"), "sys.settrace": ("HG315", "process hook"),
    "sys.setprofile": ("HG315", "process hook"), "sys._current_frames": ("HG315", "frame access"),
    "cpython._PySys_ClearAuditHooks": ("HG315", "process hook"),
    "pickle.find_class": ("HG314", "deserialization"),
    "mmap.__new__": ("HG311", "native memory"), "resource.setrlimit": ("HG311", "process limits"),
}
_REFUSED_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("socket.", "HG309", "network"), ("ctypes.", "HG311", "native code"), ("shutil.", "HG307", "file write"),
    ("ftplib.", "HG309", "network"), ("smtplib.", "HG309", "network"), ("poplib.", "HG309", "network"),
    ("imaplib.", "HG309", "network"), ("nntplib.", "HG309", "network"), ("telnetlib.", "HG309", "network"),
    ("sqlite3.", "HG307", "file write"), ("os.exec", "HG310", "process"), ("os.spawn", "HG310", "process"),
)
# Events decided by the frame that caused them.
_CALLER_EVENTS = frozenset({"import", "code.__new__", "function.__new__", "object.__getattr__", "object.__setattr__", "object.__delattr__"})
# Events refused when sandboxed code, not a library's own import or code generation, runs them.
_CODE_EVENTS = frozenset({"compile", "exec", "marshal.loads", "marshal.load"})
_ORIGIN_EVENTS = _CALLER_EVENTS | _CODE_EVENTS
# Library functions that set attributes by name on the class or function they are given.
_TYPE_WRITERS = frozenset({"functools", "dataclasses", "copy", "operator"})
_PATH_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "glob.glob", "os.walk"})

# Libraries whose code generation runs only their own templates.
_CODEGEN_MODULES = frozenset({"dataclasses", "collections", "enum", "functools", "abc"})
_OPEN_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install() -> None:
    """Install the hook once per process (audit hooks cannot be removed)."""
    global _installed, _read_roots
    if _installed:
        return
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.update(path for path in sysconfig.get_paths().values() if path)
    roots.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _read_roots = tuple(sorted(os.path.realpath(root) + os.sep for root in roots if root))
    sys.addaudithook(_hook)
    _installed = True


def track(context: Any) -> None:
    """Start acting for a new load and allow reads of its snapshot's weight files."""
    for path in context.snapshot.blob_paths.values():
        _allowed_files.add(os.path.realpath(path))
    _switch_on()


def _model_call_codes() -> frozenset[types.CodeType]:
    """Return the code of ``torch.nn.Module.__call__``'s implementation once torch is imported.

    A frame running it for a sandboxed model counts as sandboxed: forward hooks and an
    instance attribute ``forward`` run there, after or instead of the sandboxed ``forward``.
    """
    global _call_impl_codes
    if not _call_impl_codes:
        module_class = getattr(getattr(sys.modules.get("torch"), "nn", None), "Module", None)
        codes = {getattr(module_class, name).__code__ for name in ("_call_impl", "_wrapped_call_impl") if hasattr(module_class, name)}
        _call_impl_codes = frozenset(codes)
    return _call_impl_codes


def _make_hook() -> tuple[Callable[[str, tuple[Any, ...]], None], Callable[[], None]]:
    """Return the hook and the function that turns it on.

    The on/off state and the decision function live in the closure, not in module globals,
    so code that reaches this module cannot switch the hook off or replace what it does;
    once on, it stays on for the process.
    """
    active = False
    watch = _watch

    def switch_on() -> None:
        nonlocal active
        active = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active:
            watch(event, args)

    return hook, switch_on


def _watch(event: str, args: tuple[Any, ...]) -> None:
    refused = _REFUSED_EVENTS.get(event)
    if refused is None and event not in _ORIGIN_EVENTS and event not in _PATH_EVENTS:
        for prefix, rule_id, operation in _REFUSED_PREFIXES:
            if event.startswith(prefix):
                refused = (rule_id, operation)
                break
        else:
            return
    if getattr(_state, "busy", False):
        return
    roots = getattr(_state, "import_roots", None)
    if roots and not _sandbox_frame_below(sys._getframe(2), roots[-1]):
        return
    _state.busy = True
    try:
        _decide(event, args, refused)
    finally:
        _state.busy = False


_hook, _switch_on = _make_hook()


@contextlib.contextmanager
def library_import(root: types.FrameType) -> Iterator[None]:
    """Mark an import the import guard allowed, started in frame ``root``.

    Loading native libraries, reading its files and generating code at import time is
    the library's behaviour, not the sandboxed caller's, so events raised between ``root``
    and the library's code pass. Sandboxed code that runs inside the import anyway (a
    ``__del__`` called by the garbage collector) is still decided as usual.
    """
    roots = _state.__dict__.setdefault("import_roots", [])
    roots.append(root)
    try:
        yield
    finally:
        roots.pop()


def _sandbox_frame_below(frame: types.FrameType | None, root: types.FrameType) -> bool:
    """Tell whether a sandboxed frame runs between ``frame`` and ``root`` (exclusive)."""
    while frame is not None and frame is not root:
        if frame.f_globals.get(CONTEXT_KEY) is not None:
            return True
        frame = frame.f_back
    return False


class _ModelCall:
    """A sandboxed model called by torch with no sandboxed frame on the stack; refusals name its class."""

    def __init__(self, context: Any, model_class: type) -> None:
        self.context = context
        self.model_class = model_class

    def violation(self, rule_id: str, operation: str, message: str, **kwargs: Any) -> SandboxViolation:
        path = getattr(self.model_class, "__hubguard_module_path__", None) or "<unknown>"
        message = f"{message} in a call of the sandboxed model {self.model_class.__name__}"
        return self.context.guards.violation(rule_id, operation, message, location=(path, None), **kwargs)


def _sandbox_context(frame: types.FrameType | None) -> Any:
    """Return the context of the innermost sandboxed frame (or sandboxed model call) on the stack."""
    model_calls = _model_call_codes()
    while frame is not None:
        context = frame.f_globals.get(CONTEXT_KEY)
        if context is not None:
            return context
        if frame.f_code in model_calls:
            owner_class = type(frame.f_locals.get("self"))
            context = _CREATED_CLASSES.get(owner_class)
            if context is not None:
                return _ModelCall(context, owner_class)
        frame = frame.f_back
    return None


def _origin(frame: types.FrameType | None) -> tuple[str, bool]:
    """Classify what caused an event, and tell whether a module import is in progress.

    The first item names the innermost frame that is not import machinery: ``sandbox``,
    ``hubguard`` or the module's name. The second is true when import machinery runs
    between that frame and the innermost sandboxed frame: then a library is being
    imported (after the import guard allowed it) and its module code is the library's own.
    """
    origin: str | None = None
    through_import = False
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        name = name if isinstance(name, str) else ""
        if frame.f_code.co_filename.startswith("<frozen importlib") or name.startswith("importlib"):
            through_import = True
        elif frame.f_globals.get(CONTEXT_KEY) is not None:
            return (origin or "sandbox"), through_import
        elif origin is None:
            origin = "hubguard" if name == "hubguard" or name.startswith("hubguard.") else name
        frame = frame.f_back
    return origin or "", through_import


def _first_caller(frame: types.FrameType | None) -> types.FrameType | None:
    """Return the innermost frame that is not import machinery."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (frame.f_code.co_filename.startswith("<frozen importlib") or (isinstance(name, str) and name.startswith("importlib"))):
            return frame
        frame = frame.f_back
    return None


def _decide(event: str, args: tuple[Any, ...], refused: tuple[str, str] | None) -> None:
    try:
        caller = sys._getframe(3)  # above _decide, _watch and the hook
    except ValueError:  # the event came from C with no Python frame on the stack
        return
    if event in _CALLER_EVENTS:
        # Only sandboxed code calling the interpreter directly causes these; a library's
        # own attribute reads, imports and type changes are the library's business.
        first = _first_caller(caller)
        if first is None:
            return
        context = first.f_globals.get(CONTEXT_KEY)
        if context is None:
            name = first.f_globals.get("__name__", "")
            if event in ("object.__setattr__", "object.__delattr__") and isinstance(name, str) and name.split(".")[0] in _TYPE_WRITERS:
                context = _sandbox_context(first)
                if context is not None and not _origin(first)[1]:
                    _decide_type_write(context, event, args)
            return
        if event == "import":
            raise _refuse(context, "HG301", "import", f"import of {args[0]!r} outside the import guard refused", event, SandboxImportViolation)
        if event in ("object.__setattr__", "object.__delattr__"):
            _decide_type_write(context, event, args)
            return
        raise _refuse(context, "HG312", "interpreter internals", f"{event} {args[1] if len(args) > 1 else ''} refused", event)

    context = _sandbox_context(caller)
    if context is None:
        return
    origin, through_import = _origin(caller)
    if through_import:
        # A library's module code runs at its import (lazily, from inside a library call);
        # loading native libraries or .pyc files there is the library's own behaviour.
        return
    if refused is not None:
        raise _refuse(context, refused[0], refused[1], f"{event} refused while sandboxed code runs", event)
    if event in _PATH_EVENTS:
        _decide_path(context, event, args)
        return
    if origin == "hubguard" or origin.split(".")[0] in _CODEGEN_MODULES:
        return
    raise _refuse(context, "HG312", "code generation", f"{event} of new code refused (caused by {origin or 'unknown code'})", event)


def _decide_type_write(context: Any, event: str, args: tuple[Any, ...]) -> None:
    target = args[0]
    if isinstance(target, type) and _CREATED_CLASSES.get(target) is context:
        return
    raise _refuse(context, "HG304", "attribute write", f"{event} on {target!r}, which the sandbox did not create, refused", event)


def _decide_path(context: Any, event: str, args: tuple[Any, ...]) -> None:
    path = args[0] if args else None
    if event == "open":
        mode = args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        writing = (isinstance(mode, str) and any(char in mode for char in "wax+")) or bool((flags or 0) & _OPEN_WRITE_FLAGS)
        if writing:
            raise _refuse(context, "HG307", "file write", f"opening {path!r} for writing refused", event)
    if path is None or isinstance(path, int):
        return
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    full = os.path.realpath(os.fspath(path))
    if full in _allowed_files or any((full + os.sep).startswith(root) for root in _read_roots):
        return
    raise _refuse(context, "HG308", "file read", f"reading {full!r}, outside the snapshot and the Python installation, refused", event)


def _refuse(
    context: Any,
    rule_id: str,
    operation: str,
    message: str,
    event: str,
    error_class: type[SandboxViolation] = SandboxViolation,
) -> SandboxViolation:
    reporter = context if isinstance(context, _ModelCall) else context.guards
    return reporter.violation(
        rule_id, operation, message, policy_rule=f'sandbox.audit_hook["{event}"]',
        hint="model code may not do this; if a library needs it, load the model outside the sandbox after review",
        error_class=error_class,
    )


__all__ = ["install", "library_import", "track"]
