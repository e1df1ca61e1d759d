"""Rules of the package's shape: no import circles, no core module reaching into a backend's
private modules, and a contract module that holds only the contract."""

from __future__ import annotations

import ast
import io
import tokenize

from .imports import PACKAGE_DIR, cycles, import_graph, imported_modules, module_files

BACKENDS = ("dispytch.kafka", "dispytch.rabbitmq", "dispytch.memory", "dispytch.redis")

#: circles another branch of issue 9 removes (the listener and its signal handling); remove
#: the entry once that lands: the test then holds the package to no circles at all


def test_no_import_circles_among_dispytch_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def _backend_of(module: str) -> str | None:
    return next((b for b in BACKENDS if module == b or module.startswith(b + ".")), None)


def _is_private(module: str) -> bool:
    return any(part.startswith("_") and part != "__init__" for part in module.split("."))


def test_no_module_imports_a_private_module_of_another_package() -> None:
    """Core modules (and other backends) use a backend's public modules only, lazily or not."""
    files = module_files()
    known = set(files)
    offenders = []
    for name, path in files.items():
        for target in imported_modules(name, path, known, everywhere=True):
            owner = _backend_of(target)
            if owner is not None and _is_private(target) and _backend_of(name) != owner:
                offenders.append(f"{name} imports {target}")
    assert offenders == []


def test_the_contract_module_is_under_150_lines_of_code() -> None:
    source = (PACKAGE_DIR / "backends" / "base.py").read_text()
    docstrings = {
        node.body[0].value.lineno  # type: ignore[attr-defined]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                          tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            continue
        code_lines.add(token.start[0])
    assert len(code_lines) < 150, f"{len(code_lines)} lines of code in backends/base.py"
