"""Fail (exit 1) when modules of a package import each other in a circle, counting every import
(function-local ones too) except those under ``if TYPE_CHECKING:``; run by `make lint`.

Why a script and not an import-linter contract: its cycle contract (acyclic_siblings) only looks
at siblings of one package, and skipping TYPE_CHECKING imports is a global switch there that would
also let a type-only import point up the layers unnoticed. Usage: python scripts/import_cycles.py [tprm]
"""
from __future__ import annotations

import sys
from pathlib import Path

import grimp

# the checkout this script is in, not whichever tprm is installed (a worktree beside an editable
# install of another clone was checked against that clone's code)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cycles(package: str) -> list[list[str]]:
    """The import circles among `package`'s modules: strongly connected groups of 2+ modules."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    for root in edges:  # Tarjan's algorithm, iterative (no recursion limit on deep graphs)
        if root in order:
            continue
        work = [(root, iter(edges[root]))]
        order[root] = low[root] = len(order)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    work.append((child, iter(edges[child])))
                elif child in stack:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    out.append(sorted(group))
    return out


def main(argv: list[str]) -> int:
    package = argv[0] if argv else "tprm"
    where = Path(__import__(package).__file__).parent
    found = cycles(package)
    for group in found:
        print(f"import circle (outside TYPE_CHECKING): {' <-> '.join(group)}")
    if not found:
        print(f"{package} ({where}): no import circles outside TYPE_CHECKING blocks")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
