"""Create modules from a snapshot's verified bytes in a private namespace, never from disk.

Every snapshot gets the package ``hubguard_modules.<escaped source>.c<code id>``:

* ``<escaped source>`` is an injective escaping of the source kind and location into one
  identifier (``acme/tiny-resnet-v1.5`` and ``acme/tiny-resnet-v1_5`` stay apart); a local
  folder is named by its absolute path, so ``"."`` never yields an empty name;
* ``<code id>`` is :meth:`Snapshot.code_id`, the hash over the whole code closure, so any
  changed byte gives a new namespace and unchanged content returns the cached modules
  (the very same class objects).

Relative imports resolve only to files of the snapshot's code closure; absolute imports
never look at the snapshot, so a repository file named ``torch.py`` cannot shadow torch.
``sys.path`` is never changed.
"""

from __future__ import annotations

import linecache
import logging
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any

from hubguard.errors import SandboxImportViolation, SandboxViolation
from hubguard.loader.closure import SOURCE_SUFFIX
from hubguard.loader.snapshot import Snapshot
from hubguard.sandbox.compiler import CompiledModule, compile_module
from hubguard.sandbox.guards import CONTEXT_KEY, RUNNER_FILENAME, Guards

logger = logging.getLogger(__name__)

ROOT_PACKAGE = "hubguard_modules"

_LOCK = threading.RLock()


def escape_component(text: str) -> str:
    """Return an identifier that encodes ``text`` injectively.

    ASCII letters and digits stay; every other character becomes ``_`` plus a code
    letter (``_`` -> ``_u``, ``/`` -> ``_s``, ``-`` -> ``_d``, ``.`` -> ``_p``) or ``_x``
    plus six hex digits. Because ``_`` always starts an escape, decoding is unambiguous.
    """
    escaped = []
    for char in text:
        if char.isascii() and char.isalnum():
            escaped.append(char)
        elif char == "_":
            escaped.append("_u")
        elif char == "/":
            escaped.append("_s")
        elif char == "-":
            escaped.append("_d")
        elif char == ".":
            escaped.append("_p")
        else:
            escaped.append(f"_x{ord(char):06x}")
    return "".join(escaped)


def source_component(snapshot: Snapshot) -> str:
    """Return the namespace component for a snapshot's source: kind plus escaped location."""
    location = snapshot.source.location
    if snapshot.source.kind == "local":
        location = os.path.abspath(location)
    component = f"{snapshot.source.kind}_{escape_component(location)}"
    if snapshot.source.endpoint:
        component += f"_at_{escape_component(snapshot.source.endpoint)}"
    return component


def namespace_of(snapshot: Snapshot) -> str:
    """Return the package name that contains a snapshot's modules."""
    return f"{ROOT_PACKAGE}.{source_component(snapshot)}.c{snapshot.code_id()}"


@dataclass
class ModuleRecord:
    """One repository file of a loaded snapshot: its compiled code and, once run, its module."""

    path: str
    name: str
    compiled: CompiledModule
    is_package: bool
    module: types.ModuleType | None = None

    @property
    def guarded_import_lines(self) -> frozenset[int]:
        return self.compiled.guarded_import_lines

    @property
    def package_parts(self) -> list[str]:
        """The folder parts relative imports in this file resolve against (a package's own folder for ``__init__.py``)."""
        return self.path.split("/")[:-1]


