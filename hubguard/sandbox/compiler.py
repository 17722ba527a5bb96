"""Restricted compilation of remote model code with hubguard's own RestrictedPython policy.

RestrictedPython's stock transformer refuses ordinary model code: every name and
attribute that starts with ``_`` (``self._cache``, ``_init_weights``), dunder methods
other than a handful, annotated assignments, ``match`` and ``nonlocal``. hubguard
subclasses it and decides each of those for model code:

* allowed: single-underscore names and attributes, dunder method definitions in class
  bodies, annotations (also under ``from __future__ import annotations``), ``match``,
  ``nonlocal``, augmented assignment to attributes and items, ``print``;
* refused at compile time: the names of the injected guards (``_getattr_`` …), dunder
  names and attributes outside :data:`READABLE_DUNDERS` or denied by the policy, frame and
  code attributes (``gi_frame``, ``tb_frame``, ``f_globals`` …), star imports, async code,
  ``exec``/``eval`` calls and ``try/except*``.

Every attribute read, item read, iteration and write still goes through the runtime
guards of :mod:`hubguard.sandbox.guards`, because the compiled code calls them itself.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

from hubguard.errors import SandboxViolation

# Names the compiled code uses to reach the guards; remote code may never bind or read them.
GUARD_NAMES = frozenset(
    {
        "_getattr_",
        "_getitem_",
        "_getiter_",
        "_write_",
        "_inplacevar_",
        "_apply_",
        "_unpack_sequence_",
        "_iter_unpack_sequence_",
        "_print_",
        "_print",
        "_match_class_",
        "_match_values_",
        "_check_arguments_",
        "_call_",
        "__metaclass__",
    }
)
_TEMPORARY_NAME = re.compile(r"^_(tmp\d+|hg_\w*)$")

# Frame, code and generator attributes that lead out of the sandbox; refused under any name form.
FRAME_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES | {"f_trace_lines", "f_trace_opcodes", "cr_suspended", "gi_suspended"})

# Dunder attributes remote code may read; the policy can narrow this set, never widen it.
READABLE_DUNDERS = frozenset(
    {
        "__init__", "__call__", "__class__", "__name__", "__qualname__", "__module__", "__doc__",
        "__version__", "__post_init__", "__all__", "__slots__", "__dataclass_fields__", "__wrapped__",
        "__annotations__", "__getstate__", "__setstate__", "__copy__", "__deepcopy__", "__new__",
        "__getattr__", "__setattr__", "__delattr__", "__repr__", "__str__", "__format__", "__hash__",
        "__bool__", "__len__", "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__",
        "__delitem__", "__enter__", "__exit__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
        "__ge__", "__add__", "__sub__", "__mul__", "__matmul__", "__truediv__", "__floordiv__",
        "__mod__", "__pow__", "__neg__", "__pos__", "__abs__", "__radd__", "__rsub__", "__rmul__",
        "__rtruediv__", "__iadd__", "__isub__", "__imul__", "__and__", "__or__", "__xor__",
        "__invert__", "__index__", "__int__", "__float__", "__round__", "__torch_function__",
        "__array__", "__file__",
    }
)

# Dunder attributes remote code may assign (on objects the write guard lets it change).
WRITABLE_DUNDERS = frozenset({"__doc__", "__name__", "__qualname__"})

# Bare dunder names remote code may read as variables.
READABLE_DUNDER_NAMES = frozenset({"__name__", "__file__", "__doc__", "__package__", "__all__", "__version__", "__class__", "__debug__"})

# Dunder names a class body may not bind: they change how the class identifies itself or
# which attributes pattern matching reads.
_CLASS_BODY_DENIED = frozenset({"__class__", "__dict__", "__module__", "__qualname__", "__builtins__", "__globals__", "__match_args__", "__weakref__"})

# Dunder names module code may bind at module level.
_MODULE_LEVEL_DUNDERS = frozenset({"__all__", "__version__", "__doc__", "__author__", "__getattr__", "__dir__"})

_IMPORT_ERROR_NAMES = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


@dataclass(frozen=True)
class CompileProblem:
    """One construct the restricted compiler refused: 1-based line and the reason."""

    line: int
    message: str


@dataclass(frozen=True)
class CompiledModule:
    """A repository file compiled for the sandbox.

    ``guarded_import_lines`` are the lines of import statements that sit in ``try`` with an
    ``ImportError`` handler, inside ``if`` or inside a function: the policy treats an
    unknown module imported there as optional.
    """

    path: str
    filename: str
    code: types.CodeType
    guarded_import_lines: frozenset[int]
    warnings: tuple[CompileProblem, ...] = ()


class ModelCodeTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer with hubguard's decisions for model code.

    ``dunder_denied`` is a callable the compiler asks whether the policy denies a dunder
    or frame attribute name (``decide_dunder(name).verdict == "deny"``).
    """

    def __init__(self, *args: object, dunder_denied=None, **kwargs: object) -> None:  # type: ignore[no-untyped-def]  # RestrictedPython's constructor is untyped
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # forwards RestrictedPython's own arguments
        self.problems: list[CompileProblem] = []
        self.guarded_import_lines: set[int] = set()
        self._dunder_denied = dunder_denied or (lambda name: False)
        self._future_annotations = False
        self._class_depth = 0
        self._function_depth = 0
        self._guard_depth = 0

    # --- bookkeeping ---------------------------------------------------------------

    def error(self, node: ast.AST, info: str) -> None:
        """Record a refusal with its line; RestrictedPython's own checks report through here too."""
        line = getattr(node, "lineno", 0) or 0
        self.problems.append(CompileProblem(line, info))
        super().error(node, info)

    def gen_tmp_name(self) -> str:
        """Return a temporary name that remote code cannot spell (``_hg_`` names are refused)."""
        name = f"_hg_tmp{self._tmp_idx}"
        self._tmp_idx += 1
        return name

    # --- names -------------------------------------------------------------------

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:  # type: ignore[override]  # RestrictedPython's parameter types
        """Refuse guard names, temporaries and dunder names outside the allowlists; allow ``_private``."""
        if name is None:
            return
        if name in GUARD_NAMES or _TEMPORARY_NAME.match(name):
            self.error(node, f'"{name}" is reserved for the sandbox guards')
            return
        if not _is_dunder(name):
            return
        if allow_magic_methods:
            return
        self.error(node, f'the special name "{name}" is not allowed in sandboxed code')

    def _check_bound_dunder(self, node: ast.AST, name: str) -> None:
        """Decide a dunder name bound by ``def``/assignment, by where it is bound."""
        if self._class_depth and not self._function_depth:
            if name in _CLASS_BODY_DENIED:
                self.error(node, f'a class body may not define "{name}"')
            return
        if not self._class_depth and not self._function_depth and name in _MODULE_LEVEL_DUNDERS:
            return
        self.error(node, f'the special name "{name}" may not be bound here')

    def visit_Name(self, node: ast.Name) -> ast.AST:
        """Check the name; ``print`` stays the ordinary builtin (no print collector)."""
        if isinstance(node.ctx, ast.Load):
            self.used_names[node.id] = True
            if _is_dunder(node.id):
                if node.id not in READABLE_DUNDER_NAMES:
                    self.error(node, f'the special name "{node.id}" is not allowed in sandboxed code')
                return node
        elif _is_dunder(node.id):
            self._check_bound_dunder(node, node.id)
            return node
        self.check_name(node, node.id)
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        """Allow ``global`` for ordinary names only, so no guard can be rebound."""
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:  # type: ignore[override]  # RestrictedPython refuses it
        """Allow ``nonlocal`` for ordinary names (closures in model code use it)."""
        for name in node.names:
            self.check_name(node, name)
        return node

    # --- attributes ------------------------------------------------------------------

    def _check_attribute_name(self, node: ast.AST, attr: str, *, store: bool) -> None:
        if attr in FRAME_ATTRIBUTES:
            self.error(node, f'"{attr}" is a frame or code attribute and is not allowed')
            return
        if not _is_dunder(attr):
            return
        allowed = WRITABLE_DUNDERS if store else READABLE_DUNDERS
        if attr not in allowed or self._dunder_denied(attr):
            verb = "assigning" if store else "reading"
            self.error(node, f'{verb} the special attribute "{attr}" is not allowed')

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """Rewrite ``a.b`` to ``_getattr_(a, "b")`` and ``a.b = c`` to ``_write_(a).b = c``.

        Names are checked here first: ``_private`` passes, frame attributes and dunders
        outside the allowlists are refused.
        """
        store = not isinstance(node.ctx, ast.Load)
        self._check_attribute_name(node, node.attr, store=store)
        node = self.node_contents_visit(node)
        if not store:
            call = ast.Call(func=ast.Name("_getattr_", ast.Load()), args=[node.value, ast.Constant(node.attr)], keywords=[])
            copy_locations(call, node)
            return call
        writer = ast.Call(func=ast.Name("_write_", ast.Load()), args=[node.value], keywords=[])
        copy_locations(writer, node.value)
        node.value = writer
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        """Rewrite ``f(...)`` to ``_call_(f)(...)``: the callee gets the value check however it was reached.

        A value can reach sandboxed code past the guards (``heapq.heappop``, ``random.choice``,
        ``functools.reduce`` return items unchecked); calling it still goes through the guard.
        ``super()`` stays as written, because its zero-argument form reads the calling frame.
        """
        node = super().visit_Call(node)
        if not isinstance(node, ast.Call):
            return node
        func = node.func
        if isinstance(func, ast.Name) and func.id == "_apply_" and node.args:
            node.args[0] = self._guarded_callee(node.args[0])
        elif not (isinstance(func, ast.Name) and (func.id in GUARD_NAMES or func.id == "super")):
            node.func = self._guarded_callee(func)
        return node

    def _guarded_callee(self, callee: ast.expr) -> ast.expr:
        call = ast.Call(ast.Name("_call_", ast.Load()), [callee], [])
        copy_locations(call, callee)
        return call

    # --- definitions ---------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        """Allow functions; a dunder name is allowed for methods in a class body."""
        if _is_dunder(node.name):
            self._check_bound_dunder(node, node.name)
        else:
            self.check_name(node, node.name)
        self.check_function_argument_names(node)
        self._function_depth += 1
        try:
            node = self.node_contents_visit(node)
        finally:
            self._function_depth -= 1
        names = _argument_names(node.args)
        if names:
            # Library code calls sandboxed functions (sort keys, map, hooks) with values that
            # never passed the guards; each argument gets the value check on entry.
            check = ast.Expr(ast.Call(ast.Name("_check_arguments_", ast.Load()), [ast.Name(name, ast.Load()) for name in names], []))
            copy_locations(check, node)
            has_docstring = node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)
            node.body.insert(1 if has_docstring else 0, check)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        """Allow lambdas; their arguments get the value check, as a function's do."""
        self.check_function_argument_names(node)
        node = self.node_contents_visit(node)
        names = _argument_names(node.args)
        if names:
            check = ast.Call(ast.Name("_check_arguments_", ast.Load()), [ast.Name(name, ast.Load()) for name in names], [])
            node.body = ast.BoolOp(ast.And(), [check, node.body])
            copy_locations(node.body, node)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        """Allow classes as written (no injected metaclass); the guarded ``__build_class__`` marks them."""
        self.check_name(node, node.name)
        self._class_depth += 1
        saved_function_depth = self._function_depth
        self._function_depth = 0
        try:
            return self.node_contents_visit(node)
        finally:
            self._class_depth -= 1
            self._function_depth = saved_function_depth

    def visit_Module(self, node: ast.Module) -> ast.AST:
        """Note ``from __future__ import annotations`` before visiting the body."""
        for child in node.body:
            if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                if any(alias.name == "annotations" for alias in child.names):
                    self._future_annotations = True
        return self.node_contents_visit(node)

    # --- annotations -----------------------------------------------------------------

    def _visit_annotation(self, annotation: ast.expr | None) -> ast.expr | None:
        """Keep annotations as written when they stay strings; otherwise guard them like any expression."""
        if annotation is None or self._future_annotations:
            return annotation
        return self.visit(annotation)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        """Check an argument name and guard its annotation."""
        node.annotation = self._visit_annotation(node.annotation)
        return node

    def visit_arguments(self, node: ast.arguments) -> ast.AST:
        """Visit argument annotations and defaults."""
        return self.node_contents_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        """Allow annotated assignments (``self._cache: Dict[str, int] = {}``)."""
        node.annotation = self._visit_annotation(node.annotation)  # type: ignore[assignment]  # never None for AnnAssign
        node.target = self.visit(node.target)
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def node_contents_visit(self, node):  # type: ignore[no-untyped-def]  # mirrors RestrictedPython's signature
        """Visit children; function return annotations follow the annotation rule."""
        if isinstance(node, ast.FunctionDef):
            returns = node.returns
            node.returns = None
            node = super().node_contents_visit(node)
            node.returns = self._visit_annotation(returns)
            return node
        return super().node_contents_visit(node)

    # --- augmented assignment ----------------------------------------------------------

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list[ast.AST]:
        """Allow ``obj.attr += v`` and ``seq[i] += v`` by spelling them out with the guards.

        ``self.count += 1`` becomes::

            _hg_tmp0 = self
            _write_(_hg_tmp0).count = _inplacevar_("+=", _getattr_(_hg_tmp0, "count"), 1)
            del _hg_tmp0
        """
        if isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)
        from RestrictedPython.transformer import IOPERATOR_TO_STR

        operator = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = self.visit(node.value)
        target = node.target
        statements: list[ast.stmt] = []
        temporaries: list[str] = []

        def hold(expression: ast.expr) -> ast.Name:
            name = self.gen_tmp_name()
            temporaries.append(name)
            statements.append(ast.Assign(targets=[ast.Name(name, ast.Store())], value=expression))
            return ast.Name(name, ast.Load())

        if isinstance(target, ast.Attribute):
            self._check_attribute_name(target, target.attr, store=True)
            holder = hold(self.visit(target.value))
            current = ast.Call(ast.Name("_getattr_", ast.Load()), [holder, ast.Constant(target.attr)], [])
            new_target: ast.expr = ast.Attribute(
                value=ast.Call(ast.Name("_write_", ast.Load()), [ast.Name(holder.id, ast.Load())], []),
                attr=target.attr,
                ctx=ast.Store(),
            )
        elif isinstance(target, ast.Subscript):
            holder = hold(self.visit(target.value))
            key = hold(self.visit(target.slice))
            current = ast.Call(ast.Name("_getitem_", ast.Load()), [holder, key], [])
            new_target = ast.Subscript(
                value=ast.Call(ast.Name("_write_", ast.Load()), [ast.Name(holder.id, ast.Load())], []),
                slice=ast.Name(key.id, ast.Load()),
                ctx=ast.Store(),
            )
        else:
            self.error(node, f"augmented assignment to {type(target).__name__} is not allowed")
            return node
        combined = ast.Call(ast.Name("_inplacevar_", ast.Load()), [operator, current, value], [])
        statements.append(ast.Assign(targets=[new_target], value=combined))
        statements.append(ast.Delete(targets=[ast.Name(name, ast.Del()) for name in temporaries]))
        for statement in statements:
            copy_locations(statement, node)
        return statements

    # --- imports -----------------------------------------------------------------------

    def _note_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if self._guard_depth or self._function_depth:
            self.guarded_import_lines.add(node.lineno)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        """Allow imports; the guarded ``__import__`` decides each module at run time."""
        self._note_import(node)
        return self.check_import_names(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        """Allow ``from`` imports except ``*``; names are decided at run time."""
        self._note_import(node)
        return self.check_import_names(node)

    def visit_Try(self, node: ast.Try) -> ast.AST:
        """Allow ``try``; imports in its body count as guarded when a handler catches ImportError."""
        catches_import_error = any(_catches_import_error(handler) for handler in node.handlers)
        if catches_import_error:
            self._guard_depth += 1
            node.body = [self.visit(statement) for statement in node.body]
            node.body = _flatten(node.body)
            self._guard_depth -= 1
        else:
            node.body = _flatten([self.visit(statement) for statement in node.body])
        node.handlers = [self.visit(handler) for handler in node.handlers]
        node.orelse = _flatten([self.visit(statement) for statement in node.orelse])
        node.finalbody = _flatten([self.visit(statement) for statement in node.finalbody])
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        """Allow ``if``; imports inside it are conditional."""
        node.test = self.visit(node.test)
        self._guard_depth += 1
        node.body = _flatten([self.visit(statement) for statement in node.body])
        node.orelse = _flatten([self.visit(statement) for statement in node.orelse])
        self._guard_depth -= 1
        return node

    # --- pattern matching --------------------------------------------------------------

    def visit_Match(self, node: ast.Match) -> list[ast.stmt]:
        """Allow ``match`` with every value a pattern reads passed through the guards.

        Patterns read attributes and items without ``_getattr_``/``_getitem_``, so each
        class is hoisted into ``_hg_tmpN = _match_class_(cls, (keyword names), positional
        count)`` before the statement (the guard refuses metaclasses the sandbox made, and
        attribute names the attribute guard would decide), and every case gets the guard
        ``_match_values_(captured names)`` ahead of its own, which value-checks what the
        pattern bound::

            match value:                         _hg_tmp0 = _match_class_(Reader, (), 1)
                case Reader(found):      ->      match value:
                    ...                              case _hg_tmp0(found) if _match_values_(found):
        """
        hoisted: list[ast.stmt] = []
        node.subject = self.visit(node.subject)
        for case in node.cases:
            case.pattern = self.visit(case.pattern)
            if case.guard is not None:
                case.guard = self.visit(case.guard)
            case.body = _flatten([self.visit(statement) for statement in case.body])
            for pattern in ast.walk(case.pattern):
                if isinstance(pattern, ast.MatchClass):
                    name = self.gen_tmp_name()
                    check = ast.Call(
                        ast.Name("_match_class_", ast.Load()),
                        [pattern.cls, ast.Tuple([ast.Constant(attr) for attr in pattern.kwd_attrs], ast.Load()),
                         ast.Constant(len(pattern.patterns))],
                        [],
                    )
                    hoisted.append(ast.Assign(targets=[ast.Name(name, ast.Store())], value=check))
                    pattern.cls = ast.Name(name, ast.Load())
            captured = _captured_names(case.pattern)
            if captured:
                check = ast.Call(ast.Name("_match_values_", ast.Load()), [ast.Name(name, ast.Load()) for name in captured], [])
                case.guard = check if case.guard is None else ast.BoolOp(ast.And(), [check, case.guard])
        for statement in hoisted:
            copy_locations(statement, node)
        return [*hoisted, node]

    def visit_match_case(self, node: ast.AST) -> ast.AST:
        """Allow ``case`` clauses."""
        return self.node_contents_visit(node)

    def visit_MatchValue(self, node: ast.AST) -> ast.AST:
        """Allow value patterns."""
        return self.node_contents_visit(node)

    def visit_MatchSingleton(self, node: ast.AST) -> ast.AST:
        """Allow ``None``/``True``/``False`` patterns."""
        return self.node_contents_visit(node)

    def visit_MatchSequence(self, node: ast.AST) -> ast.AST:
        """Allow sequence patterns."""
        return self.node_contents_visit(node)

    def visit_MatchMapping(self, node: ast.AST) -> ast.AST:
        """Allow mapping patterns; a ``**rest`` capture name is checked."""
        self.check_name(node, getattr(node, "rest", None))
        return self.node_contents_visit(node)

    def visit_MatchStar(self, node: ast.AST) -> ast.AST:
        """Allow ``*rest`` in sequence patterns."""
        self.check_name(node, getattr(node, "name", None))
        return self.node_contents_visit(node)

    def visit_MatchAs(self, node: ast.AST) -> ast.AST:
        """Allow capture patterns with checked names."""
        self.check_name(node, getattr(node, "name", None))
        return self.node_contents_visit(node)

    def visit_MatchOr(self, node: ast.AST) -> ast.AST:
        """Allow alternatives."""
        return self.node_contents_visit(node)

    def visit_MatchClass(self, node: ast.AST) -> ast.AST:
        """Allow class patterns; keyword patterns read attributes directly, so their names are checked."""
        for attr in getattr(node, "kwd_attrs", []):
            if attr.startswith("_") or attr in FRAME_ATTRIBUTES:
                self.error(node, f'the class pattern reads "{attr}", which sandboxed code may not read this way')
        return self.node_contents_visit(node)


def _argument_names(arguments: ast.arguments) -> list[str]:
    """Return the parameter names of a function or lambda, ``*args`` and ``**kwargs`` included."""
    names = [argument.arg for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names.extend(argument.arg for argument in (arguments.vararg, arguments.kwarg) if argument is not None)
    return names


def _captured_names(pattern: ast.AST) -> list[str]:
    """Return the names a pattern binds, in order of appearance."""
    names: list[str] = []
    for node in ast.walk(pattern):
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name is not None:
            names.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest is not None:
            names.append(node.rest)
    return list(dict.fromkeys(names))


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names: Iterable[ast.expr] = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, ast.Name) and name.id in _IMPORT_ERROR_NAMES for name in names)


