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
    "open": "touches the host file system; model files come from the verified snapshot",
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
}

# Members of ``os`` and ``sys`` sandboxed code may reach; every other member is refused.
_OS_MEMBERS = frozenset(
    {"path", "sep", "altsep", "extsep", "pathsep", "linesep", "curdir", "pardir", "devnull", "name",
     "environ", "getenv", "fspath", "PathLike", "cpu_count", "getpid", "getcwd", "listdir", "scandir", "walk"}
)
_SYS_MEMBERS = frozenset({"platform", "version_info", "version", "maxsize", "byteorder", "float_info", "hexversion", "implementation"})
_MEMBER_ALLOWLISTS = {"os": _OS_MEMBERS, "sys": _SYS_MEMBERS}

# Module names that stand for a public name remote code spells differently.
_MODULE_LABELS = {"posixpath": "os.path", "ntpath": "os.path", "genericpath": "os.path"}

# Method names that open or write files. They are refused on objects the sandbox did not
# create, because a stored bound method could write later, when no sandboxed frame is on
# the stack.
_FILE_WRITING_METHODS = frozenset(
    {"tofile", "write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "unlink", "rmdir",
     "rename", "replace", "chmod", "savez", "save_state", "open", "save", "dump", "mkdir", "makedirs"}
)

# Attribute names of objects that register callbacks; the callbacks must be sandboxed code.
_CALLBACK_REGISTRARS = frozenset(
    {"register_hook", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
     "register_full_backward_pre_hook", "register_backward_hook", "register_state_dict_pre_hook",
     "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_state_dict_post_hook",
     "_register_state_dict_hook", "_register_load_state_dict_pre_hook", "register_post_accumulate_grad_hook",
     "register_multi_grad_hook", "add_done_callback", "call_soon", "call_later"}
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
_SPECIAL_ATTRIBUTES = _CALLBACK_REGISTRARS | _FILE_WRITING_METHODS | {
    "format", "format_map", "register", "__setattr__", "__delattr__", "__getattr__",
}

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
        self.builtins = self._make_builtins()
        self._install_substitutes()

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
        self._value_cache[id(value)] = (value, decision)
        return decision

    # --- value checks ---------------------------------------------------------------

    def check_value(self, value: Any, how: str, *, reached_as: str | None = None, listed: bool = False) -> Any:
        """Return ``value`` if sandboxed code may hold it, a guarded substitute, or raise."""
        kind = type(value)
        if kind in self._inert_types:
            return value
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
        if isinstance(value, _ROUTINE_TYPES) or isinstance(value, type):
            if self._is_sandbox_routine(value):
                return value
            substitute = self._substitutes.get(id(value))
            if substitute is not None:
                return substitute
            if getattr(value, "__module__", None) == "builtins":
                return self._check_builtin_value(value, how)
            decision = self._canonical_decision(value)
            if decision is not None and not (listed and decision[1].startswith("modules.")):
                raise self.violation(
                    "HG303", "attribute read", f"{how} reaches {decision[2]}",
                    policy_rule=decision[1], hint="remove the call; the sandbox refuses it wherever it is reached",
                )
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
                return method(attribute, *value)

            return bound_setattr

        def unbound_setattr(target: Any, attribute: str, *value: Any) -> Any:
            guards.check_write(target, attribute)
            return method(target, attribute, *value)

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
        """Call with ``*args``/``**kwargs`` spread; the callee was already reached through the guards."""
        return function(*args, **kwargs)

    # --- writes ----------------------------------------------------------------------

    def write(self, obj: Any) -> Any:
        """Guard ``obj.attr = v``, ``obj[k] = v`` and ``del``: only objects the sandbox may change pass."""
        if type(obj) in self._inert_types or self._owned(obj):
            return obj
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
        return obj

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
        setattr(obj, name, value)

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
                "__import__": self.import_module,
                "__name__": "builtins",
            }
        )
        return table

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

        self._substitutes.update(
            {
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


_formatter_field_name_split = _string.formatter_field_name_split  # the parser str.format itself uses


__all__ = ["CONTEXT_KEY", "SANDBOX_DENIED", "WITHHELD_BUILTINS", "Guards"]
