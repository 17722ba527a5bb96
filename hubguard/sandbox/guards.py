"""Runtime guards that restricted-compiled remote code calls for every sensitive operation.

The compiler rewrites ``a.b`` to ``_getattr_(a, "b")``, ``a[k]`` to ``_getitem_(a, k)``,
``for x in it`` to ``for x in _getiter_(it)``, ``a.b = v`` to ``_write_(a).b = v`` and so
on; the names resolve to the bound methods of one :class:`Guards` object per loaded
snapshot, stored in each module's globals. Because the compiled code calls them itself,
they hold wherever that code runs: at import, in ``forward``, in ``__del__``, in callbacks.

What each guard decides:

* attribute reads: dunders outside :data:`~hubguard.sandbox.compiler.READABLE_DUNDERS`,
  frame and code attributes, and any module, function or class the policy (or
  :data:`SANDBOX_DENIED`) refuses, however it is reached: ``torch.os``, ``torch.load``,
  ``timm.models._hub`` or a function another module imported;
* attribute writes: modules, classes and functions the sandbox did not create;
* item reads and iteration: the same value checks as attribute reads;
* builtins: a reduced set (:data:`WITHHELD_BUILTINS` lists what is missing and why);
  ``getattr``/``setattr``/``hasattr``/``delattr``, ``__import__`` and ``__build_class__``
  are guarded versions.
"""

from __future__ import annotations

import _string
import builtins
import functools
import logging
import operator
import string
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from hubguard.errors import SandboxImportViolation, SandboxViolation
from hubguard.sandbox.compiler import FRAME_ATTRIBUTES, READABLE_DUNDERS

logger = logging.getLogger(__name__)

# Key of the sandbox context in every sandboxed module's globals; remote code cannot
# spell it (dunder names are refused by the compiler).
CONTEXT_KEY = "__hubguard_context__"

# Builtins sandboxed code does not get, with the reason shown in refusals.
WITHHELD_BUILTINS: dict[str, str] = {
    "open": "touches the host file system, whatever the policy's [builtins] allow says (that list changes only the static audit); model files come from the verified snapshot",
    "eval": "runs code that was never audited",
    "exec": "runs code that was never audited",
    "compile": "builds code that was never audited",
    "globals": "exposes the module namespace, including the guards",
    "locals": "exposes frame internals",
    "vars": "exposes object and module namespaces without the attribute guard",
    "breakpoint": "starts a debugger that can run any code",
    "input": "reads from the terminal",
    "help": "imports and runs arbitrary modules through pydoc",
    "exit": "ends the host process",
    "quit": "ends the host process",
    "copyright": "not needed by model code",
    "credits": "not needed by model code",
    "license": "reads files from the Python installation",
    "memoryview": "not needed by model code",
}

# Names refused inside the sandbox whatever the policy decides: each is a pivot from an
# allowed library to code execution, the file system, the network, or to callbacks that
# run later outside the sandbox, where neither the guards nor the audit hook see them.
# Keys are dotted prefixes matched at dot boundaries.
SANDBOX_DENIED: dict[str, str] = {
    "builtins": "holds the unguarded builtins (open, eval, __import__)",
    "posix": "is the native os module (system, fork, exec)",
    "nt": "is the native os module (system, spawn)",
    "_io.open": "opens files", "io.open": "opens files", "_io.FileIO": "opens files", "io.FileIO": "opens files",
    "io.open_code": "opens files", "_io.open_code": "opens files",
    "_thread": "starts threads whose callbacks run outside the sandbox",
    "threading.Thread": "starts threads whose callbacks run outside the sandbox",
    "threading.Timer": "runs callbacks later, outside the sandbox",
    "threading.excepthook": "replaces a process-wide hook",
    "threading.settrace": "traces every frame", "threading.setprofile": "profiles every frame",
    "atexit": "runs callbacks at exit, outside the sandbox",
    "weakref.finalize": "runs callbacks later, outside the sandbox",
    "signal": "installs process-wide handlers",
    "sched": "runs callbacks later, outside the sandbox",
    "concurrent": "runs callbacks in other threads or processes",
    "asyncio": "runs callbacks later and opens sockets and processes",
    "multiprocessing": "starts processes", "subprocess": "starts processes", "_posixsubprocess": "starts processes",
    "pty": "starts processes", "os.system": "runs a shell command",
    "shutil": "copies, moves and deletes files", "tempfile": "creates files and folders",
    "socket": "opens network connections", "_socket": "opens network connections", "ssl": "opens network connections",
    "select": "waits on sockets", "selectors": "waits on sockets",
    "urllib": "opens network connections", "http": "opens network connections", "ftplib": "opens network connections",
    "smtplib": "opens network connections", "telnetlib": "opens network connections", "xmlrpc": "opens network connections",
    "webbrowser": "starts processes", "requests": "opens network connections", "huggingface_hub": "downloads unaudited files",
    "ctypes": "calls native code", "_ctypes": "calls native code", "cffi": "calls native code",
    "mmap": "maps memory and files", "fcntl": "controls file descriptors", "resource": "changes process limits",
    "importlib": "imports modules by computed names, bypassing the import guard",
    "imp": "imports modules by computed names", "pkgutil": "imports modules by computed names",
    "runpy": "runs modules as scripts", "zipimport": "imports code from archives",
    "code": "runs an interactive interpreter", "codeop": "compiles code", "pdb": "starts a debugger",
    "bdb": "traces frames", "pydoc": "imports modules by computed names", "trace": "traces frames",
    "gc": "lists every object in the process", "inspect": "reaches frames and globals",
    "traceback": "walks frames", "faulthandler": "writes to file descriptors", "linecache": "reads files",
    "marshal": "loads code objects", "pickle": "runs code while loading", "_pickle": "runs code while loading",
    "copyreg": "changes how every object pickles", "shelve": "runs code while loading", "dill": "runs code while loading",
    "cloudpickle": "runs code while loading", "joblib": "runs code while loading",
    "unittest": "patches any object (unittest.mock)",
    "logging.config": "opens sockets and evaluates configuration",
    "logging.handlers": "writes files and opens sockets later, outside the sandbox",
    "logging.FileHandler": "writes files later, outside the sandbox",
    "logging.basicConfig": "installs process-wide handlers that write files",
    "logging.setLoggerClass": "changes process-wide logging",
    "logging.setLogRecordFactory": "changes process-wide logging",
    "string.Formatter": "reads attributes by name without the attribute guard",
    "operator.attrgetter": "reads attributes by name without the attribute guard",
    "operator.methodcaller": "calls methods by name without the attribute guard",
    "typing.get_type_hints": "evaluates annotation strings as code",
    "typing.ForwardRef": "evaluates strings as code",
    "typing._eval_type": "evaluates strings as code",
    "types.FunctionType": "builds functions from code objects",
    "types.LambdaType": "builds functions from code objects",
    "types.CodeType": "builds code objects",
    "types.FrameType": "is a frame", "types.TracebackType": "holds frames",
    "types.ModuleType": "builds modules outside the sandbox namespace",
    "torch.hub": "downloads and runs unaudited code",
    "torch.serialization": "unpickles files", "torch.package": "unpickles and imports packaged code",
    "torch.save": "writes files", "torch.jit.load": "loads unaudited programs",
    "torch.jit.save": "writes files from native code, which raises no audit event",
    "torch.from_file": "maps and writes files from native code, which raises no audit event",
    "torch.UntypedStorage.from_file": "maps and writes files from native code",
    "torch.TypedStorage.from_file": "maps and writes files from native code",
    "torch._C.PyTorchFileWriter": "writes files from native code", "torch._C.PyTorchFileReader": "reads files from native code",
    "torch.export.save": "writes files from native code", "torch.export.load": "loads unaudited programs",
    "torch.utils.cpp_extension": "compiles and loads native code",
    "torch.utils.collect_env": "starts processes",
    "torch.ops.load_library": "loads native code", "torch.classes.load_library": "loads native code",
    "torch.multiprocessing": "starts processes", "torch.distributed": "opens network connections",
    "torch.nn.modules.module.register_module_": "installs hooks on every model in the process",
    "torch.nn.modules.module._global_": "holds hooks that run for every model in the process",
    "timm.models._hub": "downloads files", "timm.models.hub": "downloads files",
    "timm.models._builder.load_pretrained": "downloads and unpickles files",
    "numpy.save": "writes files", "numpy.savez": "writes files", "numpy.savez_compressed": "writes files",
    "numpy.savetxt": "writes files", "numpy.ctypeslib": "calls native code", "numpy.f2py": "compiles native code",
    "numpy.memmap": "maps and writes files", "numpy.lib.format.open_memmap": "maps and writes files",
    "numpy.lib.format.write_array": "writes files", "numpy.lib.recfunctions": "writes files",
    "safetensors.torch.save_file": "writes files", "safetensors.torch.save_model": "writes files",
    "safetensors.numpy.save_file": "writes files", "scipy.io": "writes files",
    "torchvision.io": "reads and writes files from native code", "torchvision.utils.save_image": "writes files",
    "torchaudio.save": "writes files", "sentencepiece.SentencePieceTrainer": "writes files from native code",
    "numpy.distutils": "compiles native code", "numpy.testing": "starts processes",
    "hubguard.sandbox": "is the sandbox itself",
    "torch._C._distributed_": "opens network connections and stores from native code",
    "torch._C._rpc": "opens network connections", "torch._C._dist": "opens network connections",
    "torch._C._jit_": "compiles, loads and saves programs from native code",
    "torch._C._load_for_": "loads unaudited programs", "torch._C._save_": "writes files from native code",
    "torch._C.import_ir_module": "loads unaudited programs", "torch._C.ScriptModule": "saves programs from native code",
    "torch._C.CompilationUnit": "compiles programs", "torch._C._share_": "shares memory through files",
    "torch.jit.trace": "builds programs whose save methods write files from native code",
    "torch.jit.trace_module": "builds programs whose save methods write files from native code",
    "torch.jit.script": "compiles programs whose save methods write files from native code",
    "torch.jit.freeze": "builds programs whose save methods write files from native code",
    "torch.jit.optimize_for_inference": "builds programs whose save methods write files from native code",
    "torch.jit.ScriptModule": "saves programs from native code", "torch.jit.RecursiveScriptModule": "saves programs from native code",
    "torch.jit._script": "compiles programs whose save methods write files from native code",
    "torch.jit._trace": "builds programs whose save methods write files from native code",
    "torch.jit._serialization": "reads and writes files from native code",
    "torch.autograd.graph.saved_tensors_hooks": "installs callbacks that run later, outside the sandbox",
    "torch.autograd.graph.save_on_cpu": "installs callbacks that run later, outside the sandbox",
    "torch.autograd.graph.register_multi_grad_hook": "installs callbacks that run later, outside the sandbox",
    "torch.autograd.graph._": "holds callback machinery that runs outside the sandbox",
    "types.new_class": "builds classes without the class-body rules",
    "numpy.lib._datasource": "opens files and URLs", "numpy.DataSource": "opens files and URLs",
    "numpy.lib.npyio.DataSource": "opens files and URLs",
}