def _flatten(statements: list[object]) -> list[ast.stmt]:
    flat: list[ast.stmt] = []
    for statement in statements:
        if statement is None:
            continue
        if isinstance(statement, list):
            flat.extend(statement)
        else:
            flat.append(statement)  # type: ignore[arg-type]  # visitors return statements here
    return flat


def compile_module(
    source: str,
    path: str,
    *,
    filename: str,
    repo: str,
    dunder_denied=None,  # type: ignore[no-untyped-def]  # a callable(str) -> bool
) -> CompiledModule:
    """Compile one repository file for the sandbox, or raise with every refused construct.

    Args:
        source: the decoded file text.
        path: the repository path, such as ``modeling_x.py``.
        filename: the name compiled code reports in tracebacks.
        repo: the source and revision, for messages.
        dunder_denied: returns true for dunder names the policy denies.

    Raises:
        SandboxViolation: HG306, the file uses constructs the sandbox refuses; the message
            lists each one with its line.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        raise SandboxViolation(
            f"{path} is not valid Python: {error.msg}",
            rule_id="HG306",
            path=path,
            line=error.lineno,
            operation="compile",
            repo=repo,
            policy_rule="sandbox.compile",
            hint="fix the syntax error in the repository file",
        ) from error
    transformer = ModelCodeTransformer(dunder_denied=dunder_denied)
    tree = transformer.visit(tree)
    if transformer.problems:
        problems = sorted(set(transformer.problems), key=lambda problem: (problem.line, problem.message))
        listing = "; ".join(f"line {problem.line}: {problem.message}" for problem in problems)
        raise SandboxViolation(
            f"{repo}/{path} uses constructs the sandbox refuses ({listing})",
            rule_id="HG306",
            path=path,
            line=problems[0].line,
            operation="compile",
            repo=repo,
            policy_rule="sandbox.compile",
            hint="remove the listed constructs; they reach interpreter internals that no model needs",
        )
    ast.fix_missing_locations(tree)
    code = compile(tree, filename, "exec", dont_inherit=True)
    return CompiledModule(
        path=path,
        filename=filename,
        code=code,
        guarded_import_lines=frozenset(transformer.guarded_import_lines),
    )


__all__ = [
    "FRAME_ATTRIBUTES",
    "GUARD_NAMES",
    "READABLE_DUNDERS",
    "CompiledModule",
    "CompileProblem",
    "ModelCodeTransformer",
    "compile_module",
]
