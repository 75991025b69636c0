"""The library's modules import each other without a cycle, counting the imports made inside functions
(a cycle hidden there still ties the two modules together)."""
import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "segsort"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def test_no_import_cycle_in_the_library():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    graph = nx.DiGraph()
    for path in paths:
        source = module_name(path)
        graph.add_edges_from((source, target) for target in imported_modules(path, modules)
                             if target != source and not source.startswith(f"{target}."))  # a package's own parent
    assert list(nx.simple_cycles(graph)) == []
