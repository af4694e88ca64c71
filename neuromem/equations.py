"""The small expression grammar in which neuron models and plasticity rules are written.

User text is parsed with :mod:`ast` and checked against a whitelist of node types, functions and
names; it is never ``eval``'d.  Backends get code that *we* print from the checked tree, so the
same expression means the same arithmetic on every backend.

Grammar
-------
expression  numbers, names, ``+ - * / **``, unary ``-``, comparisons, ``and``/``or``/``not``,
            ``a if cond else b`` and calls of :data:`FUNCTIONS`.
statements  ``name = expr`` or ``name += expr`` (also ``-= *= /=``), separated by ``;`` or newlines.
"""

from __future__ import annotations

import ast
import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .errors import SpecError

#: Functions an expression may call, with their arity.
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "tanh": 1,
    "abs": 1,
    "clip": 3,
    "minimum": 2,
    "maximum": 2,
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_AUGOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Expression:
    """A checked expression: its source text, its tree and the names it reads."""

    text: str
    tree: ast.expr
    names: frozenset[str]


@dataclass(frozen=True)
class Statement:
    """``target = value`` (augmented assignments are expanded: ``x += e`` is ``x = x + (e)``)."""

    target: str
    value: Expression


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(text: str, where: str, mode: str) -> ast.AST:
    """``ast.parse`` with the length budget, and parser limits turned into a SpecError."""
    from .spec.limits import current

    limit = current().max_expression_length
    if len(text) > limit:
        raise SpecError(f"{where}: {len(text)} characters, more than the limit of {limit}")
    try:
        tree = ast.parse(text, mode=mode)
    except SyntaxError as exc:
        raise SpecError(f"{where}: cannot parse {_short(text)!r}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecError(f"{where}: {_short(text)!r} is too deeply nested to parse") from None
    # depth first, without recursion, so that every later (recursive) walk is bounded
    max_depth = current().max_expression_depth
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise SpecError(
                f"{where}: {_short(text)!r} is nested more than {max_depth} levels deep"
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def _check(node: ast.AST, where: str, text: str) -> set[str]:
    """Walk ``node``; raise on anything outside the grammar; return the names read."""
    names: set[str] = set()

    def bad(what: str) -> SpecError:
        return SpecError(f"{where}: {what} is not allowed in expression {text!r}")

    def walk(n: ast.AST) -> None:
        if isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, int | float):
                raise bad(f"constant {n.value!r}")
            try:
                finite = math.isfinite(float(n.value))
            except OverflowError:
                finite = False
            if not finite:
                raise SpecError(
                    f"{where}: the literal at column {n.col_offset + 1} of {_short(text)!r} "
                    "is not a finite float64"
                )
        elif isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.BinOp):
            if type(n.op) not in _BINOPS:
                raise bad(f"operator {type(n.op).__name__}")
            walk(n.left)
            walk(n.right)
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, ast.USub | ast.UAdd | ast.Not):
                raise bad(f"operator {type(n.op).__name__}")
            walk(n.operand)
        elif isinstance(n, ast.Compare):
            if len(n.ops) != 1 or type(n.ops[0]) not in _CMPOPS:
                raise bad("a chained comparison")
            walk(n.left)
            walk(n.comparators[0])
        elif isinstance(n, ast.BoolOp):
            for v in n.values:
                walk(v)
        elif isinstance(n, ast.IfExp):
            walk(n.test)
            walk(n.body)
            walk(n.orelse)
        elif isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name) or n.func.id not in FUNCTIONS:
                fname = n.func.id if isinstance(n.func, ast.Name) else "?"
                raise bad(f"call of {fname!r} (allowed: {', '.join(sorted(FUNCTIONS))})")
            if n.keywords or len(n.args) != FUNCTIONS[n.func.id]:
                raise bad(f"{n.func.id} with {len(n.args)} arguments")
            for a in n.args:
                walk(a)
        else:
            raise bad(type(n).__name__)

    walk(node)
    _check_constants(node, where, text)
    return names


