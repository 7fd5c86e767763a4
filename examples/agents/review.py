"""A small code review of Python sources: Python's own parser and compiler for syntax
errors, then checks of our own on the syntax tree and the text.

Rules: ``syntax-error``, ``unused-import``, ``bare-except``, ``mutable-default``,
``missing-docstring`` (modules, and public classes, functions and methods), and
``long-line`` (any file).
"""

import ast
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Called as (percent, message, partial result so far).
Progress = Callable[[float, str, dict[str, Any]], object]


@dataclass(frozen=True, order=True)
class Finding:
    """One thing to fix: where, which rule, and what about it."""

    file: str
    line: int
    rule: str
    message: str


def review(
    files: Mapping[str, str], max_line_length: int = 100, progress: Progress | None = None
) -> dict[str, Any]:
    """Every finding in ``files`` (name -> source), ordered by file and line."""
    report = progress or (lambda percent, message, partial: None)
    findings: list[Finding] = []
    for done, name in enumerate(sorted(files), start=1):
        findings += review_file(name, files[name], max_line_length)
        report(100 * done / len(files), f"reviewed {name}", {"findings": len(findings)})
    findings.sort()
    return {
        "findings": [asdict(f) for f in findings],
        "files": len(files),
        "counts": dict(sorted(Counter(f.rule for f in findings).items())),
    }


def review_file(name: str, source: str, max_line_length: int = 100) -> list[Finding]:
    """The findings in one file: long lines in any file; in Python files, a syntax error
    or else what the other rules find."""
    found = list(long_lines(name, source, max_line_length))
    if not name.endswith(".py"):
        return found
    try:
        tree = ast.parse(source, filename=name)
        # The compiler refuses more than the parser: a return outside a function, a
        # nonlocal without a binding, an await outside an async function.
        compile(tree, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [*found, Finding(name, exc.lineno or 1, "syntax-error", exc.msg)]
    checks = [bare_excepts, mutable_defaults, missing_docstrings]
    if not name.endswith("__init__.py"):  # a package's imports are what it exports
        checks.append(unused_imports)
    for check in checks:
        found += check(name, tree)
    return found


def long_lines(name: str, source: str, limit: int) -> Iterator[Finding]:
    """Lines longer than ``limit`` characters."""
    for number, line in enumerate(source.splitlines(), start=1):
        if len(line) > limit:
            yield Finding(name, number, "long-line", f"{len(line)} characters (limit {limit})")


def unused_imports(name: str, tree: ast.Module) -> list[Finding]:
    """Imported names never read (nor listed in ``__all__``, nor in a quoted annotation)."""
    imported: dict[str, int] = {}  # the name an import binds -> its line
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name.split(".")[0]] = node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name != "*":
                    imported[alias.asname or alias.name] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | exported(tree)
    used |= names_in_string_annotations(tree)
    return [Finding(name, line, "unused-import", f"{bound!r} is imported but not used")
            for bound, line in imported.items() if bound not in used]  # fmt: skip


def exported(tree: ast.Module) -> set[str]:
    """The names listed in ``__all__``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                      and isinstance(c.value, str)}  # fmt: skip
    return names


def names_in_string_annotations(tree: ast.Module) -> set[str]:
    """Names used only in quoted annotations (``x: "Path"``)."""
    names: set[str] = set()
    annotations = [n.annotation for n in ast.walk(tree) if isinstance(n, ast.arg | ast.AnnAssign)]
    annotations += [n.returns for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]  # fmt: skip
    for annotation in annotations:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                parsed = ast.parse(annotation.value, mode="eval")
            except SyntaxError:
                continue
            names |= {n.id for n in ast.walk(parsed) if isinstance(n, ast.Name)}
    return names


def bare_excepts(name: str, tree: ast.Module) -> list[Finding]:
    """``except:`` without an exception type."""
    why = "a bare except also catches KeyboardInterrupt and SystemExit"
    return [
        Finding(name, node.lineno, "bare-except", why)
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler) and node.type is None
    ]


def mutable_defaults(name: str, tree: ast.Module) -> list[Finding]:
    """A list, dict or set as a parameter's default value."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None and _mutable(default):
                    found.append(Finding(name, default.lineno, "mutable-default",
                                         "a mutable default is shared by every call"))  # fmt: skip
    return found


def _mutable(node: ast.expr) -> bool:
    if isinstance(node, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("list", "dict", "set"))  # fmt: skip


def missing_docstrings(name: str, tree: ast.Module) -> list[Finding]:
    """A module, or a public class, function or method, without a docstring."""
    found = []
    if tree.body and ast.get_docstring(tree) is None:
        found.append(Finding(name, 1, "missing-docstring", "the module has no docstring"))
    # Module level and class bodies: a function inside a function is its own business.
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.ClassDef):
            pending += node.body
        if not node.name.startswith("_") and ast.get_docstring(node) is None:
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            found.append(Finding(name, node.lineno, "missing-docstring",
                                 f"public {kind} {node.name!r} has no docstring"))  # fmt: skip
    return found
