"""Imports between dimcollapse's modules, read from the source with ``ast``: no circles (between
modules, and between the packages they belong to), and every import inside a function says why
it is there (the reasons are listed in :mod:`dimcollapse.lazy`'s docstring)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dimcollapse"

#: How a reason comment starts (dimcollapse.lazy's docstring says what each means).
REASONS = (
    "torch-free --help",
    "lean --help",
    "torchvision-free",
    "matplotlib-free",
    "optional:",
    "import circle:",
    "signals first:",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in FILES.items()}
PACKAGES = {name for name, path in FILES.items() if path.name == "__init__.py"}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: top-level statements, also inside a top-level
    ``if`` or ``try`` (not ``if TYPE_CHECKING:``, never true at run time)."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
        elif isinstance(stmt, ast.If):
            if not _is_type_checking(stmt.test):
                yield from _top_level_imports(stmt.body)
            yield from _top_level_imports(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody, *(h.body for h in stmt.handlers)):
                yield from _top_level_imports(block)


def _all_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _lazy_exports(package: str) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS`` table (name -> the module that defines it)."""
    for stmt in TREES[package].body:
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "_EXPORTS"
            and isinstance(stmt.value, ast.Dict)
        ):
            table = ast.literal_eval(stmt.value)
            return {k: v if v.startswith(PACKAGE) else f"{package}.{v}" for k, v in table.items()}
    return {}


LAZY = {package: _lazy_exports(package) for package in PACKAGES}


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The dimcollapse modules that running ``node`` in ``module`` imports: the module named,
    a submodule or lazily exported name taken from a package, and the packages above them (not
    ``module``'s own, which are being imported already)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = module.split(".") if module in PACKAGES else module.split(".")[:-1]
            here = here[: len(here) - node.level + 1]
            base = ".".join([*here, base] if base else here)
        named = [base]
        for alias in node.names:
            if f"{base}.{alias.name}" in FILES:
                named.append(f"{base}.{alias.name}")
            elif alias.name in LAZY.get(base, {}):
                named.append(LAZY[base][alias.name])
    out = set()
    for name in named:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        while name not in FILES:
            name = name.rsplit(".", 1)[0]
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            above = ".".join(parts[:i])
            if module == above or module.startswith(above + "."):
                break
            out.add(above)
    return out


def _graph(imports) -> dict[str, set[str]]:
    return {m: set().union(*(_targets(m, n) for n in imports(t))) - {m} for m, t in TREES.items()}


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _package_of(module: str) -> str:
    """``dimcollapse.reproduce.execute`` -> ``dimcollapse.reproduce``; a top-level module is its
    own node (``dimcollapse.config``)."""
    return ".".join(module.split(".")[:2])


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            a, b = _package_of(module), _package_of(target)
            if a != b and PACKAGE not in (a, b):
                out.setdefault(a, set()).add(b)
    return out


def _edges_within(graph: dict[str, set[str]], circle: frozenset[str], node_of) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if node_of(a) in circle and node_of(b) in circle and node_of(a) != node_of(b)
    )


def test_the_graph_sees_the_imports():
    """A check of the checker: known edges, relative imports and lazy exports resolve."""
    graph = _graph(lambda tree: _top_level_imports(tree.body))
    assert "dimcollapse.errors" in graph["dimcollapse.cli"]
    assert "dimcollapse.data.augment_config" in graph["dimcollapse.config"]
    # dimcollapse.probe's __init__ imports its modules; train/__init__ names its modules
    assert "dimcollapse.probe.features" in graph["dimcollapse.probe"]
    assert "dimcollapse.train.run" in graph["dimcollapse.train"]
    # the lazy tables are not imports, but a name taken from them imports its module
    assert graph["dimcollapse.data"] == {"dimcollapse.lazy"}
    assert LAZY["dimcollapse.data"]["load_dataset"] == "dimcollapse.data.datasets"
    assert LAZY["dimcollapse.toy"]["ToyConfig"] == "dimcollapse.toy.config"


def test_no_import_circle_between_modules():
    graph = _graph(lambda tree: _top_level_imports(tree.body))
    circles = _circles(graph)
    assert not circles, [_edges_within(graph, c, lambda m: m) for c in circles]