# Members of ``os`` and ``sys`` sandboxed code may reach; every other member is refused.
_OS_MEMBERS = frozenset(
    {"path", "sep", "altsep", "extsep", "pathsep", "linesep", "curdir", "pardir", "devnull", "name",
     "environ", "getenv", "fspath", "PathLike", "cpu_count", "getpid", "getcwd", "listdir", "scandir", "walk"}
)
_SYS_MEMBERS = frozenset({"platform", "version_info", "version", "maxsize", "byteorder", "float_info", "hexversion", "implementation"})
# threading's private members (_register_atexit, _DummyThread, _start_new_thread) start
# threads or register exit callbacks that run outside the sandbox.
_THREADING_MEMBERS = frozenset(
    {"Lock", "RLock", "Event", "Condition", "Semaphore", "BoundedSemaphore", "Barrier", "BrokenBarrierError",
     "ThreadError", "TIMEOUT_MAX", "local", "get_ident", "get_native_id", "current_thread", "main_thread",
     "active_count", "enumerate"}
)
_MEMBER_ALLOWLISTS = {"os": _OS_MEMBERS, "sys": _SYS_MEMBERS, "threading": _THREADING_MEMBERS}

# Module names that stand for a public name remote code spells differently.
_MODULE_LABELS = {"posixpath": "os.path", "ntpath": "os.path", "genericpath": "os.path"}

# Method names that open or write files. They are refused on objects the sandbox did not
# create, because a stored bound method could write later, when no sandboxed frame is on
# the stack.
_FILE_WRITING_METHODS = frozenset(
    {"tofile", "write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "unlink", "rmdir",
     "rename", "replace", "chmod", "savez", "save_state", "open", "save", "dump", "mkdir", "makedirs",
     # torch storages and programs: native code opens, maps or writes the file, unseen by the audit hook
     "from_file", "_save_for_lite_interpreter", "_save_for_mobile", "save_to_buffer", "_save_to_buffer_for_lite_interpreter",
     "_share_filename_cpu_", "_share_fd_cpu_", "_new_shared_filename_cpu", "_new_shared_fd_cpu", "_new_using_filename_cpu",
     "_new_using_fd_cpu", "_new_shared", "_share_filename_", "_share_fd_", "_release_ipc_counter_cuda",
     "_shared_decref", "_shared_incref", "_new_with_file", "_write_file", "_set_from_file"}
)

# Names of native routines that open, map or write files, refused however they are reached
# (a set from torch.overrides.get_ignored_functions contains UntypedStorage.from_file).
_NATIVE_WRITER_NAMES = frozenset(
    {"from_file", "tofile", "_save_for_lite_interpreter", "_save_for_mobile", "save_to_buffer",
     "_save_to_buffer_for_lite_interpreter", "_share_filename_cpu_", "_share_fd_cpu_", "_new_shared_filename_cpu",
     "_new_shared_fd_cpu", "_new_using_filename_cpu", "_new_using_fd_cpu"}
)
_NATIVE_ROUTINE_TYPES = (types.BuiltinFunctionType, types.MethodDescriptorType, types.ClassMethodDescriptorType)

# Attribute names of objects that register callbacks; the callbacks must be sandboxed code.
_CALLBACK_REGISTRARS = frozenset(
    {"register_hook", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
     "register_full_backward_pre_hook", "register_backward_hook", "register_state_dict_pre_hook",
     "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_state_dict_post_hook",
     "_register_state_dict_hook", "_register_load_state_dict_pre_hook", "register_post_accumulate_grad_hook",
     "register_multi_grad_hook", "add_done_callback", "call_soon", "call_later", "register_prehook",
     "addFilter", "addHandler", "_register_hook", "register_step_pre_hook", "register_step_post_hook",
     "register_load_state_dict_pre_hook", "register_state_dict_pre_hook", "register_module_forward_hook"}
)

# Methods that read values out of a container; what they return gets the value check,
# as ``obj[key]`` does. Class patterns may not read them.
_CONTAINER_READERS = frozenset({"get", "pop", "setdefault", "popitem", "values", "items", "popleft"})

# Dunder names a class namespace may not hold, whether written in a class body or passed to
# ``type(name, bases, namespace)`` and other metaclass calls. They change how the class
# identifies itself or how isinstance and pattern matching see it, or they hand callables to
# ``copy`` and ``pickle`` that run outside the sandbox.
_NAMESPACE_DENIED = frozenset(
    {"__class__", "__builtins__", "__globals__", "__match_args__", "__instancecheck__", "__subclasscheck__",
     "__reduce__", "__reduce_ex__", "__getnewargs__", "__getnewargs_ex__"}
)

_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}

