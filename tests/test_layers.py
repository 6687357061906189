"""The package layers import only leftward (docs/architecture.md#conventions), with one
documented change.

model → emissions → sim → probes → control → evaluate → experiment → interop → estimate
→ report → cli

evaluate comes before experiment, not after as first proposed: training,
replications and sweeps (experiment) must compute KPIs (evaluate) of the runs
they orchestrate. See docs/architecture.md.
Checked on the source with ``ast`` (every import statement, also inside
functions), so the contract cannot silently erode.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gpssignal"
ORDER = ["model", "emissions", "sim", "probes", "control", "evaluate", "experiment",
         "interop", "live", "estimate", "report", "cli"]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "gpssignal" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def test_imports_follow_the_layer_order() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own not in ORDER:
            continue  # __init__.py / __main__.py of the package itself
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                layer = _layer(name)
                if layer in ORDER and ORDER.index(layer) > ORDER.index(own):
                    bad.append(f"{rel}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)


def test_only_report_may_import_matplotlib() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "matplotlib" in p.read_text(encoding="utf-8")
                 and p.relative_to(SRC).parts[0] != "report"]
    assert not offenders


def _runtime_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Every imported gpssignal module of a file, with its line, except imports
    under ``if TYPE_CHECKING:`` (they never run, so they cannot form a cycle)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the gpssignal modules it imports at run time (also inside functions).

    ``from gpssignal.a import b`` where ``b`` is a module counts as importing
    ``gpssignal.a.b``; a package ``__init__`` is an ordinary node.
    """
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for target, _ in _runtime_imports(tree):
            if target in modules and target != name:
                deps.add(target)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                deps |= {f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in modules}
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]], within: str) -> list[str] | None:
    """A cycle among the modules of package ``within`` (its ``__init__`` excluded), or None."""
    nodes = {m for m in graph if m.startswith(within + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m] & nodes):
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(nodes):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle_inside_a_package() -> None:
    graph = import_graph()
    packages = sorted({m.rsplit(".", 1)[0] for m in graph if m.count(".") >= 2} | {"gpssignal"})
    cycles = {p: c for p in packages if (c := find_cycle(graph, p)) is not None}
    assert not cycles, "\n".join(f"{p}: {' -> '.join(c)}" for p, c in cycles.items())


def test_the_cycle_check_finds_a_cycle() -> None:
    # The check itself must be able to fail: a hand-made cycle a -> b -> a.
    graph = {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set()}
    assert find_cycle(graph, "pkg") == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_cycle({"pkg.a": {"pkg.b"}, "pkg.b": set()}, "pkg") is None