_CONST_FUNCS: dict[str, Callable[..., float]] = {
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "tanh": math.tanh,
    "abs": abs,
    "clip": lambda x, lo, hi: min(max(x, lo), hi),
    "minimum": min,
    "maximum": max,
}
_CONST_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def _check_constants(node: ast.AST, where: str, text: str) -> None:
    """Refuse arithmetic on literals alone that is not a finite float64 (``1e308 * 10``,
    ``10 ** 400``, ``1 / 0``), naming the column where it starts."""

    def value(n: ast.AST) -> float | None:
        """The float value of a literal-only arithmetic subtree, None if it reads a name; every
        subtree is checked on the way up, so the report names the smallest bad one."""
        if isinstance(n, ast.Constant):
            return float(n.value)
        parts = [value_checked(child) for child in ast.iter_child_nodes(n)]
        if isinstance(n, ast.UnaryOp) and not isinstance(n.op, ast.Not):
            v = value_checked(n.operand)
            return None if v is None else (-v if isinstance(n.op, ast.USub) else v)
        if isinstance(n, ast.BinOp):
            a, b = value_checked(n.left), value_checked(n.right)
            return None if a is None or b is None else _CONST_OPS[type(n.op)](a, b)
        if isinstance(n, ast.Call) and None not in parts[1:]:
            return _CONST_FUNCS[n.func.id](*parts[1:])  # type: ignore[attr-defined]
        return None

    def value_checked(n: ast.AST) -> float | None:
        try:
            v = value(n)
        except SpecError:
            raise
        except (OverflowError, ZeroDivisionError, ValueError):
            v = math.nan
        if v is not None and (isinstance(v, complex) or not math.isfinite(v)):
            raise SpecError(
                f"{where}: {ast.unparse(n)!r} (column {getattr(n, 'col_offset', 0) + 1} of "
                f"{_short(text)!r}) is not a finite float64"
            )
        return v

    value_checked(node)


