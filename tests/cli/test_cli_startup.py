"""Start-up: a command imports what it uses, not what other commands use (issue 18).

Each check runs the command in a fresh interpreter and lists which heavy
modules ended up imported. ``run`` needs numpy, numba, simpy and (for its
tables) pandas and pyarrow; it never draws, estimates, stores to DuckDB or
computes a confidence interval, so matplotlib, jinja2, duckdb, scipy.stats
and the estimate package must stay out, and so must scipy.linalg, which
numba would import only to probe for BLAS (``lean_numba_start``). ``--version``
needs none of the scientific stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"

#: Modules no ``gpssignal run`` needs.
NOT_FOR_RUN = ("matplotlib", "jinja2", "duckdb", "scipy.stats", "scipy.linalg",
               "gpssignal.estimate", "gpssignal.report.plots", "dask")
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


def test_lean_numba_start_keeps_blas_for_compiled_code() -> None:
    """With numba's BLAS probe skipped, np.dot still compiles and scipy.linalg still imports."""
    code = ("import sys\nimport numpy as np\nfrom numba import njit\n"
            "from gpssignal._compiled import lean_numba_start\n"
            "lean_numba_start()\n"
            "assert 'numba.np.arraymath' in sys.modules and 'scipy.linalg' not in sys.modules\n"
            "a = np.arange(6.0)\n"
            "assert njit(lambda x, y: np.dot(x, y))(a, a) == 55.0\n"
            "assert njit(lambda x, y: np.convolve(x, y))(a, a)[5] == np.convolve(a, a)[5]\n"
            "import scipy.linalg\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "ok"


def _arrow_pool(tmp_path: Path, env: dict[str, str]) -> list[str]:
    code = ("import os, sys\nfrom gpssignal.cli import main\n"
            "main(['run', sys.argv[1], '-q', '--out', sys.argv[2]])\n"
            "import pyarrow as pa\n"
            "print(pa.default_memory_pool().backend_name, "
            "os.environ.get('ARROW_DEFAULT_MEMORY_POOL', '-'))\n")
    out = subprocess.run([sys.executable, "-c", code, str(TINY), str(tmp_path / "out")],
                         capture_output=True, text=True, check=True, env=env).stdout
    return out.split()


def test_run_allocates_arrow_memory_with_malloc(tmp_path: Path) -> None:
    """pyarrow's mimalloc pool kept ~20 MB more resident (lean_arrow_pool); a user's choice wins."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _arrow_pool(tmp_path / "a", env) == ["system", "-"]   # and the variable not left set
    assert _arrow_pool(tmp_path / "b", {**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == \
        ["mimalloc", "mimalloc"]
