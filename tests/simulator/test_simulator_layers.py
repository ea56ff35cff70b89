"""The simulator's modules import each other without a circle.

Every ``from edged.simulator.X import ...`` (those under ``TYPE_CHECKING`` too: a circle
hidden there still ties the modules together) is read from the source, and the graph they
make must have no cycle. The routes take the narrow state they serve, not the simulator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edged.simulator

PACKAGE = Path(edged.simulator.__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """The ``edged.simulator`` modules ``path`` imports, by their last name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("edged.simulator."):
                found.add(node.module.split(".")[2])
            elif node.module == "edged.simulator":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("edged.simulator."):
                    found.add(alias.name.split(".")[2])
    return found


def test_no_import_cycle_among_the_simulator_modules() -> None:
    graph = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}
    assert {"server", "routes", "admin"} <= graph.keys()
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        if name in done:
            return
        for target in graph.get(name, set()):
            visit(target, (*trail, name))
        done.add(name)

    for module in graph:
        visit(module, ())


def test_the_routes_never_import_the_server() -> None:
    for name in ("routes", "admin", "wire"):
        assert "server" not in imports_of(PACKAGE / f"{name}.py"), name
