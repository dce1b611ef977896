"""The house by stage holds: imports point one way, no stage reaches into another's private
modules, the chain of imports stays short, and vupsert/ shows its stages at a glance.

The graph is read from the source as text (``ast``), as a newcomer's tools read it: a
package's ``__init__`` that re-exports is a node of the graph but not a step of a chain.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vupsert", "vupsert_server")
LONGEST_CHAIN = 12
ENTRIES = 16


def modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            init = parts[-1] == "__init__"
            found[".".join(parts[:-1] if init else parts)] = (path, init)
    return found


MODULES = modules()


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    path, init = MODULES[module]
    here = module if init else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here.split(".")[: len(here.split(".")) - (node.level - 1)] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
        else:
            continue
        targets |= {found for name in names if (found := resolve(name)) not in (None, module)}
    # `from pkg.mod import name` also names `pkg`: only the deepest module is the edge.
    return {t for t in targets if not any(o != t and o.startswith(t + ".") for o in targets)}


EDGES = {module: imports(module) for module in MODULES}


@functools.cache
def depth(module: str) -> int:
    step = 0 if MODULES[module][1] else 1
    return step + max((depth(d) for d in EDGES[module]), default=0)


def test_no_import_cycle() -> None:
    seen: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in seen:
            return
        for dependency in EDGES[module]:
            visit(dependency, (*path, module))
        seen.add(module)

    for module in MODULES:
        visit(module, ())


def test_the_longest_chain_of_imports_is_short() -> None:
    deepest = max(MODULES, key=depth)
    chain = [deepest]
    while EDGES[chain[-1]]:
        chain.append(max(EDGES[chain[-1]], key=depth))
    assert depth(deepest) <= LONGEST_CHAIN, " > ".join(chain)


def test_no_stage_imports_another_stages_private_module() -> None:
    reached = []
    for module, dependencies in EDGES.items():
        for dependency in dependencies:
            parts = dependency.split(".")
            private = next(
                (i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")),
                None,
            )
            if private is None:
                continue
            owner = ".".join(parts[:private])
            if module != owner and not module.startswith(owner + "."):
                reached.append(f"{module} -> {dependency}")
    assert reached == []


def test_the_server_imports_nothing_of_vupsert_but_its_filters() -> None:
    used = {
        dependency
        for module, dependencies in EDGES.items()
        if module.startswith("vupsert_server")
        for dependency in dependencies
        if not dependency.startswith("vupsert_server")
    }
    assert used <= {"vupsert.filters"}


def test_vupsert_shows_its_stages_at_a_glance() -> None:
    entries = [
        entry.name
        for entry in (ROOT / "vupsert").iterdir()
        if entry.name != "__pycache__" and (entry.suffix == ".py" or entry.is_dir())
    ]
    assert len(entries) <= ENTRIES, sorted(entries)