@dataclass
class SandboxContext:
    """Everything the guards of one load need: the snapshot, policy, report sink and modules."""

    snapshot: Snapshot
    policy: Any
    namespace: str
    repo_label: str
    report: Any = None
    records: dict[str, ModuleRecord] = field(default_factory=dict)
    by_filename: dict[str, ModuleRecord] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    guards: Guards | None = None
    created: list[str] = field(default_factory=list)

    # --- used by the guards and the audit hook -------------------------------------

    def record_event(self, event: dict[str, Any]) -> None:
        """Append a runtime event to this load's events and to the report given at import."""
        self.events.append(event)
        sink = self.report
        if sink is None:
            return
        if isinstance(sink, list):
            sink.append(event)
            return
        add = getattr(sink, "add_runtime_event", None)
        if add is not None:
            add(event)

    def locate_caller(self) -> tuple[str, int]:
        """Return ``(repository path, line)`` of the innermost frame running this load's code."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get(CONTEXT_KEY) is self:
                record = self.by_filename.get(frame.f_code.co_filename)
                if record is not None:
                    return record.path, frame.f_lineno
                if frame.f_code.co_filename == RUNNER_FILENAME:
                    # A stored foreign callable that host code called later: name where it was stored.
                    return frame.f_locals["stored_at"]
            frame = frame.f_back  # type: ignore[assignment]  # None ends the walk
        return "<unknown>", 0

    def record_of_globals(self, module_globals: Any) -> ModuleRecord | None:
        if not isinstance(module_globals, dict) or module_globals.get(CONTEXT_KEY) is not self:
            return None
        record = self.records.get(_path_of_name(self, module_globals.get("__name__")))
        if record is None or record.module is None or record.module.__dict__ is not module_globals:
            return None
        return record

    def record_of_function(self, function: Any) -> ModuleRecord | None:
        code = getattr(function, "__code__", None)
        return self.by_filename.get(code.co_filename) if code is not None else None

    def import_relative(self, record: ModuleRecord | None, name: str, fromlist: tuple[str, ...], level: int) -> Any:
        """Resolve ``from .name import a, b`` inside the snapshot's code closure only."""
        if record is None:
            raise self.guards.violation(  # type: ignore[union-attr]  # set right after construction
                "HG301", "import", "a relative import was made with forged module globals",
                policy_rule="sandbox.relative_import", hint="use ordinary relative import statements",
                error_class=SandboxImportViolation,
            )
        base = record.package_parts
        climb = level - 1
        if climb > len(base):
            raise self._outside_closure("." * level + name)
        package = base[: len(base) - climb] if climb else list(base)
        target_parts = package + (name.split(".") if name else [])
        module = self._import_parts(target_parts, spelled="." * level + name)
        for item in fromlist:
            if item == "*" or hasattr(module, item):
                continue
            sub_path = self._file_of(target_parts + [item])
            if sub_path is not None:
                self._import_parts(target_parts + [item], spelled=f"{'.' * level}{name}.{item}")
        return module

    # --- module creation -----------------------------------------------------------

    def _file_of(self, parts: list[str]) -> str | None:
        if not parts:
            init = "__init__.py"
            return init if init in self.records else None
        as_file = "/".join(parts) + SOURCE_SUFFIX
        if as_file in self.records:
            return as_file
        as_package = "/".join(parts + ["__init__.py"])
        if as_package in self.records:
            return as_package
        return None

    def _outside_closure(self, spelled: str) -> SandboxImportViolation:
        return self.guards.violation(  # type: ignore[union-attr, return-value]  # set right after construction
            "HG301", "import", f"relative import {spelled!r} does not name a file of the verified code closure",
            policy_rule="sandbox.relative_import", hint="import only files of the repository that the audit covered",
            error_class=SandboxImportViolation,
        )

    def _import_parts(self, parts: list[str], *, spelled: str) -> types.ModuleType:
        """Run (once) and return the module for folder/file ``parts``, with its parent packages."""
        for depth in range(1, len(parts)):
            self._ensure_package(parts[:depth])
        if not parts:
            return self._ensure_package([])
        path = self._file_of(parts)
        if path is None:
            if self._is_folder(parts):
                return self._ensure_package(parts)
            raise self._outside_closure(spelled)
        return self.run(path)

    def _is_folder(self, parts: list[str]) -> bool:
        prefix = "/".join(parts) + "/"
        return any(path.startswith(prefix) for path in self.records)

    def _ensure_package(self, parts: list[str]) -> types.ModuleType:
        """Return the package module for a folder; runs its ``__init__.py`` when the closure has one."""
        init_path = "/".join(parts + ["__init__.py"])
        if init_path in self.records:
            return self.run(init_path)
        name = ".".join([self.namespace, *parts])
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__path__ = []  # type: ignore[attr-defined]  # marks the module as a package
            module.__package__ = name
            sys.modules[name] = module
            self.created.append(name)
            _link_parent(name, module)
        return module

    def run(self, path: str) -> types.ModuleType:
        """Execute one repository file as a module (once); on failure nothing of it stays in ``sys.modules``."""
        record = self.records[path]
        if record.module is not None:
            return record.module
        module = types.ModuleType(record.name)
        package = record.name if record.is_package else record.name.rpartition(".")[0]
        module.__dict__.update(
            {
                "__file__": record.compiled.filename,
                "__package__": package,
                "__builtins__": self.guards.builtins,  # type: ignore[union-attr]  # set right after construction
                CONTEXT_KEY: self,
                "_getattr_": self.guards.getattr,  # type: ignore[union-attr]
                "_getitem_": self.guards.getitem,  # type: ignore[union-attr]
                "_getiter_": self.guards.getiter,  # type: ignore[union-attr]
                "_write_": self.guards.write,  # type: ignore[union-attr]
                "_inplacevar_": self.guards.inplacevar,  # type: ignore[union-attr]
                "_apply_": self.guards.apply,  # type: ignore[union-attr]
                "_unpack_sequence_": self.guards.unpack_sequence,  # type: ignore[union-attr]
                "_iter_unpack_sequence_": self.guards.iter_unpack_sequence,  # type: ignore[union-attr]
                "_match_class_": self.guards.match_class,  # type: ignore[union-attr]
                "_match_values_": self.guards.match_values,  # type: ignore[union-attr]
                "_check_arguments_": self.guards.check_arguments,  # type: ignore[union-attr]
                "_call_": self.guards.call,  # type: ignore[union-attr]
            }
        )
        if record.is_package:
            module.__path__ = []  # type: ignore[attr-defined]  # marks the module as a package
        created_before = len(self.created)
        record.module = module
        sys.modules[record.name] = module
        self.created.append(record.name)
        try:
            exec(record.compiled.code, module.__dict__)  # noqa: S102  # restricted-compiled, guarded code of the verified snapshot
        except BaseException:
            self._discard(created_before)
            raise
        _link_parent(record.name, module)
        return module

    def _discard(self, created_before: int) -> None:
        """Remove the modules created since ``created_before`` (a failed import leaves nothing behind)."""
        for name in self.created[created_before:]:
            sys.modules.pop(name, None)
            path = _path_of_name(self, name)
            record = self.records.get(path) if path is not None else None
            if record is not None:
                record.module = None
        del self.created[created_before:]


