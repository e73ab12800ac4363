"""The package's layers (docs/architecture.md): imports only go down, nothing imports in a circle, and no
package reaches into another's private modules."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

import motet

PACKAGE = Path(motet.__file__).parent

LAYERS: dict[str, int] = {
    "motet.errors": 0,
    "motet.units": 1,
    "motet.settings": 1,
    "motet._build": 1,
    "motet._http": 1,
    "motet._json": 1,
    "motet._anvil": 1,
    "motet.chain": 2,
    "motet.runtimes": 3,
    "motet.payments": 4,  # a receipt names the model (runtimes) that produced the answer
    "motet.registry": 5,  # shares the payments' typed-data core and validators
    "motet.agents": 6,
    "motet.trust": 7,  # checks answers, disputes them, records reputation: above the agents it judges
    "motet.composer": 8,
    "motet.gateway": 9,
    "motet.tui": 9,
    "motet.demo": 10,
    "motet.cli": 11,
    "motet.__main__": 12,
    "motet": 12,  # the top-level __init__ re-exports the public names of every layer
}
"""A module may import modules of a lower layer and of its own area; never a higher layer or a sibling area."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _area(module: str) -> str:
    """The longest key of LAYERS that `module` is, or is inside of."""
    candidates = [key for key in LAYERS if module == key or module.startswith(key + ".")]
    if not candidates:
        raise AssertionError(f"{module} belongs to no layer: add its area to LAYERS and docs/architecture.md")
    return max(candidates, key=len)


def _imports(path: Path, module: str) -> set[str]:
    """Every motet module `path` imports, anywhere in the file (functions and TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            # `from motet.payments import vouchers` imports a module, not a name.
            found.update(f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}"))
    return {name for name in found if name == "motet" or name.startswith("motet.")}


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").exists() or (PACKAGE.parent / relative).is_dir()


def _graph() -> nx.DiGraph:
    graph: nx.DiGraph = nx.DiGraph()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        graph.add_node(module)
        for imported in _imports(path, module):
            if imported != module:
                graph.add_edge(module, imported)
    return graph


GRAPH = _graph()


def test_every_module_has_a_layer() -> None:
    for module in GRAPH:
        _area(module)


def test_no_module_imports_from_a_layer_above_or_a_sibling_area() -> None:
    wrong = []
    for module, imported in GRAPH.edges:
        if module == "motet" or imported == "motet":
            continue
        source, target = _area(module), _area(imported)
        if source != target and LAYERS[target] >= LAYERS[source]:
            wrong.append(f"{module} imports {imported} ({target} is not below {source})")
    assert wrong == []


def test_no_import_circle() -> None:
    # Within a package, `__init__` re-exports its modules; that edge is not a circle a reader trips on.
    graph = GRAPH.copy()
    graph.remove_edges_from([(a, b) for a, b in GRAPH.edges if b == a.rpartition(".")[0] or b == "motet"])
    assert list(nx.simple_cycles(graph)) == []


@pytest.mark.parametrize("area", ["motet.tui", "motet.gateway", "motet.cli", "motet.demo", "motet.composer"])
def test_no_area_reaches_into_another_areas_private_modules(area: str) -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, imported in GRAPH.edges
        if _area(module) == area
        and _area(imported) != area
        and any(part.startswith("_") and part != "__init__" for part in imported.split("."))
        and imported not in ("motet._build", "motet._http", "motet._json")
    ]
    assert wrong == []