def parse_expression(text: str, where: str, known: Iterable[str] | None = None) -> Expression:
    """Parse and check one expression.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"(v_rest - v) / tau_m"``.
    where : str
        Names the element in error messages, e.g. ``"neuron model 'lif', equation for v"``.
    known : iterable of str, optional
        Names the expression may read; any other name is an error.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{where}: expected a non-empty expression string, got {text!r}")
    tree = _parse(text.strip(), where, "eval").body  # type: ignore[attr-defined]
    names = _check(tree, where, text)
    if known is not None:
        unknown = sorted(names - set(known))
        if unknown:
            raise SpecError(
                f"{where}: unknown variable(s) {', '.join(unknown)} in {text!r}; "
                f"known: {', '.join(sorted(known))}"
            )
    return Expression(text.strip(), tree, frozenset(names))


def parse_statements(
    text: str, where: str, known: Iterable[str] | None = None, targets: Iterable[str] | None = None
) -> tuple[Statement, ...]:
    """Parse ``;``/newline separated assignments; augmented ones are expanded."""
    known = set(known) if known is not None else None
    targets = set(targets) if targets is not None else None
    if not isinstance(text, str):
        raise SpecError(f"{where}: expected a string of statements, got {type(text).__name__}")
    lines = [ln.strip() for ln in text.replace(";", "\n").splitlines()]
    module = _parse("\n".join(ln for ln in lines if ln), where, "exec")
    out = []
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            tgt, value = node.targets[0], node.value
        elif isinstance(node, ast.AugAssign) and type(node.op) in _AUGOPS:
            tgt = node.target
            value = ast.BinOp(
                left=ast.Name(id=getattr(tgt, "id", "?"), ctx=ast.Load()),
                op=node.op,
                right=node.value,
            )
        else:
            raise SpecError(
                f"{where}: only 'x = expr' and 'x += expr' statements are allowed, "
                f"got {ast.unparse(node)!r}"
            )
        if not isinstance(tgt, ast.Name):
            raise SpecError(f"{where}: cannot assign to {ast.unparse(tgt)!r}")
        if targets is not None and tgt.id not in targets:
            raise SpecError(
                f"{where}: cannot assign to {tgt.id!r}; assignable: {', '.join(sorted(targets))}"
            )
        ast.fix_missing_locations(value)
        vtext = ast.unparse(value)
        out.append(Statement(tgt.id, parse_expression(vtext, where, known)))
    if not out:
        raise SpecError(f"{where}: no statements in {text!r}")
    return tuple(out)


# --------------------------------------------------------------------------------------- printing
class Printer:
    """Prints a checked tree as source for one target.

    Parameters
    ----------
    name : callable
        Maps a variable name to the text that reads it (e.g. ``v`` -> ``v[i]``).
    functions : mapping
        Maps grammar function names to target function names (e.g. ``exp`` -> ``math.exp``).
    where : str
        Target used for ``a if c else b`` and boolean operators: ``"scalar"`` prints Python
        conditionals; ``"array"`` prints ``where(c, a, b)`` and ``&``/``|``/``~``.
    """

    def __init__(self, name: Callable[[str], str], functions: Mapping[str, str], where: str):
        self.name = name
        self.functions = functions
        self.mode = where

    def __call__(self, expr: Expression | ast.expr) -> str:
        return self._p(expr.tree if isinstance(expr, Expression) else expr)

    def _p(self, n: ast.AST) -> str:
        if isinstance(n, ast.Constant):
            return repr(float(n.value))
        if isinstance(n, ast.Name):
            return self.name(n.id)
        if isinstance(n, ast.BinOp):
            return f"({self._p(n.left)} {_BINOPS[type(n.op)]} {self._p(n.right)})"
        if isinstance(n, ast.UnaryOp):
            if isinstance(n.op, ast.Not):
                return (
                    f"(not {self._p(n.operand)})"
                    if self.mode == "scalar"
                    else f"(~{self._p(n.operand)})"
                )
            return f"({'-' if isinstance(n.op, ast.USub) else '+'}{self._p(n.operand)})"
        if isinstance(n, ast.Compare):
            return f"({self._p(n.left)} {_CMPOPS[type(n.ops[0])]} {self._p(n.comparators[0])})"
        if isinstance(n, ast.BoolOp):
            if self.mode == "scalar":
                op = " and " if isinstance(n.op, ast.And) else " or "
            else:
                op = " & " if isinstance(n.op, ast.And) else " | "
            return "(" + op.join(self._p(v) for v in n.values) + ")"
        if isinstance(n, ast.IfExp):
            if self.mode == "scalar":
                return f"({self._p(n.body)} if {self._p(n.test)} else {self._p(n.orelse)})"
            return (
                f"{self.functions['where']}({self._p(n.test)}, {self._p(n.body)}, "
                f"{self._p(n.orelse)})"
            )
        if isinstance(n, ast.Call):
            fname = n.func.id  # type: ignore[attr-defined]
            return f"{self.functions[fname]}({', '.join(self._p(a) for a in n.args)})"
        raise AssertionError(f"unchecked node {type(n).__name__}")  # pragma: no cover


def drop_zero_terms(expr: Expression, zeros: Iterable[str], finite: Iterable[str]) -> ast.expr:
    """The tree of ``expr`` with the names in ``zeros`` read as 0.0 and the additive terms that
    are then zero dropped: ``c * 0.0`` (``c`` a literal or a name in ``finite``) is a zero, and
    ``a + zero``, ``zero + a``, ``a - zero`` are ``a``. Exact up to the sign of a zero result
    (``-0.0 + 0.0`` is ``+0.0``); used for inputs a run does not drive."""
    zeros, finite = frozenset(zeros), frozenset(finite)

    def is_zero(n: ast.AST) -> bool:
        return isinstance(n, ast.Constant) and n.value == 0

    def is_finite(n: ast.AST) -> bool:
        return (isinstance(n, ast.Constant) and math.isfinite(n.value)) or (
            isinstance(n, ast.Name) and n.id in finite
        )

    class _Fold(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Constant(0.0) if node.id in zeros else node

        def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
            self.generic_visit(node)
            a, b = node.left, node.right
            if isinstance(node.op, ast.Mult) and (
                (is_zero(a) and is_finite(b)) or (is_zero(b) and is_finite(a))
            ):
                return ast.Constant(0.0)
            if isinstance(node.op, (ast.Add, ast.Sub)) and is_zero(b):
                return a
            if isinstance(node.op, ast.Add) and is_zero(a):
                return b
            return node

    return _Fold().visit(copy.deepcopy(expr.tree))


def substitute(expr: Expression, mapping: Mapping[str, str], where: str) -> Expression:
    """Return ``expr`` with names replaced by other names (used to rename per-element variables)."""

    class _Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.copy_location(ast.Name(id=mapping.get(node.id, node.id), ctx=node.ctx), node)

    tree = _Rename().visit(ast.parse(expr.text, mode="eval")).body
    return parse_expression(ast.unparse(tree), where)