def _path_of_name(context: SandboxContext, name: Any) -> str | None:
    if name == context.namespace:
        return "__init__.py"
    if not isinstance(name, str) or not name.startswith(context.namespace + "."):
        return None
    dotted = name[len(context.namespace) + 1 :]
    parts = dotted.split(".")
    as_file = "/".join(parts) + SOURCE_SUFFIX
    if as_file in context.records:
        return as_file
    return "/".join(parts + ["__init__.py"])


def _link_parent(name: str, module: types.ModuleType) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is None:
        parent = types.ModuleType(parent_name)
        parent.__path__ = []  # type: ignore[attr-defined]  # marks the module as a package
        sys.modules[parent_name] = parent
        if "." in parent_name:
            _link_parent(parent_name, parent)
    setattr(parent, child, module)


class SandboxedCode:
    """The modules of one snapshot, imported in the sandbox.

    ``namespace`` is the package that contains them; ``events`` lists every runtime refusal
    and warning of this load (also sent to the ``report`` given to :func:`import_snapshot`).
    """

    def __init__(self, context: SandboxContext) -> None:
        self._context = context
        self.namespace = context.namespace
        self.snapshot = context.snapshot
        self.loaded = True

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._context.events

    def module(self, module_path: str) -> types.ModuleType:
        """Import (once) and return the module of a repository path such as ``modeling_x.py``.

        Raises:
            KeyError: the path is not part of the snapshot's code closure.
            SandboxViolation: the module's code attempted a refused operation.
        """
        if module_path not in self._context.records:
            raise KeyError(f"{module_path} is not in the code closure of {self._context.repo_label}")
        with _LOCK:
            parts = module_path.removesuffix(SOURCE_SUFFIX).split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for depth in range(1, len(parts)):
                self._context._ensure_package(parts[:depth])
            return self._context.run(module_path)

    def get_class(self, module_path: str, class_name: str) -> type:
        """Return the class ``class_name`` defined in ``module_path``.

        Raises:
            KeyError: the path is not in the code closure.
            AttributeError: the module defines no class of that name.
        """
        module = self.module(module_path)
        value = module.__dict__.get(class_name)
        if not isinstance(value, type):
            raise AttributeError(f"{module_path} of {self._context.repo_label} defines no class {class_name!r}")
        return value

    def unload(self) -> None:
        """Remove this snapshot's modules from ``sys.modules``; live objects keep their guards."""
        with _LOCK:
            unload_namespace(self.namespace)
            self.loaded = False


