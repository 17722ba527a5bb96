"""hubguard's own static rules: one AST pass per file over the exact text the interpreter runs.

The pass resolves names through the file's scopes before it matches them against the
policy: ``import torch as t; t.hub.load(...)`` is ``torch.hub.load``, ``from torch import
load as l; l(p)`` is ``torch.load``, and ``getattr(os, "system")`` is ``os.system``. A local
binding shadows a builtin or an import only in the scope that binds it. Every import is
recorded with where it sits: unguarded, guarded by ``try``, conditional under ``if``, or
lazy inside a function. Where it sits changes the dependency report. It never changes the
policy decision for a name that a rule covers.

Nothing here imports or runs the audited code.
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import io
import logging
import math
import re
import tokenize
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from hubguard.audit.findings import RULES, Confidence, Finding, Severity, severity_for
from hubguard.audit.policy import NOT_LITERAL, Policy, Rule

logger = logging.getLogger(__name__)

Placement = Literal["unguarded", "guarded", "conditional", "lazy", "relative"]

_BUILTIN_NAMES = frozenset(dir(builtins))
# Builtins that are also module globals spelled as dunders; they are decided as dunders.
_BUILTINS_DECIDED_AS_BUILTINS = frozenset({"__import__", "__build_class__", "__debug__"})
_DYNAMIC_ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
_EXEC_SINKS = ("eval", "exec", "compile", "marshal.*", "pickle.*", "types.CodeType", "types.FunctionType", "importlib.*")
_DECODERS = frozenset(
    {
        "b64decode", "b32decode", "b16decode", "a85decode", "b85decode", "decodebytes", "urlsafe_b64decode",
        "decompress", "unhexlify", "a2b_base64", "a2b_hex", "fromhex", "decode", "loads", "frombytes",
    }
)  # fmt: skip
_NOSEC = re.compile(r"#.*\bnosec\b", re.IGNORECASE)
_BLOB_ALPHABET = re.compile(r"^[A-Za-z0-9+/=_\-\\x]+$")
_SNIPPET_LIMIT = 200
_RANK = {"allow": 0, "warn": 1, "deny": 2}
_DOTTED_STRING = re.compile(r"[A-Za-z_][\w.]*")
_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
_FORMAT_ATTRIBUTE = re.compile(r"[.\[]\s*(\w+)")
_DUNDER_TOKEN = re.compile(r"__[A-Za-z]\w*?__")
# Calls that change the class or function passed as their first argument.
_MUTATING_CALLS = frozenset(
    {
        "functools.update_wrapper", "functools.total_ordering", "dataclasses.dataclass", "enum.unique",
        "typing.final", "typing.runtime_checkable", "abc.ABCMeta.register",
    }
)  # fmt: skip

# Prefixes (fnmatch patterns, matched like policy names) that pick a more precise rule id
# than "import/name not allowed" for a refused dotted name.
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HG216", ("transformers.Auto*.register", "hubguard.Auto*.register")),
    (
        "HG211",
        (
            "pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "jsonpickle",
            "torch.load", "torch.serialization", "torch.package", "numpy.load", "numpy.lib.npyio", "pandas.read_pickle",
        ),
    ),
    (
        "HG212",
        (
            "ctypes", "_ctypes", "cffi", "torch.utils.cpp_extension", "torch.ops.load_library",
            "torch.classes.load_library", "numpy.ctypeslib",
        ),
    ),
    (
        "HG213",
        (
            "subprocess", "multiprocessing", "torch.multiprocessing", "pty", "signal", "os.system", "os.popen",
            "os.exec*", "os.spawn*", "os.posix_spawn*", "os.fork*", "os.kill*", "os._exit", "os.abort",
        ),
    ),
    (
        "HG214",
        (
            "socket", "ssl", "urllib", "urllib3", "http", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
            "telnetlib", "xmlrpc", "paramiko", "webbrowser", "asyncio", "torch.hub", "torch.distributed.rpc",
            "huggingface_hub", "transformers.utils.hub", "timm.models.hub", "timm.models._hub",
        ),
    ),
    (
        "HG215",
        (
            "importlib", "imp", "runpy", "code", "codeop", "pkgutil", "zipimport", "builtins", "sys.modules",
            "sys.path", "sys.meta_path", "sys.path_hooks", "sys._getframe", "sys.settrace", "sys.setprofile",
            "inspect", "gc", "typing.get_type_hints", "typing.ForwardRef", "typing._eval_type", "string.Formatter",
            "types.FunctionType", "types.CodeType", "types.LambdaType",
            "types.FrameType", "transformers.dynamic_module_utils",
        ),
    ),
)  # fmt: skip

_BUILTIN_CWE = {"eval": 95, "exec": 95, "compile": 94, "__import__": 470, "open": 73, "breakpoint": 489, "input": 20}


@dataclass(frozen=True)
class ImportRecord:
    """One imported name: the dotted name, where the statement sits, and the policy decision.

    ``module`` is the full name (``torch.nn`` for ``import torch.nn``, ``torch.load`` for
    ``from torch import load``); ``top_level`` is its first component. Relative imports
    have ``placement == "relative"`` and no policy decision.
    """

    path: str
    line: int
    module: str
    top_level: str
    placement: Placement
    verdict: str
    policy_key: str

    def to_dict(self) -> dict[str, object]:
        """Return the record as JSON-ready data."""
        return {
            "path": self.path,
            "line": self.line,
            "module": self.module,
            "top_level": self.top_level,
            "placement": self.placement,
            "verdict": self.verdict,
            "policy_key": self.policy_key,
        }


@dataclass(frozen=True)
class FileScan:
    """The result of scanning one file: findings, imports, and the number of lines."""

    path: str
    findings: tuple[Finding, ...]
    imports: tuple[ImportRecord, ...]
    lines: int
    parsed: bool


def category_rule(dotted: str, default: str, rule: Rule | None = None) -> str:
    """Return the most precise rule id for a refused dotted name (``default`` when no category fits).

    With ``rule``, the name the deciding policy entry names is categorised when it differs
    (``torch.sys.modules`` is decided by ``sys.modules``).
    """
    named = rule.key.partition('["')[2].rstrip('"]') if rule is not None else ""
    if named and not named.endswith("*") and not dotted.startswith(named):
        dotted = named
    parts = dotted.split(".")
    for rule_id, patterns in _CATEGORIES:
        for pattern in patterns:
            depth = pattern.count(".") + 1
            if len(parts) >= depth and fnmatch.fnmatchcase(".".join(parts[:depth]), pattern):
                return rule_id
    return default


def _entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(count / total * math.log2(count / total) for count in counts.values())


def _max_depth(tree: ast.AST) -> int:
    """Return the nesting depth of an AST, computed without recursion."""
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))
    return deepest


def _literal_keywords(call: ast.Call) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        values[keyword.arg] = keyword.value.value if isinstance(keyword.value, ast.Constant) else NOT_LITERAL
    return values


def _outcome(rule: Rule) -> str:
    """Return how a message states a decision: denied, not on the allowlist, or needs review."""
    if rule.key in {"modules.unknown", "modules.unknown_guarded", "builtins.unknown", "dunders.unknown"}:
        return "is not on the allowlist" if rule.verdict == "deny" else "is not on the allowlist (warning)"
    return "is denied" if rule.verdict == "deny" else "needs review"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


# --- scopes ---------------------------------------------------------------------------------


def _bound_names(scope_node: ast.AST) -> set[str]:
    """Return the names a scope binds, not counting nested scopes (and minus ``global``/``nonlocal``)."""
    bound: set[str] = set()
    declared_outside: set[str] = set()
    if isinstance(scope_node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        arguments = scope_node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            bound.add(arg.arg)
        if arguments.vararg:
            bound.add(arguments.vararg.arg)
        if arguments.kwarg:
            bound.add(arguments.kwarg.arg)
        body: list[ast.AST] = [scope_node.body] if isinstance(scope_node, ast.Lambda) else list(scope_node.body)  # type: ignore[list-item]  # Lambda.body is one expression
    elif isinstance(scope_node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        body = []
        for generator in scope_node.generators:
            body.append(generator.target)
    else:
        body = list(getattr(scope_node, "body", []))
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_outside.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return bound - declared_outside


@dataclass
class _Binding:
    target: str | None  # dotted import target, or None for an ordinary local value
    guarded: bool = False
    module: bool = False  # bound by an "import x" statement, so the value is a module


class _Scope:
    def __init__(self, kind: str, bound: set[str]) -> None:
        self.kind = kind
        self.bound = bound
        self.aliases: dict[str, _Binding] = {}


# --- the visitor ------------------------------------------------------------------------------


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, text: str, policy: Policy) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.policy = policy
        self.findings: list[Finding] = []
        self.imports: list[ImportRecord] = []
        self.scopes: list[_Scope] = []
        self.function_depth = 0
        self.try_depth = 0
        self.if_depth = 0
        self._seen: set[tuple[str, int, int, str]] = set()
        self._chain_handled: set[int] = set()
        # Modules imported with "from m import *": their names are resolved as m.name.
        self.star_modules: list[tuple[str, bool]] = []
        # Loop variables that iterate over a literal tuple, list or set of strings.
        self._loop_strings: list[dict[str, tuple[str, ...]]] = []
        self._docstrings: set[int] = set()

    # findings -------------------------------------------------------------------------------

    def add(
        self,
        node: ast.AST | None,
        rule_id: str,
        rule: Rule,
        message: str,
        *,
        confidence: Confidence = Confidence.HIGH,
        cwe: int | None = None,
    ) -> None:
        if rule.verdict == "allow":
            return
        line = getattr(node, "lineno", 0) if node is not None else 0
        column = getattr(node, "col_offset", -1) + 1 if node is not None else 0
        key = (rule_id, line, column, message)
        if key in self._seen:
            return
        self._seen.add(key)
        snippet = self.lines[line - 1].strip()[:_SNIPPET_LIMIT] if 0 < line <= len(self.lines) else ""
        self.findings.append(
            Finding(
                path=self.path,
                line=line,
                column=column,
                rule_id=rule_id,
                severity=severity_for(rule.verdict),
                confidence=confidence,
                cwe=cwe if cwe is not None else RULES[rule_id].cwe,
                message=message,
                snippet=snippet,
                policy_key=rule.key,
                verdict=rule.verdict,  # type: ignore[arg-type]  # "allow" returned above
            )
        )

    # scopes and name resolution -------------------------------------------------------------

    def _push(self, kind: str, node: ast.AST) -> None:
        self.scopes.append(_Scope(kind, _bound_names(node)))

    def _lookup(self, name: str) -> _Binding | None | Literal["builtin"]:
        """Return the binding of ``name`` as seen from the current scope, or ``"builtin"``."""
        innermost = len(self.scopes) - 1
        for index in range(innermost, -1, -1):
            scope = self.scopes[index]
            if scope.kind == "class" and index != innermost:
                continue  # class bodies are not visible from methods
            if name in scope.bound or name in scope.aliases:
                return scope.aliases.get(name, _Binding(None))
        return "builtin"

    def _bind(self, name: str, binding: _Binding) -> None:
        scope = self.scopes[-1]
        # A name declared global inside a function binds in the module scope.
        if scope.kind == "function" and name not in scope.bound:
            self.scopes[0].aliases[name] = binding
            return
        scope.aliases[name] = binding

    def resolve(self, node: ast.AST) -> tuple[str, bool] | None:
        """Return the dotted name an expression refers to (through import aliases), and its guarded flag."""
        attributes: list[str] = []
        current = node
        while True:
            if isinstance(current, ast.Attribute):
                attributes.append(current.attr)
                current = current.value
            elif (
                isinstance(current, ast.Call)
                and isinstance(current.func, ast.Name)
                and current.func.id == "getattr"
                and self._lookup("getattr") == "builtin"
                and len(current.args) >= 2
                and isinstance(current.args[1], ast.Constant)
                and isinstance(current.args[1].value, str)
            ):
                attributes.append(current.args[1].value)
                current = current.args[0]
            else:
                break
        if not isinstance(current, ast.Name):
            return None
        binding = self._lookup(current.id)
        if binding == "builtin" and self.star_modules:
            module, guarded = self.star_modules[-1]
            return ".".join([module, current.id, *reversed(attributes)]), guarded
        if binding == "builtin" or binding is None or binding.target is None:
            return None
        return ".".join([binding.target, *reversed(attributes)]), binding.guarded

    def decide(self, dotted: str, *, guarded: bool = False) -> Rule:
        """Decide a resolved name, also under the rule of any module it reaches through an attribute.

        ``torch.sys.modules`` and ``os.path.os.system`` reach ``sys`` and ``os`` through
        attributes of allowed modules; the stricter of the two decisions wins.
        """
        rule = self.policy.decide_module(dotted, guarded=guarded)
        parts = dotted.split(".")
        # Components inside the prefix a rule named were decided by that rule on purpose
        # (transformers.utils.logging is hubguard's logging, not the standard library's).
        matched = rule.key.partition('["')[2].rstrip('"]')
        first = matched.count(".") + 1 if matched else 1
        for index in range(first, len(parts)):
            head = self.policy.decide_module(parts[index], guarded=guarded)
            if head.key in {"modules.unknown", "modules.unknown_guarded"}:
                continue
            inner = self.policy.decide_module(".".join(parts[index:]), guarded=guarded)
            if _RANK[inner.verdict] > _RANK[rule.verdict]:
                rule = inner
        return rule

    def placement(self) -> Placement:
        if self.function_depth:
            return "lazy"
        if self.try_depth:
            return "guarded"
        if self.if_depth:
            return "conditional"
        return "unguarded"

    # structure ------------------------------------------------------------------------------

    def _note_docstring(self, body: list[ast.stmt]) -> None:
        if body and _is_docstring(body[0]):
            self._docstrings.add(id(body[0].value))  # type: ignore[attr-defined]  # checked by _is_docstring

    def _prebind_imports(self, body: list[ast.stmt], *, guarded: bool) -> None:
        """Bind the scope's import aliases before its statements are visited.

        A function may use a name that a later statement imports (``def f(): torch.load(p)``
        above ``import torch``); binding first lets the function's body resolve it.
        """
        pending = [(statement, guarded) for statement in body]
        while pending:
            statement, inside = pending.pop()
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        self._bind(alias.asname, _Binding(alias.name, inside, module=True))
                    else:
                        top = alias.name.split(".")[0]
                        self._bind(top, _Binding(top, inside, module=True))
            elif isinstance(statement, ast.ImportFrom):
                for alias in statement.names:
                    if alias.name == "*":
                        continue
                    target = None if statement.level else f"{statement.module}.{alias.name}"
                    self._bind(alias.asname or alias.name, _Binding(target, inside))
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            else:
                nested = isinstance(statement, (ast.Try, ast.TryStar, ast.If))
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(statement, field, []):
                        if isinstance(child, ast.ExceptHandler):
                            pending.extend((inner, True) for inner in child.body)
                        elif isinstance(child, ast.stmt):
                            pending.append((child, inside or nested))

    def visit_Module(self, node: ast.Module) -> None:
        self._note_docstring(node.body)
        self._push("module", node)
        self._prebind_imports(node.body, guarded=False)
        self._check_top_level(node.body)
        self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    self.visit(arg.annotation)
            if node.returns is not None:
                self.visit(node.returns)
        self._push("function", node)
        self.function_depth += 1
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        if not isinstance(node, ast.Lambda):
            self._note_docstring(node.body)
            self._prebind_imports(node.body, guarded=True)
        for statement in body:
            self.visit(statement)
        self.function_depth -= 1
        self.scopes.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expression)
        self._note_docstring(node.body)
        self._push("class", node)
        if not self.function_depth:
            self._check_top_level(node.body, in_class=True)
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> None:
        self.visit(node.generators[0].iter)
        self._push("function", node)
        for index, generator in enumerate(node.generators):
            if index:
                self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scopes.pop()

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_DictComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        """Visit a loop, remembering a loop variable that takes only literal strings.

        ``for name in ("weight", "bias"): getattr(module, name)`` then counts as literal
        names, the way ``getattr(module, "weight")`` does.
        """
        values = _literal_strings(node.iter)
        if values is not None and isinstance(node.target, ast.Name) and _rebinds(node.body, node.target.id):
            values = None  # the body may replace the literal with any string
        if values is None or not isinstance(node.target, ast.Name):
            self.generic_visit(node)
            return
        self.visit(node.iter)
        self.visit(node.target)
        self._loop_strings.append({node.target.id: values})
        for statement in node.body:
            self.visit(statement)
        self._loop_strings.pop()
        for statement in node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def _loop_literals(self, node: ast.AST) -> tuple[str, ...] | None:
        if not isinstance(node, ast.Name):
            return None
        for frame in reversed(self._loop_strings):
            if node.id in frame:
                return frame[node.id]
        return None

    def _check_loop_attribute(self, node: ast.Call, name: str, values: tuple[str, ...]) -> None:
        """Decide ``getattr(x, name)`` for each literal the loop variable takes."""
        self._mark_chain(node.args[0])
        for value in values:
            rule = self.policy.decide_dunder(value)
            if rule.key != "dunders":
                self.add(node, "HG206", rule, f"{name}() reaches attribute '{value}', which {_outcome(rule)}")
            target = self.resolve(node.args[0])
            if target is None:
                continue
            if name in {"setattr", "delattr"}:
                self.add(node, "HG207", self.policy.decide_construct("monkey_patch"), f"{name}() changes imported '{target[0]}.{value}'")
            elif name == "getattr":
                dotted = f"{target[0]}.{value}"
                rule = self.decide(dotted, guarded=target[1])
                self.add(node, category_rule(dotted, "HG202", rule), rule, f"use of '{dotted}' {_outcome(rule)}")

    def visit_Try(self, node: ast.Try) -> None:
        self.try_depth += 1
        self.generic_visit(node)
        self.try_depth -= 1

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self.if_depth += 1
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)
        self.if_depth -= 1

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for name in node.kwd_attrs:
            rule = self.policy.decide_dunder(name)
            if rule.key != "dunders":
                self.add(node, "HG206", rule, f"class pattern reads attribute '{name}', which {_outcome(rule)}")
        self.generic_visit(node)

    # imports --------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        placement = self.placement()
        guarded = placement != "unguarded"
        for alias in node.names:
            rule = self.decide(alias.name, guarded=guarded)
            self._record_import(node, alias.name, placement, rule)
            if alias.asname:
                self._bind(alias.asname, _Binding(alias.name, guarded, module=True))
            else:
                top = alias.name.split(".")[0]
                self._bind(top, _Binding(top, guarded, module=True))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        placement = self.placement()
        guarded = placement != "unguarded"
        if node.level:
            for alias in node.names:
                name = "." * node.level + ".".join(part for part in (node.module, alias.name) if part)
                self.imports.append(ImportRecord(self.path, node.lineno, name, "", "relative", "allow", "closure"))
                if alias.name != "*":
                    self._bind(alias.asname or alias.name, _Binding(None))
            return
        module = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                rule = self.decide(module, guarded=guarded)
                self._record_import(node, module, placement, rule)
                self.add(node, "HG218", self.policy.decide_construct("star_import"), f"'from {module} import *' hides which names are used")
                if self.policy.is_partial(module):
                    self.add(
                        node,
                        "HG219",
                        self.policy.decide_construct("module_value"),
                        f"'from {module} import *' imports every member of the partly allowed module '{module}'",
                    )
                self.star_modules.append((module, guarded))
                continue
            dotted = f"{module}.{alias.name}"
            rule = self.decide(dotted, guarded=guarded)
            # A name with safe call keywords (torch.load) is decided at each call instead.
            self._record_import(node, dotted, placement, rule, report=dotted not in self.policy.safe_keywords)
            self._bind(alias.asname or alias.name, _Binding(dotted, guarded))

    def _record_import(self, node: ast.stmt, dotted: str, placement: Placement, rule: Rule, *, report: bool = True) -> None:
        if not report:
            # Decided at each call from the literal keywords (calls.safe_keywords).
            rule = Rule("per-call", f'calls.safe_keywords["{dotted}"]')  # type: ignore[arg-type]  # report-only verdict
        self.imports.append(
            ImportRecord(self.path, node.lineno, dotted, dotted.split(".")[0], placement, rule.verdict, rule.key)
        )
        if not report:
            return
        self.add(node, category_rule(dotted, "HG201"), rule, f"import of '{dotted}' ({placement}) {_outcome(rule)}")

    # names, attributes, calls ---------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        binding = self._lookup(node.id)
        if binding == "builtin":
            self._check_builtin_name(node)
            if self.star_modules and id(node) not in self._chain_handled:
                self._check_chain(node)
            return
        if binding is not None and binding.target is not None and id(node) not in self._chain_handled:
            if self.policy.is_partial(binding.target) or binding.module:
                # Once passed around, the module's members can no longer be resolved here.
                self.add(
                    node,
                    "HG219",
                    self.policy.decide_construct("module_value"),
                    f"module '{binding.target}' is used as a value; use its members by name instead",
                )

    def _check_builtin_name(self, node: ast.Name) -> None:
        name = node.id
        if _is_dunder(name) and name not in _BUILTINS_DECIDED_AS_BUILTINS:
            rule = self.policy.decide_dunder(name)
            self.add(node, "HG206", rule, f"reference to '{name}' {_outcome(rule)}")
            return
        if name not in _BUILTIN_NAMES:
            return  # an undefined name fails at run time; nothing to decide
        rule = self.policy.decide_builtin(name)
        self.add(node, "HG203", rule, f"builtin '{name}' {_outcome(rule)}", cwe=_BUILTIN_CWE.get(name))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        rule = self.policy.decide_dunder(node.attr)
        if rule.key != "dunders":
            self.add(node, "HG206", rule, f"attribute '{node.attr}' {_outcome(rule)}")
        if id(node) not in self._chain_handled and isinstance(node.ctx, ast.Load):
            self._check_chain(node)
        self._mark_chain(node.value)
        self.visit(node.value)

    def _mark_chain(self, node: ast.AST) -> None:
        """Mark the inner links of an attribute chain so only the outermost one is decided."""
        current = node
        while isinstance(current, ast.Attribute):
            self._chain_handled.add(id(current))
            current = current.value
        if isinstance(current, ast.Name):
            self._chain_handled.add(id(current))

    def _check_chain(self, node: ast.AST) -> None:
        resolved = self.resolve(node)
        if resolved is None:
            return
        dotted, guarded = resolved
        rule = self.decide(dotted, guarded=guarded)
        if rule.verdict == "allow":
            return
        # The import statement already reported a refusal of the same rule.
        base = self._base_target(node)
        if base is not None and self.decide(base, guarded=guarded).key == rule.key and not self.policy.is_partial(base):
            return
        if dotted in self.policy.safe_keywords:
            safe = "(allowed only when called with " + ", ".join(
                f"{name}={value!r}" for name, value in self.policy.safe_keywords[dotted].items()
            ) + ")"
        else:
            safe = ""
        message = f"use of '{dotted}' {_outcome(rule)}"
        self.add(node, category_rule(dotted, "HG202", rule), rule, f"{message} {safe}".rstrip())

    def _base_target(self, node: ast.AST) -> str | None:
        current = node
        while isinstance(current, ast.Attribute):
            current = current.value
        if isinstance(current, ast.Call):
            return None
        if isinstance(current, ast.Name):
            binding = self._lookup(current.id)
            if binding != "builtin" and binding is not None:
                return binding.target
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        handled = False
        if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
            receiver = ast.unparse(func.value) if len(self.lines) < 100_000 else "…"
            self.add(
                node,
                "HG217",
                self.policy.decide_construct("nested_from_pretrained"),
                f"'{receiver}.from_pretrained(...)' loads another model from inside remote code",
            )
        if isinstance(func, ast.Attribute) and func.attr == "register":
            receiver_name = func.value.attr if isinstance(func.value, ast.Attribute) else getattr(func.value, "id", "")
            if receiver_name.startswith("Auto"):
                self.add(
                    node,
                    "HG216",
                    self.policy.decide_construct("registry_write"),
                    f"'{receiver_name}.register(...)' rewires the process-wide Auto registry",
                )
                handled = True
        resolved = self.resolve(func) if isinstance(func, (ast.Attribute, ast.Name)) else None
        if resolved is not None and not handled:
            dotted, _ = resolved
            if dotted in self.policy.safe_keywords:
                if self.policy.safe_call(dotted, _literal_keywords(node)):
                    handled = True
                else:
                    self._check_safe_call(node, dotted, resolved[1])
                    handled = True
        if handled:
            self._mark_chain(func)
            if isinstance(func, ast.Name):
                self._chain_handled.add(id(func))
        if isinstance(func, ast.Name) and self._lookup(func.id) == "builtin":
            self._check_builtin_call(node, func.id)
        self._check_mutating_call(node, resolved[0] if resolved is not None else None)
        self._check_exec_sink(node)
        self.generic_visit(node)

    def _check_mutating_call(self, node: ast.Call, dotted: str | None) -> None:
        """Report calls that change an imported module or class passed as their first argument."""
        func = node.func
        attribute_setter = isinstance(func, ast.Attribute) and func.attr in {"__setattr__", "__delattr__"}
        if not node.args or not (attribute_setter or dotted in _MUTATING_CALLS):
            return
        target = self.resolve(node.args[0])
        if target is None:
            return
        name = func.attr if isinstance(func, ast.Attribute) else dotted
        self.add(node, "HG207", self.policy.decide_construct("monkey_patch"), f"{name}() changes imported '{target[0]}'")

    def _check_safe_call(self, node: ast.Call, dotted: str, guarded: bool) -> None:
        rule = self.decide(dotted, guarded=guarded)
        required = ", ".join(f"{name}={value!r}" for name, value in self.policy.safe_keywords[dotted].items())
        self.add(node, category_rule(dotted, "HG202"), rule, f"call of '{dotted}' without {required} {_outcome(rule)}")

    def _check_builtin_call(self, node: ast.Call, name: str) -> None:
        if name in _DYNAMIC_ATTRIBUTE_BUILTINS and len(node.args) >= 2:
            attribute = node.args[1]
            loop_values = self._loop_literals(attribute)
            if loop_values is not None:
                self._check_loop_attribute(node, name, loop_values)
                return
            if not (isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)):
                self.add(
                    node,
                    "HG204",
                    self.policy.decide_construct("dynamic_attribute"),
                    f"{name}() with a non-literal attribute name can reach any attribute",
                )
                return
            literal = attribute.value  # a special attribute name is reported by visit_Constant
            self._mark_chain(node.args[0])  # the object is the base of a resolved chain, not a value
            if name == "getattr" and literal in {"__setattr__", "__delattr__"}:
                self.add(node, "HG207", self.policy.decide_construct("monkey_patch"), f"getattr(…, '{literal}') obtains a setter that can patch imported objects")
            target = self.resolve(node.args[0])
            if target is None:
                return
            dotted = f"{target[0]}.{literal}"
            if name in {"setattr", "delattr"}:
                self.add(node, "HG207", self.policy.decide_construct("monkey_patch"), f"{name}() changes imported '{dotted}'")
            elif name == "getattr":
                self._check_chain(node)

    def _check_exec_sink(self, node: ast.Call) -> None:
        func = node.func
        sink: str | None = None
        if isinstance(func, ast.Name) and self._lookup(func.id) == "builtin" and func.id in {"eval", "exec", "compile"}:
            sink = func.id
        else:
            resolved = self.resolve(func) if isinstance(func, (ast.Attribute, ast.Name)) else None
            if resolved is not None and any(fnmatch.fnmatchcase(resolved[0], pattern) for pattern in _EXEC_SINKS):
                sink = resolved[0]
        if sink is None:
            return
        for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
            for inner in ast.walk(argument):
                if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) and inner.func.attr in _DECODERS:
                    self.add(
                        node,
                        "HG209",
                        self.policy.decide_construct("encoded_exec"),
                        f"decoded data ({inner.func.attr}) is passed to {sink}()",
                    )
                    return

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add) and self._chr_count(node) >= 2:
            self.add(node, "HG209", self.policy.decide_construct("chr_identifier"), "a string is built from chr() calls", confidence=Confidence.MEDIUM)
            return  # the whole expression is reported once
        self.generic_visit(node)

    def _chr_count(self, node: ast.AST) -> int:
        count = 0
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, ast.Call) and isinstance(current.func, ast.Name) and current.func.id == "chr":
                count += 1
            elif isinstance(current, ast.BinOp):
                stack.extend((current.left, current.right))
        return count

    def _check_join_of_chr(self, node: ast.Call) -> bool:
        if not (isinstance(node.func, ast.Attribute) and node.func.attr == "join" and node.args):
            return False
        return any(
            isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "chr"
            for inner in ast.walk(node.args[0])
        )

    # assignments ------------------------------------------------------------------------------

    def _is_module_value(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Name):
            return False
        binding = self._lookup(node.id)
        return binding != "builtin" and binding is not None and binding.module

    def visit_Assign(self, node: ast.Assign) -> None:
        resolved = self.resolve(node.value) if isinstance(node.value, (ast.Name, ast.Attribute)) else None
        if resolved is not None and isinstance(node.value, ast.Name) and all(isinstance(t, ast.Name) for t in node.targets):
            self._chain_handled.add(id(node.value))  # "t = torch" makes an alias, tracked below
        self.visit(node.value)
        for target in node.targets:
            self._check_target(target)
            if isinstance(target, ast.Name) and resolved is not None:
                self._bind(target.id, _Binding(resolved[0], resolved[1], module=self._is_module_value(node.value)))
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        self._check_target(node.target)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self._check_target(node.target)
        self.visit(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target)
            self.visit(target)

    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_target(element)
            return
        if isinstance(target, ast.Starred):
            self._check_target(target.value)
            return
        if isinstance(target, ast.Subscript):
            container = self.resolve(target.value)
            if container is not None:
                self.add(
                    target,
                    "HG207",
                    self.policy.decide_construct("monkey_patch"),
                    f"item assignment into '{container[0]}' changes an imported object",
                )
            return
        if not isinstance(target, ast.Attribute):
            return
        resolved = self.resolve(target)
        if resolved is None:
            return
        self.add(
            target,
            "HG207",
            self.policy.decide_construct("monkey_patch"),
            f"assignment to '{resolved[0]}' changes an imported module or class",
        )

    # strings --------------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str):
            self._check_attribute_strings(node, value)
        if isinstance(value, bytes):
            try:
                value = value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                return
        if not isinstance(value, str) or len(value) < self.policy.code.min_entropy_length:
            return
        settings = self.policy.code
        rule = self.policy.decide_construct("long_string")
        if len(value) > settings.max_string_length:
            self.add(node, "HG210", rule, f"string literal of {len(value):,} characters", confidence=Confidence.MEDIUM)
            return
        whitespace = sum(1 for char in value if char.isspace())
        if whitespace / len(value) >= 0.01:
            return
        entropy = _entropy(value)
        if entropy >= settings.max_entropy_bits or _BLOB_ALPHABET.match(value):
            self.add(
                node,
                "HG210",
                rule,
                f"encoded-looking string literal ({len(value):,} characters, {entropy:.1f} bits per character)",
                confidence=Confidence.MEDIUM,
            )

    def _check_attribute_strings(self, node: ast.Constant, value: str) -> None:
        """Flag strings that name special attributes.

        Such strings reach attributes without an attribute expression:
        ``attrgetter("__globals__")``, ``"{0.__class__.__mro__}".format(x)``,
        ``Formatter().get_field("0.__globals__", ...)``, ``ForwardRef("__import__('os')")``.
        A plain mention is weaker evidence than an access, so only denied names are reported
        (docstrings are skipped).
        """
        if id(node) in self._docstrings or len(value) > 10_000:
            return
        names: set[str] = set()
        if len(value) <= 200 and _DOTTED_STRING.fullmatch(value):
            names.update(value.split("."))
        if "__" in value:
            names.update(_DUNDER_TOKEN.findall(value))
        if "{" in value:
            for field in _FORMAT_FIELD.findall(value):
                names.update(_FORMAT_ATTRIBUTE.findall(field))
        for name in sorted(names):
            rule = self.policy.decide_dunder(name)
            if rule.key != "dunders" and rule.verdict == "deny":
                self.add(node, "HG206", rule, f"string names the special attribute '{name}', which {_outcome(rule)}")

    # module level -------------------------------------------------------------------------------

    def _check_top_level(self, body: list[ast.stmt], *, in_class: bool = False) -> None:
        rule = self.policy.decide_construct("module_level_code")
        where = "class body" if in_class else "module level"
        for index, statement in enumerate(body):
            if index == 0 and _is_docstring(statement):
                continue
            offending = _import_time_statement(statement)
            if offending is not None:
                self.add(
                    offending,
                    "HG208",
                    rule,
                    f"{type(offending).__name__.lower()} statement at {where} runs when the module is imported",
                    confidence=Confidence.MEDIUM,
                )

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Call) and self._check_join_of_chr(node):
            self.add(node, "HG209", self.policy.decide_construct("chr_identifier"), "a string is built by joining chr() calls", confidence=Confidence.MEDIUM)
        super().generic_visit(node)


def _literal_strings(node: ast.AST) -> tuple[str, ...] | None:
    """Return the strings of a literal tuple, list or set of string constants, else ``None``."""
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)) or not node.elts:
        return None
    values = []
    for element in node.elts:
        if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
            return None
        values.append(element.value)
    return tuple(values)


def _rebinds(body: list[ast.stmt], name: str) -> bool:
    """Tell whether any statement in ``body`` assigns to ``name`` (walrus and nested loops included)."""
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, (ast.Store, ast.Del)):
                return True
    return False


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Pass)


def _import_time_statement(statement: ast.stmt) -> ast.stmt | None:
    """Return the first statement that does more than import, define or assign, or ``None``.

    ``try`` and ``if`` blocks pass when every statement inside them passes, so optional
    imports and availability checks are fine.
    """
    if isinstance(statement, _DEFINITIONS):
        return None
    if _is_docstring(statement):
        return None
    if isinstance(statement, (ast.Try, ast.TryStar)):
        blocks = [statement.body, statement.orelse, statement.finalbody, *(handler.body for handler in statement.handlers)]
    elif isinstance(statement, ast.If):
        blocks = [statement.body, statement.orelse]
    else:
        return statement
    for block in blocks:
        for inner in block:
            offending = _import_time_statement(inner)
            if offending is not None:
                return offending
    return None


# --- entry points -------------------------------------------------------------------------------


def _file_finding(path: str, rule_id: str, message: str, *, line: int = 0, column: int = 0, snippet: str = "", key: str) -> Finding:
    return Finding(
        path=path,
        line=line,
        column=column,
        rule_id=rule_id,
        severity=Severity.HIGH,
        confidence=Confidence.HIGH,
        cwe=RULES[rule_id].cwe,
        message=message,
        snippet=snippet,
        policy_key=key,
        verdict="deny",
    )


def _nosec_findings(path: str, text: str, policy: Policy) -> Iterator[Finding]:
    rule = policy.decide_construct("nosec_comment")
    if rule.verdict == "allow" or not _NOSEC.search(text):
        return
    lines = text.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return
    for token in tokens:
        if token.type == tokenize.COMMENT and _NOSEC.search(token.string):
            line, column = token.start
            yield Finding(
                path=path,
                line=line,
                column=column + 1,
                rule_id="HG205",
                severity=severity_for(rule.verdict),
                confidence=Confidence.HIGH,
                cwe=RULES["HG205"].cwe,
                message="'# nosec' comment tries to silence the scanner; hubguard ignores it",
                snippet=lines[line - 1].strip()[:_SNIPPET_LIMIT],
                policy_key=rule.key,
                verdict=rule.verdict,  # type: ignore[arg-type]  # "allow" returned above
            )


def parse_source(text: str, path: str, policy: Policy) -> tuple[ast.Module | None, Finding | None]:
    """Parse ``text`` within the policy's size and nesting bounds.

    Returns the tree, or ``None`` and the finding that explains why there is none.
    """
    if len(text) > policy.audit.max_file_bytes:
        return None, _file_finding(
            path,
            "HG231",
            f"file has {len(text):,} characters, more than audit.max_file_bytes = {policy.audit.max_file_bytes:,}",
            key="audit.max_file_bytes",
        )
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as error:
        line = error.lineno or 0
        snippet = (error.text or "").strip()[:_SNIPPET_LIMIT]
        rule_id = "HG231" if "too many nested" in str(error.msg) else "HG230"
        return None, _file_finding(
            path, rule_id, f"file does not parse: {error.msg}", line=line, column=error.offset or 0, snippet=snippet, key="audit"
        )
    except (RecursionError, MemoryError) as error:
        return None, _file_finding(path, "HG231", f"file is too deeply nested to parse ({type(error).__name__})", key="audit.max_nesting")
    except ValueError as error:  # source code string cannot contain null bytes
        return None, _file_finding(path, "HG230", f"file does not parse: {error}", key="audit")
    depth = _max_depth(tree)
    if depth > policy.audit.max_nesting:
        return None, _file_finding(
            path,
            "HG231",
            f"syntax tree is {depth} levels deep, more than audit.max_nesting = {policy.audit.max_nesting}",
            key="audit.max_nesting",
        )
    return tree, None


def scan_source(text: str, path: str, policy: Policy, *, tree: ast.Module | None = None) -> FileScan:
    """Apply hubguard's rules to one file's source text.

    A file that cannot be parsed, or is too large or too deep to audit, yields one
    blocking finding instead of a skip.
    """
    line_count = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if tree is None:
        tree, problem = parse_source(text, path, policy)
        if tree is None:
            assert problem is not None
            return FileScan(path, (problem,), (), line_count, parsed=False)
    scanner = _Scanner(path, text, policy)
    try:
        scanner.visit(tree)
    except RecursionError:
        finding = _file_finding(path, "HG231", "syntax tree is too deep to audit", key="audit.max_nesting")
        return FileScan(path, (finding,), (), line_count, parsed=False)
    findings = [*scanner.findings, *_nosec_findings(path, text, policy)]
    logger.debug("scanned %s: %d findings, %d imports", path, len(findings), len(scanner.imports))
    return FileScan(path, tuple(sorted(findings)), tuple(scanner.imports), line_count, parsed=True)


__all__ = ["FileScan", "ImportRecord", "Placement", "category_rule", "parse_source", "scan_source"]