_PLAIN_TYPES = frozenset(
    {int, float, bool, complex, str, bytes, type(None), list, tuple, dict, set, frozenset, range, slice}
)
_FRAME_TYPES = (types.FrameType, types.TracebackType, types.CodeType)
_ROUTINE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType)

# Attribute names the attribute guard decides beyond the value check.
_SPECIAL_ATTRIBUTES = _CALLBACK_REGISTRARS | _FILE_WRITING_METHODS | _CONTAINER_READERS | {
    "format", "format_map", "register", "__setattr__", "__delattr__", "__getattr__",
}

# Callables that run code the sandbox did not compile. Stored as attributes, they are wrapped
# so that they run inside the sandbox when host code calls them later.
_FOREIGN_CALLABLE_KINDS = (
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
    types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType, functools.partial,
    type(functools.lru_cache(print)),  # functools._lru_cache_wrapper forwards to the function it caches
)

# Values the value check decides; instances of any other type pass.
_CHECKED_KINDS = (
    types.ModuleType, types.FrameType, types.TracebackType, types.CodeType, type, functools.partial,
    types.FunctionType, types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodDescriptorType,
    types.ClassMethodDescriptorType, types.MethodType, types.MethodWrapperType,
)
_MISSING = object()

# Builtin classes that build objects which lead out of the sandbox, with what they build.
_DENIED_BUILTIN_TYPES: dict[type, str] = {
    types.FunctionType: "functions from code objects",
    types.CodeType: "code objects",
    types.FrameType: "frames",
    types.TracebackType: "tracebacks",
    types.ModuleType: "modules outside the sandbox namespace",
    types.CellType: "closure cells",
}

# The code of the wrapper that runs a stored foreign callable inside the sandbox: its module
# globals hold the load's context, so the audit hook treats its frame as sandboxed.
# ``stored_at`` is where sandboxed code stored the callable, for refusals.
RUNNER_FILENAME = "<hubguard sandboxed call>"
_RUNNER_CODE = compile(
    "def make(target, stored_at):\n"
    "    def sandboxed_call(*args, **kwargs):\n"
    "        stored_at  # a free variable, so the frame holds it\n"
    "        return target(*args, **kwargs)\n"
    "    return sandboxed_call\n",
    RUNNER_FILENAME,
    "exec",
)

# Classes each snapshot context created, for the write guard.
_CREATED_CLASSES: weakref.WeakKeyDictionary[type, Any] = weakref.WeakKeyDictionary()


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _floor_rule(dotted: str) -> tuple[str, str] | None:
    """Return ``(key, reason)`` when :data:`SANDBOX_DENIED` or the os/sys member lists refuse ``dotted``."""
    parts = dotted.split(".")
    allowed_members = _MEMBER_ALLOWLISTS.get(parts[0])
    if allowed_members is not None and len(parts) > 1 and parts[1] not in allowed_members:
        prefix = ".".join(parts[:2])
        return f'sandbox.members["{parts[0]}"]', f"{prefix} is not among the {parts[0]} members sandboxed code may use"
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        reason = SANDBOX_DENIED.get(prefix)
        if reason is not None:
            return f'sandbox.denied["{prefix}"]', f"{prefix} {reason}"
    for prefix, reason in SANDBOX_DENIED.items():
        if prefix.endswith("_") and dotted.startswith(prefix):
            return f'sandbox.denied["{prefix}*"]', f"{dotted} {reason}"
    return None


class _ImportedNames:
    """The object a guarded ``from x import a, b`` returns: only the checked names, as attributes."""

    def __init__(self, module_name: str, values: dict[str, Any]) -> None:
        self.__name__ = module_name
        for name, value in values.items():
            object.__setattr__(self, name, value)


class _CheckedWriter:
    """Writer that ``_write_(obj)`` returns for objects other than plain containers; it stores foreign callables wrapped.

    ``obj.attr = value`` compiles to ``_write_(obj).attr = value``; the writer passes the
    store on to ``obj`` with the value run through :meth:`Guards._stored`.
    """

    __slots__ = ("_hg_guards", "_hg_target")

    def __init__(self, guards: Guards, target: Any) -> None:
        object.__setattr__(self, "_hg_guards", guards)
        object.__setattr__(self, "_hg_target", target)

    def __setattr__(self, name: str, value: Any) -> None:
        target = self._hg_target
        setattr(target, name, self._hg_guards._stored(target, value))

    def __delattr__(self, name: str) -> None:
        delattr(self._hg_target, name)

    def __setitem__(self, key: Any, value: Any) -> None:
        target = self._hg_target
        target[key] = self._hg_guards._stored(target, value)

    def __delitem__(self, key: Any) -> None:
        del self._hg_target[key]


def _make_type_stand_in(guards: Guards) -> type:
    """Return the ``type`` sandboxed code gets: ``type(x)`` as usual, but class creation follows the class-body rules.

    The stand-in is a subclass of ``type`` with its own metaclass, so ``isinstance(x, type)``
    and ``class Meta(type)`` keep working; calling it, or any metaclass derived from it or
    from a library metaclass the sandbox reached, with ``(name, bases, namespace)`` checks
    the namespace as :meth:`Guards.check_namespace` does and records the new class.
    """
    originals: dict[type, type] = {}

    class SandboxMetaclass(type):
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            if cls is stand_in and len(args) == 1 and not kwargs:
                return guards.check_value(type(args[0]), "type()")
            if len(args) == 3:
                guards.check_namespace(args[0], args[2], how=f"{cls.__name__}()")
            if cls is stand_in:
                namespace = dict(args[2]) if len(args) == 3 and isinstance(args[2], dict) else None
                if namespace is not None:
                    namespace["__module__"] = sys._getframe(1).f_globals.get("__name__", "builtins")
                    created = type(args[0], args[1], namespace, **kwargs)
                else:
                    created = type(*args, **kwargs)
            else:
                created = type.__call__(cls, *args, **kwargs)
            if isinstance(created, type) and len(args) == 3:
                guards._register_class(created)
            return created

        def __instancecheck__(cls, value: Any) -> bool:
            target = originals.get(cls)
            return isinstance(value, target) if target is not None else type.__instancecheck__(cls, value)

        def __subclasscheck__(cls, subclass: Any) -> bool:
            target = originals.get(cls)
            return issubclass(subclass, target) if target is not None else type.__subclasscheck__(cls, subclass)

    def checked_metaclass(metaclass: type) -> type:
        for checked, original in originals.items():
            if original is metaclass:
                return checked
        try:
            checked = SandboxMetaclass(metaclass.__name__, (metaclass,), {"__module__": metaclass.__module__, "__qualname__": metaclass.__qualname__})
        except TypeError:
            # A native metaclass that cannot be subclassed (pybind11's) is handed out as it is.
            return metaclass
        originals[checked] = metaclass
        return checked

    stand_in = SandboxMetaclass("type", (type,), {"__module__": "builtins", "__qualname__": "type"})
    originals[stand_in] = type
    guards._checked_metaclass = checked_metaclass
    return stand_in


