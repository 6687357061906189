"""Compiled kernels (``gpssignal._compiled``): deferred numba functions and the kernel library.

* A module's deferred kernels compile together at the first call, a kernel
  taken from another module included, and nothing imports numba before.
* The library's type key tells argument types apart exactly as numba's own
  typing does (Hypothesis), so a call never reaches code compiled for other
  types.
* ``gpssignal build-kernels`` builds a library that runs without numba and
  gives byte-identical outputs to numba's just-in-time code, on one and on
  several junctions; its errors are one line with exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpssignal._compiled import _type_key

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_deferred_kernels_compile_with_their_module(tmp_path: Path) -> None:
    """No numba at import; at the first call both modules' kernels go to numba together."""
    (tmp_path / "kmod_a.py").write_text(textwrap.dedent("""
        from gpssignal._compiled import njit

        @njit
        def twice(x):
            return 2.0 * x
        """))
    (tmp_path / "kmod_b.py").write_text(textwrap.dedent("""
        from gpssignal._compiled import njit
        from kmod_a import twice

        @njit(cache=False)
        def _plus_one(x):
            return x + 1.0

        @njit(cache=False)
        def both(x):
            return twice(_plus_one(x))
        """))
    code = textwrap.dedent("""
        import sys
        import kmod_b
        assert "numba" not in sys.modules
        from gpssignal._compiled import Kernel
        assert isinstance(kmod_b.both, Kernel)
        assert kmod_b.both(3.0) == 8.0
        import numba
        from numba.core.registry import CPUDispatcher
        # Each module's globals now name numba's dispatchers (what numba compiled with).
        assert isinstance(vars(kmod_b)["both"], CPUDispatcher)
        assert isinstance(vars(kmod_b)["twice"], CPUDispatcher)
        assert vars(kmod_b)["twice"] is sys.modules["kmod_a"].twice
        assert kmod_b.both.py_func(3.0) == 8.0
        print("ok")
        """)
    r = _python(code, env={"PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


# --- the type key against numba's typing --------------------------------------

_DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_]


@st.composite
def _arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(_DTYPES))
    shape = draw(st.sampled_from([(0,), (1,), (5,), (1, 4), (3, 4), (4, 1)]))
    a = np.zeros(shape, dtype=dtype)
    view = draw(st.sampled_from(["plain", "transpose", "step", "readonly"]))
    if view == "transpose":
        a = a.T
    elif view == "step" and a.shape[-1] > 1:
        a = a[..., ::2]
    elif view == "readonly":
        a.flags.writeable = False
    return a


_SCALARS = [1, 0, 2.5, True, np.int64(3), np.int32(3), np.float32(1.5), np.float64(2.0),
            np.bool_(False)]


def _variants(a: np.ndarray) -> list[object]:
    """``a`` and its near neighbours: each differs from it in one property numba may type."""
    ro = a.copy()
    ro.flags.writeable = False
    out: list[object] = [a, a.copy(), ro, a.T, a[..., ::2], np.asfortranarray(a),
                         *(a.astype(d) for d in _DTYPES), a.reshape(-1), (a,), (a, a),
                         (ro, a), ((a,),), *_SCALARS]
    return out


@settings(max_examples=60, deadline=None)
@given(_arrays())
def test_type_key_tells_apart_what_numba_types_apart(a: np.ndarray) -> None:
    # Every pair of neighbours: equal numba types must give equal keys and
    # different types different keys, or the library would be called with
    # arguments its code was not compiled for.
    values = _variants(a)
    for x in values:
        for y in values:
            assert (_type_key((x,)) == _type_key((y,))) == (numba.typeof(x) == numba.typeof(y)), \
                (numba.typeof(x), numba.typeof(y))


# --- the library ---------------------------------------------------------------

_RUN_CODE = textwrap.dedent("""
    import json, sys
    from gpssignal.cli import main
    main(["run", sys.argv[1], "-q", "--out", sys.argv[2]])
    print(json.dumps(sorted(m for m in ("numba", "llvmlite") if m in sys.modules)))
    """)


def _run(scenario: str, out: Path, kernels: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", _RUN_CODE, str(REPO / "scenarios" / scenario),
                        str(out)], capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": kernels})
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout.strip().splitlines()[-1]))


def test_library_runs_without_numba_and_gives_the_same_files(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    built = subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                           capture_output=True, text=True,
                           env={**os.environ, "GPSSIGNAL_KERNELS": str(lib)})
    assert built.returncode == 0, built.stderr
    assert "built and checked" in built.stdout
    assert len(list(lib.glob("_gpssignal_kernels.*.json"))) == 1
    again = subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                           capture_output=True, text=True,
                           env={**os.environ, "GPSSIGNAL_KERNELS": str(lib)})
    assert "current" in again.stdout
    for scenario in ("tiny.toml", "vallensbaek_corridor.toml"):
        aot, jit = tmp_path / f"aot-{scenario}", tmp_path / f"jit-{scenario}"
        assert _run(scenario, aot, str(lib)) == []          # numba never imported
        assert _run(scenario, jit, "jit") == ["llvmlite", "numba"]
        log = json.loads((aot / "run.log.json").read_text())
        assert log["kernels"] == "ahead-of-time"
        assert json.loads((jit / "run.log.json").read_text())["kernels"] == "just-in-time"
        names = sorted(p.name for p in aot.iterdir())
        assert names == sorted(p.name for p in jit.iterdir())
        for name in names:
            if name != "run.log.json":   # timings differ by nature
                assert (aot / name).read_bytes() == (jit / name).read_bytes(), name


def test_library_of_other_sources_is_not_used(tmp_path: Path) -> None:
    """A library whose key is not the present sources' is ignored (never half-used)."""
    (tmp_path / "_gpssignal_kernels.00000000000000000000.json").write_text("{}")
    code = ("from gpssignal._compiled import kernels_in_use\nprint(kernels_in_use())")
    r = _python(code, env={"GPSSIGNAL_KERNELS": str(tmp_path)})
    assert r.stdout.strip() == "just-in-time", r.stderr


@pytest.mark.parametrize(("env", "message"), [
    ("jit", "GPSSIGNAL_KERNELS = 'jit': the kernel library is turned off"),
    ("FILE", "GPSSIGNAL_KERNELS folder"),
])
def test_build_kernels_errors_are_one_line(tmp_path: Path, env: str, message: str) -> None:
    if env == "FILE":
        env = str(tmp_path / "a-file")
        Path(env).write_text("not a folder")
    r = subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                       capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": env})
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
