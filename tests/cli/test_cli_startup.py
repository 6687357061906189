"""Start-up: a command imports what it uses, not what other commands use (issue 18).

Each check runs the command in a fresh interpreter and lists which heavy
modules ended up imported. ``run`` needs numpy, numba, simpy and (for its
tables) pandas and pyarrow; it never draws, estimates, stores to DuckDB or
computes a confidence interval, so matplotlib, jinja2, duckdb, scipy.stats
and the estimate package must stay out. ``--version`` needs none of the
scientific stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"

#: Modules no ``gpssignal run`` needs.
NOT_FOR_RUN = ("matplotlib", "jinja2", "duckdb", "scipy.stats", "gpssignal.estimate",
               "gpssignal.report.plots", "dask")
#: Modules ``gpssignal --version`` needs none of.
NOT_FOR_VERSION = ("numpy", "pandas", "pyarrow", "numba", "simpy", "scipy", *NOT_FOR_RUN)


def _imported(argv: list[str], names: tuple[str, ...]) -> list[str]:
    code = ("import json, sys\nfrom gpssignal.cli import main\n"
            "try:\n    main(json.loads(sys.argv[1]))\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([m for m in json.loads(sys.argv[2]) if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(argv), json.dumps(names)],
                         capture_output=True, text=True, check=True).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_run_imports_only_what_it_uses(tmp_path: Path) -> None:
    assert _imported(["run", str(TINY), "-q", "--out", str(tmp_path / "out")],
                     NOT_FOR_RUN) == []
    assert (tmp_path / "out" / "summary.csv").is_file()   # it did run


def test_version_imports_no_scientific_stack() -> None:
    assert _imported(["--version"], NOT_FOR_VERSION) == []
