"""Find the GitHub requests in Kickoff's source: every `request(...)`, `paginate(...)` (and the gateway's own
`_fetch`/`_call`/`_send`) call, with its HTTP method and its path as a template (`{}` for each interpolation).

Paths must be literals or f-strings (directly or through a local variable) so this can read them; a path passed in
as a parameter is plumbing forwarding someone else's path, and is skipped.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOLE = "{}"
# attr → (index of the method argument or None for GET, index of the path argument, least positional arguments)
CALLS = {"request": (1, 2, 3), "_fetch": (1, 2, 3), "_call": (1, 2, 3), "_send": (2, 3, 4), "paginate": (None, 1, 2)}


@dataclass(frozen=True)
class Call:
    where: str  # file:line
    function: str  # the enclosing function, `Class.method` inside a class
    method: str | None  # None when it could not be read
    template: str | None  # None when it could not be read

    def __str__(self) -> str:
        return f"{self.where} ({self.function}): {self.method or '?'} {self.template or '?'}"


@dataclass
class _Function:
    qualname: str
    params: set[str]
    assigns: dict[str, list[tuple[int, ast.expr]]]


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs, *([a.vararg] if a.vararg else []), *([a.kwarg] if a.kwarg else [])]
    return {n.arg for n in names}


def _assigns(node: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, list[tuple[int, ast.expr]]]:
    found: dict[str, list[tuple[int, ast.expr]]] = {}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name):
            found.setdefault(sub.targets[0].id, []).append((sub.lineno, sub.value))
        elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name) and sub.value is not None:
            found.setdefault(sub.target.id, []).append((sub.lineno, sub.value))
    return found


class _Unreadable(Exception):
    pass


class _Forwarded(Exception):
    pass


def _template(expr: ast.expr, fn: _Function, line: int, depth: int = 0) -> str:
    if depth > 10:
        raise _Unreadable
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr):
        out = []
        for part in expr.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(part.value)
            elif isinstance(part, ast.FormattedValue):
                try:
                    out.append(_template(part.value, fn, line, depth + 1))
                except (_Unreadable, _Forwarded):
                    out.append(HOLE)
        return "".join(out)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _template(expr.left, fn, line, depth + 1) + _template(expr.right, fn, line, depth + 1)
    if isinstance(expr, ast.Name):
        earlier = [value for at, value in fn.assigns.get(expr.id, []) if at < line]
        if earlier:
            return _template(earlier[-1], fn, line, depth + 1)
        if expr.id in fn.params:
            raise _Forwarded
    raise _Unreadable


def _self_calls(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    names = []
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and isinstance(sub.func.value, ast.Name)
            and sub.func.value.id == "self"
        ):
            names.append(sub.func.attr)
    return tuple(names)


@dataclass
class Scan:
    calls: list[Call] = field(default_factory=list)
    self_calls: dict[str, tuple[str, ...]] = field(default_factory=dict)  # function → the `self.x(...)` it calls


def scan_source(text: str, filename: str, into: Scan | None = None) -> Scan:
    """Every GitHub request call in one module's source."""
    tree = ast.parse(text, filename)
    result = into if into is not None else Scan()

    def visit(node: ast.AST, prefix: str, fn: _Function | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", fn)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = _Function(f"{prefix}{child.name}", _params(child), _assigns(child))
                result.self_calls[inner.qualname] = _self_calls(child)
                visit(child, f"{prefix}{child.name}.", inner)
            else:
                if isinstance(child, ast.Call) and fn is not None:
                    found = _read_call(child, fn, filename)
                    if found is not None:
                        result.calls.append(found)
                visit(child, prefix, fn)

    visit(tree, "", None)
    return result


def _read_call(node: ast.Call, fn: _Function, filename: str) -> Call | None:
    if not isinstance(node.func, ast.Attribute) or node.func.attr not in CALLS:
        return None
    method_at, path_at, least = CALLS[node.func.attr]
    if len(node.args) < least:
        return None  # another library's `request(method, url)`, not the gateway's
    where = f"{filename}:{node.lineno}"
    method: str | None = "GET"
    if method_at is not None:
        arg = node.args[method_at]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            method = arg.value.upper()
        elif isinstance(arg, ast.Name) and arg.id in fn.params:
            return None  # plumbing: forwards its caller's method
        else:
            method = None
    try:
        template: str | None = _template(node.args[path_at], fn, node.lineno)
    except _Forwarded:
        return None
    except _Unreadable:
        template = None
    return Call(where, fn.qualname, method, template)


def scan(paths: Iterable[Path], root: Path) -> Scan:
    result = Scan()
    for path in sorted(paths):
        scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(root)), result)
    return result


def pattern(template: str) -> re.Pattern[str]:
    """A source template as a regex over GitHub's templates: a leading hole may span segments (`{site.api}` is
    `/repos/{owner}/{repo}`), any other hole is one segment."""
    pieces = template.split(HOLE)
    out = [re.escape(pieces[0])]
    for index, piece in enumerate(pieces[1:]):
        out.append(".+" if index == 0 and pieces[0] == "" else "[^/]+")
        out.append(re.escape(piece))
    return re.compile("".join(out))


def match(method: str, template: str, table: Mapping[tuple[str, str], object]) -> list[tuple[str, str]]:
    """The table's endpoints a source call can be."""
    regex = pattern(template)
    return [(m, t) for (m, t) in table if m == method and regex.fullmatch(t)]
