"""The import graph of sonogan has no cycles: neither between two files nor between two top-level
folders, directly or round about, counting every import (inside functions and under
``TYPE_CHECKING`` too). ``lint-imports`` (the ``.importlinter`` layers contract, run by
``make test``) checks the direction of the layers; this test checks what a layers contract
cannot see: cycles inside one layer and between the files of one folder.

An import of ``pkg.sub`` counts as an import of the file ``pkg/sub.py``; ``from pkg import sub``
also counts as an import of ``pkg/__init__.py``, because that line runs it and reads a name
from it. So a package ``__init__`` that re-exports its submodules makes a cycle with any
submodule that imports a sibling through it; submodules import ``pkg.sibling`` directly.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections import defaultdict
from pathlib import Path

import sonogan

SRC = Path(sonogan.__file__).parent
ROOT = Path(__file__).resolve().parents[1]


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``root``."""
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _owner(name: str, mods: dict[str, Path]) -> str | None:
    """The module that defines ``name`` (a module, or a name inside one)."""
    while name not in mods:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: climb level-1 packages up from the file's own package
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (ast.walk visits the
    bodies of functions, classes and ``if TYPE_CHECKING:`` blocks alike)."""
    mods = module_files(root)
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, package):
                    owner = _owner(target, mods)
                    if owner is not None and owner != mod:
                        edges[mod].add(owner)
    return edges


def folder_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between top-level parts (``sonogan.data``, ``sonogan.runs``, ...)."""
    def top(mod: str) -> str:
        return ".".join(mod.split(".")[:2])

    folders: dict[str, set[str]] = defaultdict(set)
    for src, dsts in edges.items():
        folders[top(src)] |= {top(d) for d in dsts if top(d) != top(src)}
    return folders


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan's algorithm, iterative so
    a deep graph cannot hit the recursion limit); each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    nodes = sorted(set(graph) | {d for dsts in graph.values() for d in dsts})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def uncommented_local_imports(root: Path) -> list[str]:
    """``file:function`` for every function that imports inside its body without a comment saying
    why (on an import line, or on one of the three lines before the first one)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for fn in ast.walk(ast.parse(text, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            at = sorted({n.lineno for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))})
            if at and not any("#" in lines[i - 1] for i in at) and \
                    not any("#" in lines[i] for i in range(max(at[0] - 4, 0), at[0] - 1)):
                found.append(f"{path.relative_to(root.parent)}:{fn.name}")
    return found


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


def test_analysis_finds_cycles_through_an_init_a_function_and_type_checking(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from pkg.low.b import B\n",                    # re-exports b
        "pkg/low/a.py": "",
        "pkg/low/b.py": "from pkg.low import a\nB = 1\n",                     # runs pkg/low/__init__.py
        "pkg/low/c.py": "def f():\n    from pkg.high.d import D\n",           # inside a function
        "pkg/high/__init__.py": "",
        "pkg/high/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..low.c import f\nD = 2\n",
        "pkg/high/e.py": "import pkg.low.b as b\n",
    })
    edges = import_graph(pkg)
    assert dict(edges) == {"pkg.low": {"pkg.low.b"}, "pkg.low.b": {"pkg.low", "pkg.low.a"},
                           "pkg.low.c": {"pkg.high.d"}, "pkg.high.d": {"pkg.low.c"}, "pkg.high.e": {"pkg.low.b"}}
    assert cycles(edges) == [["pkg.high.d", "pkg.low.c"], ["pkg.low", "pkg.low.b"]]
    assert dict(folder_graph(edges)) == {"pkg.low": {"pkg.high"}, "pkg.high": {"pkg.low"}}
    assert cycles(folder_graph(edges)) == [["pkg.high", "pkg.low"]]


def test_an_uncommented_import_inside_a_function_is_found(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def bare():\n    import json\n\n\ndef why():\n    # optional: only for X\n    import json\n",
        "pkg/b.py": "def inline():\n    import json  # slow to import\n",
    })
    assert uncommented_local_imports(pkg) == ["pkg/a.py:bare"]


def test_imports_inside_functions_say_why() -> None:
    # only optional or slow dependencies are imported inside a function (docs/architecture.md)
    assert uncommented_local_imports(SRC) == []


def test_no_two_files_import_each_other() -> None:
    assert cycles(import_graph(SRC)) == []


def test_no_two_top_level_folders_import_each_other() -> None:
    assert cycles(folder_graph(import_graph(SRC))) == []


def test_the_documented_layers_are_the_checked_ones() -> None:
    # docs/architecture.md draws the layers of .importlinter: the picture must not drift from the contract
    contract = configparser.ConfigParser()
    contract.read(ROOT / ".importlinter")
    checked = [" ".join(line.split()) for line in contract["importlinter:contract:layers"]["layers"].split("\n") if line]
    picture = (ROOT / "docs" / "architecture.md").read_text().split("## The layers", 1)[1].split("```")[1]
    drawn = [" ".join(re.split(r" {2,}", line.strip())[0].split()) for line in picture.splitlines()
             if line.strip() and line.strip() != "|"]
    assert drawn == checked