@pytest.mark.parametrize("where", ["top", "everywhere"])
def test_no_import_circle_between_packages(where):
    """Modules collapsed to the package below ``dimcollapse`` they belong to (a top-level module
    is its own node): no package imports one that imports it back. ``top``: the imports run on
    import; ``everywhere``: those inside functions too (imported later, but still a dependency)."""
    imports = (lambda t: _top_level_imports(t.body)) if where == "top" else _all_imports
    graph = _graph(imports)
    circles = set(_circles(_package_graph(graph)))
    assert not circles, [_edges_within(graph, c, _package_of) for c in circles]


def _function_imports(tree: ast.Module) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    """Every import inside a function, with the statements of the block that holds it."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for stmt in block:
                if in_function and isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    yield stmt, block
                if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                    continue
                inner = in_function or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                yield from visit(stmt, inner)
        for case in getattr(node, "cases", []):
            yield from visit(case, in_function)

    yield from visit(tree, False)


def _comment(line: str) -> str | None:
    """The comment of a source line (``#`` outside quotes), stripped, or None."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[i + 1 :].strip()
    return None


def _reason(lines: list[str], stmt: ast.stmt, block: list[ast.stmt]) -> str | None:
    """The comment on ``stmt``'s own lines, else the comment lines right above the run of
    imports it belongs to (consecutive import statements, the comment heading them)."""
    for number in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1):
        text = _comment(lines[number - 1])
        if text:
            return text
    first = stmt
    position = block.index(stmt)
    while position > 0 and isinstance(block[position - 1], (ast.Import, ast.ImportFrom)):
        position -= 1
        first = block[position]
    above: list[str] = []
    number = first.lineno - 1
    while number >= 1 and lines[number - 1].strip().startswith("#"):
        above.insert(0, lines[number - 1].strip()[1:].strip())
        number -= 1
    return " ".join(above) or None


def _unexplained() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, tree in TREES.items():
        path = FILES[name]
        lines = path.read_text(encoding="utf-8").splitlines()
        for stmt, block in _function_imports(tree):
            reason = _reason(lines, stmt, block)
            if reason is None or not reason.startswith(REASONS):
                rel = path.relative_to(SRC / PACKAGE).as_posix()
                out.setdefault(rel, []).append(
                    f"{rel}:{stmt.lineno}: {lines[stmt.lineno - 1].strip()}"
                )
    return out


def test_every_import_inside_a_function_says_why():
    """Imports go at the top of a module; one inside a function carries a reason (a comment that
    starts as one of REASONS, on its line or above its run of imports)."""
    unexplained = _unexplained()
    assert not unexplained, [line for lines in unexplained.values() for line in lines]


def test_the_reason_checker_reads_comments():
    source = (
        "def f():\n"
        "    # torch-free --help: torch,\n"
        "    # said on two lines\n"
        "    import torch\n"
        "    import numpy\n"
        "    x = 1\n"
        "    import json  # optional: json\n"
        "    import os\n"
        "    s = '# not a comment'; import re\n"
    )
    lines = source.splitlines()
    found = {s.lineno: _reason(lines, s, b) for s, b in _function_imports(ast.parse(source))}
    assert found == {
        4: "torch-free --help: torch, said on two lines",
        5: "torch-free --help: torch, said on two lines",
        7: "optional: json",
        8: None,
        9: None,
    }


def _imported_by(argv: list[str], tmp_path: Path) -> set[str]:
    """The top-level packages a fresh ``python -m dimcollapse ARGV`` imports (it must succeed)."""
    import os

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dimcollapse", *argv],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in proc.stderr.splitlines() if "|" in ln
    }


def test_spectrum_of_a_file_imports_no_torchvision_or_matplotlib(tmp_path):
    """The route benchmarks/bench_cli_start.py times: the reasons ``torchvision-free spectrum
    FILE`` and ``matplotlib-free spectrum`` keep it so."""
    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32))
    imported = _imported_by(["spectrum", "e.npy", "--json"], tmp_path)
    assert "torch" in imported
    assert not imported & {"torchvision", "matplotlib"}


def test_toy_without_figures_imports_no_torchvision_or_matplotlib(tmp_path):
    imported = _imported_by(
        ["toy", "two-layer", "--steps", "4", "--track-every", "2", "--dim", "4",
         "--eval-samples", "64", "--no-figures", "--out", "out"],
        tmp_path,
    )  # fmt: skip
    assert "torch" in imported
    assert not imported & {"torchvision", "matplotlib"}
