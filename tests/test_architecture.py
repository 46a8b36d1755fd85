"""The map stays true: docs/architecture.md names every module, and imports run one way."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "wyoming_orpheus"

# Floors from the top (entry) down; a module may import its own floor and those below.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("__main__", "healthcheck"),
    ("wyoming_server", "http_api"),
    ("engine",),
    ("synthesis",),
    ("playout", "outcomes", "sockets"),
    ("audio",),
    ("decode",),
    ("fetch",),
    ("managed",),
    ("upstream",),
    ("text",),
    ("config",),
    ("voices", "metrics", "loop_lag", "errors", "format", ""),
)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def floor(module: str) -> int:
    """The floor of a dotted module inside the package ("" is the package itself)."""
    first = module.split(".")[0]
    for index, names in enumerate(FLOORS):
        if first in names:
            return index
    raise AssertionError(f"module {module} is on no floor: add it to FLOORS and the doc")


def imports(path: Path) -> list[str]:
    """The package-internal modules a file imports, as dotted names inside the package."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            found.append(".".join([*base, *([node.module] if node.module else [])]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE.name):
            found.append(node.module.removeprefix(PACKAGE.name).lstrip("."))  # type: ignore[union-attr]
    return found


def test_the_architecture_page_names_every_module_and_only_real_ones() -> None:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page[page.index("## Modules") : page.index("### Settings")]
    named = set(re.findall(r"^\| `([\w/]+\.py)` \|", table, re.M))
    present = {str(p.relative_to(PACKAGE)) for p in modules()}
    assert named - present == set(), "named in docs/architecture.md but missing"
    assert present - named == set(), "modules docs/architecture.md does not name"


def test_every_package_says_what_it_owns() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{init} has no docstring"


def test_imports_run_one_way_from_the_entry_down() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for target in imports(path):
            if target == "" and path.name != "__init__.py":
                continue  # `from .. import __version__`: the package's own metadata
            if floor(target) < floor(here):
                upward.append(f"{here} -> {target}")
    assert upward == []


def package_graph() -> dict[str, set[str]]:
    """Which top-level packages (or root modules) of ours each one imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        here = path.relative_to(PACKAGE).with_suffix("").parts[0]
        for target in imports(path):
            first = target.split(".")[0]
            if first and first != here:
                graph.setdefault(here, set()).add(first)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (a cycle), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            if group:
                found.append(sorted([node, *group]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_package_imports_another_that_imports_it_back() -> None:
    # Issue 30: upstream/rate.py imported decode.snac while decode/streams.py imported
    # upstream.tokens; floors shared by several packages could not see it.
    assert cycles(package_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"decode": {"upstream"}, "upstream": {"format", "decode"}}) == [
        ["decode", "upstream"]
    ]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_module_outgrows_its_concern() -> None:
    # ~400 lines; text/units.py is mostly its unit tables. (config/settings.py, 592 lines of
    # every declaration, is split by section since issue 30.)
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert set(long) <= {"text/units.py"}, long


def test_the_format_and_the_pure_playout_rule_import_neither_torch_nor_numpy() -> None:
    # Issue 30: the rule imported torch through upstream/rate.py -> decode/snac.py.
    pure = [
        "wyoming_orpheus.format",
        "wyoming_orpheus.upstream.rate",
        "wyoming_orpheus.playout.rule",
        "wyoming_orpheus.playout.timeline",
        "wyoming_orpheus.playout.holder",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in pure)
        + ("print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"