_LOADED: dict[str, SandboxedCode] = {}


def unload_namespace(namespace: str) -> None:
    """Remove every module under ``namespace`` and forget the cached load."""
    for name in [name for name in sys.modules if name == namespace or name.startswith(namespace + ".")]:
        del sys.modules[name]
    parent_name, _, child = namespace.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is not None and getattr(parent, child, None) is not None:
        delattr(parent, child)
    cached = _LOADED.pop(namespace, None)
    if cached is not None:
        for record in cached._context.records.values():
            record.module = None


def import_snapshot(snapshot: Snapshot, policy: Any, *, report: Any = None) -> SandboxedCode:
    """Compile a snapshot's code closure for the sandbox and return a handle to its modules.

    Every file of ``snapshot.code_paths`` is compiled now, so one call lists every refused
    construct; modules run when :meth:`SandboxedCode.get_class` (or an import) first
    needs them. A second call for the same source, code id and effective policy (equal
    ``policy.sha256``) returns the cached handle, whose classes are the same objects, and
    sends later runtime events to the new ``report``.

    Args:
        snapshot: the verified snapshot; only its bytes are read.
        policy: a :class:`hubguard.audit.policy.Policy` (``decide_module``,
            ``decide_builtin``, ``decide_dunder``).
        report: where runtime refusals and warnings go: a list (events are appended as
            dicts) or any object with an ``add_runtime_event(dict)`` method.

    Raises:
        SandboxViolation: HG306, a file uses constructs the sandbox refuses.
    """
    from hubguard.sandbox import audithook

    namespace = namespace_of(snapshot)
    with _LOCK:
        cached = _LOADED.get(namespace)
        if cached is not None and _policy_identity(cached._context.policy) == _policy_identity(policy):
            cached._context.report = report
            logger.debug("sandbox cache hit for %s", namespace)
            return cached
        if cached is not None:
            logger.info("reloading %s under another policy", namespace)
            unload_namespace(namespace)
        context = _build_context(snapshot, policy, namespace, report)
        if getattr(getattr(policy, "sandbox", None), "audit_hook", True):
            audithook.install()
            audithook.track(context)
        loaded = SandboxedCode(context)
        _LOADED[namespace] = loaded
        logger.info("sandboxed %d modules of %s as %s", len(context.records), context.repo_label, namespace)
        return loaded


def _policy_identity(policy: Any) -> object:
    """Return what makes two policies decide alike: the effective policy's sha256 when it has one."""
    return getattr(policy, "sha256", None) or id(policy)


def _build_context(snapshot: Snapshot, policy: Any, namespace: str, report: Any) -> SandboxContext:
    revision = snapshot.revision.commit
    short = revision.split(":")[-1][:12]
    repo_label = f"{snapshot.source.display()}@{short}"
    context = SandboxContext(snapshot=snapshot, policy=policy, namespace=namespace, repo_label=repo_label, report=report)
    context.guards = Guards(context)

    def dunder_denied(name: str) -> bool:
        return policy.decide_dunder(name).verdict == "deny"

    refusals: list[SandboxViolation] = []
    for path in snapshot.code_paths:
        parts = path.removesuffix(SOURCE_SUFFIX).split("/")
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join([namespace, *parts])
        filename = f"hubguard://{repo_label}/{path}"
        source = snapshot.read_text(path)
        try:
            compiled = compile_module(source, path, filename=filename, repo=repo_label, dunder_denied=dunder_denied)
        except SandboxViolation as refusal:
            refusals.append(refusal)
            continue
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        record = ModuleRecord(path=path, name=name, compiled=compiled, is_package=is_package)
        context.records[path] = record
        context.by_filename[filename] = record
    if len(refusals) == 1:
        raise refusals[0]
    if refusals:
        # One error for the whole closure, so a single run shows every file to fix.
        first = refusals[0]
        raise SandboxViolation(
            "; ".join(refusal.message for refusal in refusals),
            rule_id="HG306", path=first.path, line=first.line, operation="compile", repo=repo_label,
            policy_rule="sandbox.compile", hint=first.hint,
        )
    return context


__all__ = [
    "ROOT_PACKAGE",
    "SandboxContext",
    "SandboxedCode",
    "escape_component",
    "import_snapshot",
    "namespace_of",
    "source_component",
    "unload_namespace",
]
