"""The package layers import only leftward (STYLE.md §1, with one documented change).

model → emissions → sim → probes → control → evaluate → experiment → interop → estimate
→ report → cli

evaluate comes before experiment, not after as STYLE.md proposes: training,
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
         "interop", "estimate", "report", "cli"]


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