class Guards:
    """The guards of one loaded snapshot; module globals hold its bound methods.

    Args:
        context: the :class:`~hubguard.sandbox.importer.SandboxContext` of the load, which
            provides the policy, the repository label, the report sink and relative imports.
    """

    def __init__(self, context: Any) -> None:
        self.context = context
        self.policy = context.policy
        self._chain_cache: dict[str, tuple[str, str, str] | None] = {}
        self._value_cache: dict[int, tuple[object, tuple[str, str, str] | None]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._substitutes: dict[int, Callable[..., Any]] = {}
        self._compat_prefix = "hubguard.compat.transformers"
        self._module_attribute_cache: dict[tuple[int, str], tuple[types.ModuleType, Any]] = {}
        # Types whose instances the value check always lets through; grows as values are seen.
        self._inert_types: set[type] = set(_PLAIN_TYPES)
        self._trusted_callees: set[int] = set()
        self._checked_metaclass: Callable[[type], type] = lambda metaclass: metaclass
        self._type = _make_type_stand_in(self)
        runner_namespace: dict[str, Any] = {CONTEXT_KEY: context, "__builtins__": {}, "__name__": "hubguard_sandboxed_call"}
        exec(_RUNNER_CODE, runner_namespace)  # noqa: S102  # hubguard's own constant code; gives the wrapper sandboxed globals
        self._make_runner: Callable[[Any, tuple[str, int]], Callable[..., Any]] = runner_namespace["make"]
        self.builtins = self._make_builtins()
        self._install_substitutes()
        # The guarded builtins and substitutes; the plain builtins (map, sorted) still get their arguments checked.
        guarded = [value for name, value in self.builtins.items() if value is not getattr(builtins, name, None)]
        self._trusted_callees = {id(value) for value in (*guarded, *self._substitutes.values()) if callable(value)}

    # --- reporting ---------------------------------------------------------------------

    def violation(
        self,
        rule_id: str,
        operation: str,
        message: str,
        *,
        policy_rule: str,
        hint: str,
        error_class: type[SandboxViolation] = SandboxViolation,
        location: tuple[str, int | None] | None = None,
    ) -> SandboxViolation:
        """Build the error for a refused operation, located at the innermost sandboxed frame, and record it.

        ``location`` overrides the frame search, for refusals made while no sandboxed
        frame is on the stack (a foreign callable called as a sandboxed model's forward).
        """
        path, line = location if location is not None else self.context.locate_caller()
        repo = self.context.repo_label
        where = f"{path}:{line}" if line is not None else path
        error = error_class(
            f"{repo}/{where}: {message} (policy rule {policy_rule})",
            rule_id=rule_id,
            path=path,
            line=line,
            operation=operation,
            repo=repo,
            policy_rule=policy_rule,
            hint=hint,
        )
        self.context.record_event(
            {"rule_id": rule_id, "operation": operation, "verdict": "deny", "detail": message,
             "policy_rule": policy_rule, "repo": repo, "path": path, "line": line}
        )
        logger.debug("sandbox refused %s at %s:%s: %s", operation, path, line, message)
        return error

    def _warn(self, operation: str, dotted: str, policy_rule: str) -> None:
        if (operation, dotted) in self._warned:
            return
        self._warned.add((operation, dotted))
        path, line = self.context.locate_caller()
        self.context.record_event(
            {"rule_id": "HG300", "operation": operation, "verdict": "warn", "detail": f"{dotted} used; the policy warns",
             "policy_rule": policy_rule, "repo": self.context.repo_label, "path": path, "line": line}
        )

    # --- decisions ---------------------------------------------------------------------

    def decide_name(self, dotted: str, *, guarded: bool = False) -> tuple[str, str, str]:
        """Return ``(verdict, policy key, reason)`` for an import or an attribute chain."""
        cache_key = f"{dotted}?{guarded}"
        cached = self._chain_cache.get(cache_key)
        if cached is not None:
            return cached
        floor = _floor_rule(dotted)
        if floor is not None:
            decision = ("deny", floor[0], floor[1])
        else:
            rule = self.policy.decide_module(dotted, guarded=guarded)
            decision = (rule.verdict, rule.key, f"{dotted} is refused by the policy")
        self._chain_cache[cache_key] = decision
        return decision

    def _module_label(self, module: types.ModuleType) -> str:
        name = module.__name__
        if name.startswith(self._compat_prefix):
            return "transformers" + name[len(self._compat_prefix):]
        return _MODULE_LABELS.get(name, name)

    def _is_sandbox_module(self, module: types.ModuleType) -> bool:
        return module.__dict__.get(CONTEXT_KEY) is not None

    def _owned(self, value: Any) -> bool:
        """Tell whether this load created ``value`` (a module, class or function of the snapshot)."""
        if isinstance(value, types.ModuleType):
            return value.__dict__.get(CONTEXT_KEY) is self.context
        if isinstance(value, type):
            return _CREATED_CLASSES.get(value) is self.context
        if isinstance(value, types.FunctionType):
            return value.__globals__.get(CONTEXT_KEY) is self.context
        if isinstance(value, types.MethodType):
            return self._owned(value.__func__)
        return False

    def _sandboxed_callable(self, value: Any) -> bool:
        """Tell whether calling ``value`` runs sandboxed code (of any load)."""
        if isinstance(value, types.FunctionType):
            return value.__globals__.get(CONTEXT_KEY) is not None
        if isinstance(value, types.MethodType):
            return self._sandboxed_callable(value.__func__)
        if isinstance(value, functools.partial):
            return self._sandboxed_callable(value.func)
        # Calling an instance of a sandbox class runs its sandboxed __call__ (or forward).
        return type(value) in _CREATED_CLASSES

    def _canonical_decision(self, value: Any) -> tuple[str, str, str] | None:
        """Decide a function or class by where it is defined; ``None`` means allowed."""
        cached = self._value_cache.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        module = getattr(value, "__module__", None)
        if not isinstance(module, str):
            self_object = getattr(value, "__self__", None)
            module = self_object.__name__ if isinstance(self_object, types.ModuleType) else None
        qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        decision = None
        if isinstance(module, str) and isinstance(qualname, str):
            label = _MODULE_LABELS.get(module, module)
            dotted = f"{label}.{qualname}"
            floor = _floor_rule(dotted)
            if floor is not None:
                decision = ("deny", floor[0], floor[1])
            else:
                rule = self.policy.decide_module(dotted)
                # Only explicit denials apply to where a name is defined; the policy lists
                # names as remote code spells them, not every private module behind them.
                if rule.verdict == "deny" and not rule.key.startswith("modules.unknown"):
                    decision = ("deny", rule.key, f"{dotted} is refused by the policy")
        if decision is None and isinstance(value, type):
            # A subclass of a refused class (threading._DummyThread of threading.Thread) is refused too.
            for base in value.__mro__[1:]:
                if base.__module__ != "builtins" and base not in _CREATED_CLASSES:
                    decision = self._canonical_decision(base)
                    if decision is not None:
                        break
        if decision is None and not isinstance(value, type):
            owner = getattr(value, "__self__", None)
            name = getattr(value, "__name__", None)
            if isinstance(owner, type) and isinstance(name, str) and owner not in _CREATED_CLASSES:
                # A builtin class method has no __module__: decide it as owner.name along the owner's MRO.
                for base in owner.__mro__:
                    module_name = getattr(base, "__module__", None)
                    if isinstance(module_name, str) and module_name != "builtins":
                        floor = _floor_rule(f"{_MODULE_LABELS.get(module_name, module_name)}.{base.__qualname__}.{name}")
                        if floor is not None:
                            decision = ("deny", floor[0], floor[1])
                            break
        self._value_cache[id(value)] = (value, decision)
        return decision

    # --- value checks ---------------------------------------------------------------

    def check_value(self, value: Any, how: str, *, reached_as: str | None = None, listed: bool = False) -> Any:
        """Return ``value`` if sandboxed code may hold it, a guarded substitute, or raise."""
        kind = type(value)
        if kind in self._inert_types or id(value) in self._trusted_callees:
            return value
        if kind is types.FunctionType and value.__globals__ is _GUARDS_GLOBALS:
            return value  # a guarded stand-in this module made (str.format, dict.get, a withheld builtin)
        if isinstance(value, functools.partial):
            self.check_value(value.func, f"{how} (a partial of it)")
            return value
        if kind is types.ModuleType or isinstance(value, types.ModuleType):
            return self._check_module_value(value, how, reached_as)
        if isinstance(value, _FRAME_TYPES):
            raise self.violation(
                "HG302", "attribute read", f"{how} yields a {kind.__name__} object, which leads out of the sandbox",
                policy_rule='sandbox.denied["frames"]', hint="model code never needs frames, tracebacks or code objects",
            )
        if isinstance(value, types.MethodType) and not self._sandboxed_callable(value):
            # A bound or class method (torch.ByteStorage.from_file) is decided by its function.
            self.check_value(value.__func__, how)
            return value
        if isinstance(value, _ROUTINE_TYPES) or isinstance(value, type):
            if self._is_sandbox_routine(value):
                return value
            substitute = self._substitutes.get(id(value))
            if substitute is not None:
                return substitute
            if isinstance(value, _NATIVE_ROUTINE_TYPES) and getattr(value, "__name__", None) in _NATIVE_WRITER_NAMES:
                raise self.violation(
                    "HG307", "file write", f"{how} reaches {value.__name__}, which opens or writes files from native code",
                    policy_rule="sandbox.file_write",
                    hint="model code may not open or write files; weights come from the verified snapshot",
                )
            if getattr(value, "__module__", None) == "builtins":
                return self._check_builtin_value(value, how)
            decision = self._canonical_decision(value)
            if decision is not None and not (listed and decision[1].startswith("modules.")):
                raise self.violation(
                    "HG303", "attribute read", f"{how} reaches {decision[2]}",
                    policy_rule=decision[1], hint="remove the call; the sandbox refuses it wherever it is reached",
                )
            if isinstance(value, type) and issubclass(value, type):
                # A library metaclass (abc.ABCMeta) called with a namespace gets the class-body rules too.
                return self._checked_metaclass(value)
            return value
        if not isinstance(value, _CHECKED_KINDS):
            # Instances of ordinary classes (tensors, layers, configs) need no decision, so
            # their type skips the checks next time.
            self._inert_types.add(kind)
        return value

    def _check_builtin_value(self, value: Any, how: str) -> Any:
        """Allow builtin classes and the builtins sandboxed code already has; refuse the rest."""
        name = getattr(value, "__name__", "")
        if isinstance(value, type):
            if value in _DENIED_BUILTIN_TYPES:
                raise self.violation(
                    "HG303", "attribute read", f"{how} reaches the {name} type, which builds {_DENIED_BUILTIN_TYPES[value]}",
                    policy_rule=f'sandbox.denied["types.{name}"]', hint="model code never builds these objects",
                )
            return value
        if self.builtins.get(name) is value:
            return value
        raise self.violation(
            "HG303", "attribute read", f"{how} reaches the unguarded builtin {name}()",
            policy_rule='sandbox.denied["builtins"]', hint=f"use the {name}() that sandboxed code gets, if any",
        )

    def _is_sandbox_routine(self, value: Any) -> bool:
        if isinstance(value, types.FunctionType):
            return value.__globals__.get(CONTEXT_KEY) is not None
        if isinstance(value, type):
            return value in _CREATED_CLASSES
        return False

    def _check_module_value(self, module: types.ModuleType, how: str, reached_as: str | None) -> types.ModuleType:
        if self._is_sandbox_module(module):
            return module
        label = self._module_label(module)
        verdict, key, reason = self.decide_name(label)
        if verdict == "deny":
            raise self.violation(
                "HG303", "attribute read", f"{how} reaches module {label}: {reason}",
                policy_rule=key, hint="import only modules the policy allows, by their own name",
            )
        # A partial module (os, sys) may be held only where it was imported by name.
        if reached_as != label and self.policy.is_partial(label):
            raise self.violation(
                "HG303", "attribute read",
                f"{how} reaches module {label} through {reached_as}; {label} may be used only by importing it",
                policy_rule=f'modules.partial["{label}"]', hint=f"write `import {label}` and use its allowed members",
            )
        if verdict == "warn":
            self._warn("module", label, key)
        return module


    # --- pattern matching, containers, class namespaces ----------------------------------

    def match_class(self, cls: Any, keywords: tuple[str, ...], positional: int) -> Any:
        """Decide the class of a class pattern before ``match`` reads attributes through it.

        A class pattern reads attributes of the subject with no ``_getattr_``: the names
        come from the pattern's keywords and the first ``positional`` entries of
        ``cls.__match_args__``. Names the attribute guard decides specially (``_`` names,
        dunders, ``format``, ``save``, ``get`` …) are refused, and so is a class whose
        metaclass the sandbox made with its own ``__instancecheck__``.
        """
        if not isinstance(cls, type) or (not keywords and not positional):
            return cls
        for meta in type(cls).__mro__:
            if "__instancecheck__" in meta.__dict__ and (meta in _CREATED_CLASSES or self._is_sandbox_routine(meta.__dict__["__instancecheck__"])):
                raise self.violation(
                    "HG302", "class pattern",
                    f"the class pattern {cls.__name__}(...) uses a metaclass with its own __instancecheck__, made by sandboxed code",
                    policy_rule="sandbox.match", hint="match against ordinary classes",
                )
        names = list(keywords)
        if positional:
            match_args = type.__getattribute__(cls, "__match_args__") if hasattr(cls, "__match_args__") else ()
            if isinstance(match_args, tuple):
                names.extend(match_args[:positional])
        for name in names:
            if not isinstance(name, str) or name[:1] == "_" or name in FRAME_ATTRIBUTES or name in _SPECIAL_ATTRIBUTES:
                raise self.violation(
                    "HG302", "class pattern", f"the class pattern {cls.__name__}(...) reads the attribute {name!r}, which the attribute guard decides",
                    policy_rule="sandbox.match", hint=f"read the attribute as {cls.__name__}_value.{name} in the case body",
                )
        return cls

    def match_values(self, *values: Any) -> bool:
        """Value-check what a ``case`` pattern captured (the compiled guard of every case); always true."""
        for value in values:
            self._check_deep(value, "a match pattern")
        return True

    def call(self, function: Any) -> Any:
        """Return what ``function(...)`` calls (the compiled form of every call): the callee value-checked.

        Sandboxed functions, the sandbox's own builtins and instances of already seen types
        pass as they are; any other callee is value-checked, and so are the routines and
        classes passed to it, since a library (``map``, ``sorted``) may call them in turn.
        """
        kind = type(function)
        if kind in self._inert_types or id(function) in self._trusted_callees or self._sandboxed_callable(function):
            return function
        if kind is types.FunctionType and function.__globals__ is _GUARDS_GLOBALS:
            return function  # a guarded stand-in this module made (str.format, dict.get, a withheld builtin)
        checked = self.check_value(function, "a call")
        guards = self

        def checked_call(*args: Any, **kwargs: Any) -> Any:
            for value in (*args, *kwargs.values()):
                if type(value) not in guards._inert_types and not isinstance(value, types.ModuleType):
                    guards.check_value(value, "an argument of a call")
            return checked(*args, **kwargs)

        return checked_call

    def check_arguments(self, *values: Any) -> bool:
        """Value-check the arguments a sandboxed function or lambda received (compiled into its start); always true."""
        for value in values:
            if type(value) not in self._inert_types:
                self._check_deep(value, "an argument")
        return True

    def _check_deep(self, value: Any, how: str) -> Any:
        """Apply the value check to ``value`` and to the items of a list or tuple and the values of a dict."""
        kind = type(value)
        if kind is list or kind is tuple:
            for item in value:
                self._check_deep(item, how)
        elif kind is dict:
            for item in value.values():
                self._check_deep(item, how)
        elif kind not in self._inert_types:
            self.check_value(value, how)
        return value

    def _container_reader(self, obj: Any, name: str, default: tuple[Any, ...]) -> Any:
        """Return ``obj.get`` (``pop``, ``values`` …) with what it returns value-checked, as ``obj[key]`` is."""
        try:
            method = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if self._sandboxed_callable(method) or not callable(method):
            return self.check_value(method, f"{type(obj).__name__}.{name}")
        method = self.check_value(method, f"{type(obj).__name__}.{name}")
        guards = self
        how = f"{type(obj).__name__}.{name}()"

        def checked_read(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if name in ("values", "items"):
                for item in list(result):
                    guards._check_deep(item, how)
                return result
            return guards._check_deep(result, how)

        return checked_read

    def check_namespace(self, name: Any, namespace: Any, *, how: str) -> None:
        """Apply the class-body rules to a namespace given to ``type()`` or another metaclass."""
        if not isinstance(namespace, (dict, types.MappingProxyType)):
            return
        for key in namespace:
            if isinstance(key, str) and (key in _NAMESPACE_DENIED or key in FRAME_ATTRIBUTES):
                raise self.violation(
                    "HG304", "class creation", f"{how} for class {name!r} sets {key!r}, which a class of sandboxed code may not define",
                    policy_rule="sandbox.class_body", hint=f"remove {key} from the class",
                )

    def _check_created_class(self, cls: type) -> None:
        """Refuse denied dunders in a new class and run its foreign callables inside the sandbox."""
        self.check_namespace(cls.__name__, cls.__dict__, how="the class statement")
        for key, value in list(cls.__dict__.items()):
            wrapped = self._sandboxed_value(value, binds=True)
            if wrapped is not value:
                type.__setattr__(cls, key, wrapped)
                if isinstance(wrapped, functools.cached_property):
                    wrapped.__set_name__(cls, key)

    def _sandboxed_value(self, value: Any, *, binds: bool = False) -> Any:
        """Return ``value``, or a wrapper that runs it inside this load's sandbox if it is a foreign callable.

        Host code may call a stored callable later (``model.eval()`` calls ``self.train``)
        with no sandboxed frame on the stack, where the audit hook would not act; the
        wrapper's frame is sandboxed, so the hook decides what the callable does.
        ``binds`` keeps method binding as it was for a class attribute: a wrapped builtin or
        partial becomes a ``staticmethod``.
        """
        kind = type(value)
        if kind is staticmethod or kind is classmethod:
            inner = self._sandboxed_value(value.__func__)
            return value if inner is value.__func__ else kind(inner)
        if kind is property:
            parts = [self._sandboxed_value(part) if part is not None else None for part in (value.fget, value.fset, value.fdel)]
            return value if parts == [value.fget, value.fset, value.fdel] else property(*parts, value.__doc__)
        if kind is functools.partialmethod:
            inner = self._sandboxed_value(value.func)
            return value if inner is value.func else functools.partialmethod(inner, *value.args, **value.keywords)
        if kind is functools.cached_property:
            inner = self._sandboxed_value(value.func)
            return value if inner is value.func else functools.cached_property(inner)
        if not isinstance(value, _FOREIGN_CALLABLE_KINDS) or self._sandboxed_callable(value):
            return value
        wrapper = self._call_in_sandbox(value)
        if binds and not isinstance(value, types.FunctionType):
            return staticmethod(wrapper)
        return wrapper

    def _call_in_sandbox(self, value: Any) -> Callable[..., Any]:
        wrapper = self._make_runner(value, self.context.locate_caller())
        functools.update_wrapper(wrapper, value, assigned=("__name__", "__qualname__", "__doc__"), updated=())
        return wrapper

    def _stored(self, target: Any, value: Any) -> Any:
        """Return what ``target.attr = value`` stores: foreign callables wrapped by :meth:`_sandboxed_value`."""
        return self._sandboxed_value(value, binds=isinstance(target, type))

    def _register_class(self, cls: type) -> None:
        """Record a class sandboxed code made with ``type()`` or a metaclass, as ``__build_class__`` does."""
        if cls in _CREATED_CLASSES:
            return
        self._check_created_class(cls)
        _CREATED_CLASSES[cls] = self.context

    # --- attribute reads ---------------------------------------------------------------

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        """Guarded ``getattr``: the compiled form of every ``obj.name`` and the ``getattr`` builtin."""
        if type(name) is not str:
            raise TypeError(f"attribute name must be a string, not {type(name).__name__}")
        if name[:1] == "_" or name in FRAME_ATTRIBUTES:
            self._check_attribute_name(obj, name)
        if isinstance(obj, types.ModuleType):
            return self._module_getattr(obj, name, default)
        if name in _SPECIAL_ATTRIBUTES:
            return self._special_getattr(obj, name, default)
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if type(value) in self._inert_types:
            return value
        return self.check_value(value, f"{type(obj).__name__}.{name}")

    def _special_getattr(self, obj: Any, name: str, default: tuple[Any, ...]) -> Any:
        """Decide the attribute names that need more than the value check (see ``_SPECIAL_ATTRIBUTES``)."""
        if name in _CALLBACK_REGISTRARS or name in _FILE_WRITING_METHODS:
            return self._special_method(obj, name, default)
        if name in _CONTAINER_READERS:
            return self._container_reader(obj, name, default)
        if name in ("format", "format_map"):
            if isinstance(obj, str):
                return self._safe_format(obj, name)
            if obj is str:
                return self._safe_unbound_format(name)
        if name == "register" and isinstance(obj, type) and getattr(obj, "__module__", "") == "hubguard.auto":
            raise self.violation(
                "HG313", "registry write",
                f"{obj.__name__}.register refused: remote code may not change the process-wide Auto registry",
                policy_rule="code.registry_write",
                hint="remove the register call; hubguard maps the repository's auto_map itself",
            )
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if name in ("__setattr__", "__delattr__"):
            return self._guarded_setattr_method(obj, name, value)
        if name == "__getattr__":
            return self._guarded_getattr_method(value)
        return self.check_value(value, f"{type(obj).__name__}.{name}")

    def _check_attribute_name(self, obj: Any, name: str) -> None:
        if name in FRAME_ATTRIBUTES:
            raise self.violation(
                "HG302", "attribute read", f"reading the frame or code attribute {name!r} is refused",
                policy_rule=f'dunders.deny["{name}"]', hint="model code never needs frame or code attributes",
            )
        if _is_dunder(name):
            rule = self.policy.decide_dunder(name)
            if name not in READABLE_DUNDERS or rule.verdict == "deny":
                key = rule.key if rule.verdict == "deny" else "sandbox.dunders"
                raise self.violation(
                    "HG302", "attribute read", f"reading the special attribute {name!r} is refused",
                    policy_rule=key, hint="use the public attribute or method instead of the interpreter internal",
                )
            if rule.verdict == "warn":
                self._warn("dunder", name, rule.key)
            if name == "__dict__" or (name in ("__getattr__", "__setattr__", "__delattr__") and isinstance(obj, types.ModuleType)):
                raise self.violation(
                    "HG302", "attribute read", f"reading {name!r} of a module is refused",
                    policy_rule="sandbox.dunders", hint="read module members by name",
                )
            return
        if self._is_hubguard_internal(obj):
            raise self.violation(
                "HG303", "attribute read",
                f"reading the private attribute {name!r} of hubguard's {getattr(obj, '__name__', obj)!r} is refused",
                policy_rule="sandbox.private", hint="use hubguard's public API",
            )

    def _is_hubguard_internal(self, obj: Any) -> bool:
        """Tell whether ``obj`` is a hubguard module or class, whose private state remote code may not touch."""
        if isinstance(obj, types.ModuleType):
            owner = obj.__name__
        elif isinstance(obj, type):
            owner = getattr(obj, "__module__", "")
        else:
            return False
        return isinstance(owner, str) and owner.split(".")[0] == "hubguard" and not self._owned(obj)

    def _module_getattr(self, module: types.ModuleType, name: str, default: tuple[Any, ...]) -> Any:
        if self._is_sandbox_module(module):
            if default:
                return getattr(module, name, default[0])
            return getattr(module, name)
        # Allowed module attributes are decided once; a hit needs the same value again.
        cache_key = (id(module), name)
        cached = self._module_attribute_cache.get(cache_key)
        if cached is not None and cached[0] is module:
            value = getattr(module, name, _MISSING)
            if value is cached[1]:
                return value
        label = self._module_label(module)
        dotted = f"{label}.{name}"
        verdict, key, reason = self.decide_name(dotted)
        if verdict == "deny":
            wrapper = self._safe_call_wrapper(dotted, module, name)
            if wrapper is not None:
                return wrapper
            raise self.violation(
                "HG303", "attribute read", f"{dotted} is refused: {reason}",
                policy_rule=key, hint=f"remove the use of {dotted}; the sandbox refuses it however it is spelled",
            )
        try:
            value = getattr(module, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if verdict == "warn":
            self._warn("attribute", dotted, key)
        # A chain the policy lists by name (transformers.AutoConfig) is not re-decided
        # by where its value is defined (hubguard.auto); the sandbox's own list still is.
        listed = verdict == "allow" and not key.startswith("modules.unknown")
        checked = self.check_value(value, dotted, reached_as=dotted, listed=listed)
        if checked is value:
            self._module_attribute_cache[cache_key] = (module, value)
        return checked

    def _safe_call_wrapper(self, dotted: str, module: types.ModuleType, name: str) -> Callable[..., Any] | None:
        """Return a wrapper that allows calls with the policy's required literal keywords (``torch.load(weights_only=True)``)."""
        required = self.policy.safe_keywords.get(dotted) if hasattr(self.policy, "safe_keywords") else None
        if not required or _floor_rule(dotted) is not None:
            return None
        target = getattr(module, name)
        guards = self

        @functools.wraps(target)
        def call_with_required_keywords(*args: Any, **kwargs: Any) -> Any:
            for keyword, expected in required.items():
                if keyword not in kwargs or kwargs[keyword] != expected or type(kwargs[keyword]) is not type(expected):
                    raise guards.violation(
                        "HG314", "call", f"{dotted} needs {keyword}={expected!r}",
                        policy_rule=f'calls.safe_keywords["{dotted}"]',
                        hint=f"call {dotted}(..., {keyword}={expected!r})",
                    )
            return target(*args, **kwargs)

        return call_with_required_keywords

    def _special_method(self, obj: Any, name: str, default: tuple[Any, ...]) -> Any:
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if self._owned(obj) or (type(obj) in _CREATED_CLASSES and name not in _CALLBACK_REGISTRARS and self._owned(value)):
            return value
        if type(obj) in _PLAIN_TYPES:
            return value  # str.replace, list.copy: plain values open no files and take no callbacks
        if name in _FILE_WRITING_METHODS:
            raise self.violation(
                "HG307", "file write", f"{type(obj).__name__}.{name} opens or writes files",
                policy_rule="sandbox.file_write",
                hint="model code may not open or write files; weights come from the verified snapshot",
            )
        guards = self

        def register_sandboxed_callback(*args: Any, **kwargs: Any) -> Any:
            for argument in list(args) + list(kwargs.values()):
                if callable(argument) and not guards._sandboxed_callable(argument):
                    raise guards.violation(
                        "HG304", "callback", f"{name} got {argument!r}, a callable that is not sandboxed code",
                        policy_rule="sandbox.callbacks",
                        hint="register functions defined in the repository; they stay guarded when called later",
                    )
            return value(*args, **kwargs)

        return register_sandboxed_callback

    def _guarded_setattr_method(self, obj: Any, name: str, method: Any) -> Callable[..., Any]:
        guards = self
        bound_to = getattr(method, "__self__", None)
        if bound_to is not None and not isinstance(bound_to, type):
            def bound_setattr(attribute: str, *value: Any) -> Any:
                guards.check_write(bound_to, attribute)
                return method(attribute, *(guards._stored(bound_to, item) for item in value))

            return bound_setattr

        def unbound_setattr(target: Any, attribute: str, *value: Any) -> Any:
            guards.check_write(target, attribute)
            return method(target, attribute, *(guards._stored(target, item) for item in value))

        return unbound_setattr

    def _guarded_getattr_method(self, method: Any) -> Callable[..., Any]:
        guards = self

        def checked_getattr(*args: Any) -> Any:
            return guards.check_value(method(*args), "__getattr__")

        return checked_getattr

    def _safe_format(self, template: str, name: str) -> Callable[..., str]:
        formatter = _GuardedFormatter(self)
        if name == "format":
            return lambda *args, **kwargs: formatter.vformat(template, args, kwargs)
        return lambda mapping: formatter.vformat(template, (), mapping)

    def _safe_unbound_format(self, name: str) -> Callable[..., str]:
        formatter = _GuardedFormatter(self)
        if name == "format":
            return lambda template, *args, **kwargs: formatter.vformat(template, args, kwargs)
        return lambda template, mapping: formatter.vformat(template, (), mapping)

    # --- items and iteration ------------------------------------------------------------

    def getitem(self, obj: Any, key: Any) -> Any:
        """Guarded ``obj[key]``."""
        value = obj[key]
        if type(value) in self._inert_types:
            return value
        return self.check_value(value, f"{type(obj).__name__}[{key!r}]")

    def getiter(self, obj: Any) -> Iterator[Any]:
        """Guarded iteration: each item gets the value check."""
        return map(self._check_item, obj)

    def _check_item(self, value: Any) -> Any:
        if type(value) in self._inert_types:
            return value
        return self.check_value(value, "iteration")

    def unpack_sequence(self, value: Any, spec: dict[str, Any], _getiter_: Callable[..., Any]) -> list[Any]:
        """Guarded ``a, b = value``."""
        return guarded_unpack_sequence(value, spec, self.getiter)

    def iter_unpack_sequence(self, value: Any, spec: dict[str, Any], _getiter_: Callable[..., Any]) -> Iterator[Any]:
        """Guarded ``for a, b in value``."""
        return guarded_iter_unpack_sequence(value, spec, self.getiter)

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        """Evaluate ``target op= value`` with Python's in-place semantics (tensors stay in place)."""
        return _INPLACE_OPERATORS[op](target, value)

    def apply(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call with ``*args``/``**kwargs`` spread; the spread values get the value check, as iteration does."""
        for value in args:
            if type(value) not in self._inert_types:
                self.check_value(value, "a *args value")
        for value in kwargs.values():
            if type(value) not in self._inert_types:
                self.check_value(value, "a **kwargs value")
        return function(*args, **kwargs)

    # --- writes ----------------------------------------------------------------------

    def write(self, obj: Any) -> Any:
        """Guard ``obj.attr = v``, ``obj[k] = v`` and ``del``: only objects the sandbox may change pass.

        Plain containers are returned as they are; other objects come back in a
        :class:`_CheckedWriter`, which wraps stored foreign callables.
        """
        kind = type(obj)
        if kind is dict or kind is list or kind is set:
            return obj
        if kind in self._inert_types or self._owned(obj):
            return _CheckedWriter(self, obj)
        if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            label = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
            kind = "function"
            if isinstance(obj, types.ModuleType):
                kind = "module"
            elif isinstance(obj, type):
                kind = "class"
            raise self.violation(
                "HG304", "attribute write", f"changing the {kind} {label!r}, which the sandbox did not create, is refused",
                policy_rule="code.monkey_patch", hint="subclass or wrap the object in the repository's own code instead",
            )
        return _CheckedWriter(self, obj)

    def check_write(self, obj: Any, name: str) -> None:
        """Apply the write guard and the attribute-name rules to ``setattr(obj, name, ...)``."""
        if not isinstance(name, str):
            raise TypeError(f"attribute name must be a string, not {type(name).__name__}")
        if _is_dunder(name) and name not in ("__doc__", "__name__", "__qualname__") or name in FRAME_ATTRIBUTES:
            raise self.violation(
                "HG304", "attribute write", f"assigning the special attribute {name!r} is refused",
                policy_rule="sandbox.dunders", hint="assign ordinary attributes only",
            )
        self.write(obj)

    # --- guarded builtins ---------------------------------------------------------------

    def _setattr(self, obj: Any, name: str, value: Any) -> None:
        self.check_write(obj, name)
        setattr(obj, name, self._stored(obj, value))

    def _delattr(self, obj: Any, name: str) -> None:
        self.check_write(obj, name)
        delattr(obj, name)

    def _hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        except SandboxViolation:
            return False
        return True

    def _build_class(self, function: Callable[..., Any], name: str, *bases: Any, **keywords: Any) -> Any:
        cls = builtins.__build_class__(function, name, *bases, **keywords)  # type: ignore[attr-defined]  # the real class builder
        if isinstance(cls, type):
            record = self.context.record_of_function(function)
            type.__setattr__(cls, "__hubguard_snapshot__", self.context.snapshot)
            type.__setattr__(cls, "__hubguard_module_path__", record.path if record is not None else None)
            self._check_created_class(cls)
            _CREATED_CLASSES[cls] = self.context
        return cls

    def _make_builtins(self) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for name in dir(builtins):
            if _is_dunder(name):
                continue
            reason = WITHHELD_BUILTINS.get(name)
            rule = self.policy.decide_builtin(name)
            if reason is None and rule.verdict == "deny" and name not in ("getattr", "setattr", "hasattr", "delattr"):
                reason = "is refused by the policy"
            if reason is not None:
                table[name] = self._withheld(name, reason, rule.key if rule.verdict == "deny" else f'sandbox.withheld["{name}"]')
                continue
            table[name] = getattr(builtins, name)
        table.update(
            {
                "getattr": self.getattr,
                "setattr": self._setattr,
                "delattr": self._delattr,
                "hasattr": self._hasattr,
                "__build_class__": self._build_class,
                "type": self._type,
                "next": self._checked_result(next),
                "max": self._checked_result(max),
                "min": self._checked_result(min),
                "__import__": self.import_module,
                "__name__": "builtins",
            }
        )
        return table

    def _checked_result(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``function`` with its result value-checked: ``next``, ``max`` and ``min`` pick items out of iterables."""
        guards = self
        how = f"{function.__name__}()"

        def checked(*args: Any, **kwargs: Any) -> Any:
            return guards._check_deep(function(*args, **kwargs), how)

        checked.__name__ = checked.__qualname__ = function.__name__
        return checked

    def _withheld(self, name: str, reason: str, policy_rule: str) -> Callable[..., Any]:
        """Return a stand-in that raises a clear refusal instead of a bare ``NameError``."""
        guards = self

        def withheld_builtin(*args: Any, **kwargs: Any) -> Any:
            raise guards.violation(
                "HG305", "builtin", f"the builtin {name}() is withheld from sandboxed code: it {reason}",
                policy_rule=policy_rule, hint=f"remove the call to {name}()",
            )

        withheld_builtin.__name__ = name
        withheld_builtin.__qualname__ = name
        return withheld_builtin

    def _install_substitutes(self) -> None:
        """Replace library functions that change their argument in place by versions that apply the write guard."""
        import dataclasses

        guards = self

        def checked_update_wrapper(wrapper: Any, wrapped: Any, *args: Any, **kwargs: Any) -> Any:
            guards.write(wrapper)
            return functools.update_wrapper(wrapper, wrapped, *args, **kwargs)

        def checked_wraps(wrapped: Any, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
            def decorate(wrapper: Any) -> Any:
                return checked_update_wrapper(wrapper, wrapped, *args, **kwargs)

            return decorate

        def checked_class_decorator(decorator: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(decorator)
            def apply(cls: Any = None, /, **kwargs: Any) -> Any:
                if cls is None:
                    return lambda target: apply(target, **kwargs)
                guards.write(cls)
                return decorator(cls, **kwargs)

            return apply

        def checked_reference(reference_type: Callable[..., Any]) -> Callable[..., Any]:
            def create(target: Any, callback: Any = None) -> Any:
                if callback is not None and not guards._sandboxed_callable(callback):
                    raise guards.violation(
                        "HG304", "callback", f"{reference_type.__name__} got the callback {callback!r}, which is not sandboxed code",
                        policy_rule="sandbox.callbacks",
                        hint="pass a function defined in the repository; it stays guarded when the collector calls it",
                    )
                return reference_type(target) if callback is None else reference_type(target, callback)

            return create

        def checked_type_new(metaclass: Any, *args: Any, **kwargs: Any) -> Any:
            if len(args) == 3:
                guards.check_namespace(args[0], args[2], how="type.__new__()")
            created = type.__new__(metaclass, *args, **kwargs)
            if isinstance(created, type) and len(args) == 3:
                guards._register_class(created)
            return created

        def checked_type_call(cls: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(cls, type) and issubclass(cls, type) and len(args) == 3:
                guards.check_namespace(args[0], args[2], how="type.__call__()")
            created = type.__call__(cls, *args, **kwargs)
            if isinstance(created, type) and len(args) == 3:
                guards._register_class(created)
            return created

        self._substitutes.update(
            {
                id(type): self._type,
                id(type.__new__): checked_type_new,
                id(type.__call__): checked_type_call,
                id(weakref.ref): checked_reference(weakref.ref),
                id(weakref.proxy): checked_reference(weakref.proxy),
                id(weakref.WeakMethod): checked_reference(weakref.WeakMethod),
                id(functools.update_wrapper): checked_update_wrapper,
                id(functools.wraps): checked_wraps,
                id(dataclasses.dataclass): checked_class_decorator(dataclasses.dataclass),
                id(functools.total_ordering): checked_class_decorator(functools.total_ordering),
            }
        )

    # --- imports -----------------------------------------------------------------------

    def import_module(
        self,
        name: str,
        globals: dict[str, Any] | None = None,  # noqa: A002  # the __import__ protocol names it so
        locals: Any = None,  # noqa: A002  # the __import__ protocol names it so
        fromlist: Iterable[str] | None = (),
        level: int = 0,
    ) -> Any:
        """Guarded ``__import__``: relative imports stay in the snapshot, absolute ones follow the policy."""
        fromlist = tuple(fromlist or ())
        record = self.context.record_of_globals(globals)
        if level > 0:
            return self.context.import_relative(record, name, fromlist, level)
        if not isinstance(name, str) or not name:
            raise TypeError("module name must be a non-empty string")
        _, line = self.context.locate_caller()
        guarded = record is not None and line in record.guarded_import_lines
        names = [name] + [f"{name}.{item}" for item in fromlist]
        for dotted in names:
            verdict, key, reason = self.decide_name(dotted, guarded=guarded)
            if verdict == "deny":
                raise self.violation(
                    "HG301", "import", f"import of {dotted!r} refused: {reason}",
                    policy_rule=key, hint=f"remove the import of {dotted}, or allow it in a policy file",
                    error_class=SandboxImportViolation,
                )
            if verdict == "warn":
                self._warn("import", dotted, key)
        module = self._resolve_absolute(name, fromlist)
        if not fromlist:
            top = name.split(".")[0]
            return self._resolve_absolute(top, ()) if top != name else module
        values = {}
        for item in fromlist:
            try:
                values[item] = self._module_getattr(module, item, ())
            except AttributeError:
                raise ImportError(f"cannot import name {item!r} from {name!r}", name=name) from None
        return _ImportedNames(name, values)

    def _resolve_absolute(self, name: str, fromlist: tuple[str, ...]) -> types.ModuleType:
        if name == "transformers" or name.startswith("transformers."):
            from hubguard.compat import transformers as compat

            return compat.resolve(name)
        from hubguard.sandbox import audithook

        # The audit hook stands aside for the library's own module code; sandboxed code that
        # runs inside the import (a __del__ called by the garbage collector) is still decided.
        with audithook.library_import(sys._getframe()):
            return builtins.__import__(name, None, None, fromlist, 0)


class _GuardedFormatter(string.Formatter):
    """``str.format`` for sandboxed code: each ``{0.attr}`` and ``{0[key]}`` step goes through the guards."""

    def __init__(self, guards: Guards) -> None:
        self.guards = guards

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        first, rest = _formatter_field_name_split(field_name)
        value = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            value = self.guards.getattr(value, key) if is_attribute else self.guards.getitem(value, key)
        return value, first


_GUARDS_GLOBALS = globals()
_formatter_field_name_split = _string.formatter_field_name_split  # the parser str.format itself uses


__all__ = ["CONTEXT_KEY", "SANDBOX_DENIED", "WITHHELD_BUILTINS", "Guards"]
