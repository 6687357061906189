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
from typing import Any

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


#: numpy Generators on two bit generators (one numba type: compiled code draws
#: through whichever bit generator's own functions).
_GENERATORS = [np.random.default_rng(1), np.random.Generator(np.random.MT19937(1))]
_SCALARS = [1, 0, 2.5, True, np.int64(3), np.int32(3), np.float32(1.5), np.float64(2.0),
            np.bool_(False)]


def _variants(a: np.ndarray) -> list[object]:
    """``a`` and its near neighbours: each differs from it in one property numba may type."""
    ro = a.copy()
    ro.flags.writeable = False
    out: list[object] = [a, a.copy(), ro, a.T, a[..., ::2], np.asfortranarray(a),
                         *(a.astype(d) for d in _DTYPES), a.reshape(-1), (a,), (a, a),
                         (ro, a), ((a,),), *_SCALARS, *_GENERATORS]
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


def test_kernels_are_found_from_their_dispatchers_and_resolved_once(tmp_path: Path) -> None:
    """``Kernel.of`` finds a kernel once its module's globals name dispatchers; ``Resolved``
    looks the types up at the first call and after ``forget`` only."""
    (tmp_path / "kmod_r.py").write_text(textwrap.dedent("""
        from gpssignal._compiled import njit

        @njit(cache=False)
        def add_into(out, x):
            for i in range(out.shape[0]):
                out[i] += x
            return out.shape[0]
        """))
    code = textwrap.dedent("""
        import numpy as np
        import kmod_r
        from gpssignal._compiled import Kernel, Resolved, call
        kernel = kmod_r.add_into
        looked = []
        resolve = Kernel.resolve
        Kernel.resolve = lambda self, *a: looked.append(1) or resolve(self, *a)
        site = Resolved(kernel)
        a = np.zeros(3)
        assert site(a, 1.0) == 3 and site(a, 2.0) == 3 and list(a) == [3.0] * 3
        assert len(looked) == 1
        site.forget()
        site(a, 1.0)
        assert len(looked) == 2
        dispatcher = vars(kmod_r)["add_into"]          # handed to numba by the first call
        assert not isinstance(dispatcher, Kernel) and Kernel.of(dispatcher) is kernel
        assert call(dispatcher, a, 1.0) == 3 and list(a) == [5.0] * 3
        print("ok")
        """)
    r = _python(code, env={"PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_type_key_marks_what_it_does_not_type_exactly() -> None:
    """Kinds numba types by more than the key sees are marked, and so never exported."""
    import collections
    import enum

    pair = collections.namedtuple("pair", "a b")

    class Colour(enum.IntEnum):
        RED = 1

    inexact = [pair(1.0, 2.0), [1, 2], Colour.RED, None, 2 ** 70, "text",
               np.zeros(3, dtype=[("a", "f8"), ("b", "i8")]), np.zeros(3, dtype=object),
               np.zeros(3, dtype=">f8")]
    for x in inexact:
        assert "?" in _type_key((x,)), x
        assert "?" in _type_key(((1.0, x),)), x   # inside a tuple too
    assert "?" not in _type_key((np.zeros(3), 1, 2.0, True, (np.int32(1),)))


# --- the library ---------------------------------------------------------------

_RUN_CODE = textwrap.dedent("""
    import json, sys
    from gpssignal.cli import main
    main(["run", *sys.argv[1:], "-q"])
    print(json.dumps(sorted(m for m in ("numba", "llvmlite") if m in sys.modules)))
    """)


def _run(args: list[str], kernels: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", _RUN_CODE, *args], capture_output=True,
                       text=True, env={**os.environ, "GPSSIGNAL_KERNELS": kernels})
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout.strip().splitlines()[-1]))


def _build(folder: Path, temp: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = {} if temp is None else {"TMPDIR": str(temp)}
    return subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                          capture_output=True, text=True,
                          env={**os.environ, "GPSSIGNAL_KERNELS": str(folder), **extra})


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel library built (and checked by the build) in a folder of its own."""
    folder = tmp_path_factory.mktemp("kernels")
    temp = tmp_path_factory.mktemp("system-temp")
    built = _build(folder, temp)
    assert built.returncode == 0, built.stderr
    assert "built and checked" in built.stdout
    # numba's compiler probe leaves temporary folders; the build keeps them
    # in its own folder, which it removes: nothing is left in the system's.
    assert list(temp.iterdir()) == []
    return folder


def _logged(out: Path) -> str:
    return str(json.loads((out / "run.log.json").read_text())["kernels"])


def test_library_runs_without_numba_and_gives_the_same_files(library: Path,
                                                              tmp_path: Path) -> None:
    assert len(list(library.glob("_gpssignal_kernels.*.json"))) == 1
    assert "current" in _build(library).stdout          # a second build does nothing
    cases = [("tiny.toml", ["--trajectories"]),          # refills the trajectory buffer
             ("vallensbaek_corridor.toml", [])]
    for scenario, extra in cases:
        aot, jit = tmp_path / f"aot-{scenario}", tmp_path / f"jit-{scenario}"
        path = str(REPO / "scenarios" / scenario)
        assert _run([path, "--out", str(aot), *extra], str(library)) == []  # no numba
        assert _run([path, "--out", str(jit), *extra], "jit") == ["llvmlite", "numba"]
        assert _logged(aot) == "ahead-of-time"
        assert _logged(jit) == "just-in-time"
        names = sorted(p.name for p in aot.iterdir())
        assert names == sorted(p.name for p in jit.iterdir())
        for name in names:
            if name != "run.log.json":   # timings differ by nature
                assert (aot / name).read_bytes() == (jit / name).read_bytes(), name


def _copy_library(library: Path, to: Path, key: str | None = None, table: str | None = None,
                  truncate: bool = False, exports: str | None = None,
                  cpu: str | None = None) -> None:
    """Copy the library into ``to``: under another key, with another table, other
    exports or another CPU in its table, or cut short."""
    from gpssignal._compiled import IMPORTED_KEY, _paths

    assert IMPORTED_KEY is not None
    so, tab = _paths(library, IMPORTED_KEY)
    to.mkdir()
    so2, tab2 = _paths(to, key or IMPORTED_KEY)
    data = so.read_bytes()
    so2.write_bytes(data[: len(data) // 3] if truncate else data)
    text = tab.read_text()
    if exports is not None:   # every real type key, mapped to the name ``exports``
        old = json.loads(text)
        text = json.dumps({**old, "exports": {k: dict.fromkeys(v, exports)
                                              for k, v in old["exports"].items()}})
    if cpu is not None:
        text = json.dumps({**json.loads(text), "cpu": cpu})
    tab2.write_text(text if table is None else table)


@pytest.mark.parametrize("damage", [
    {"key": "0" * 20},                    # built from other sources
    {"table": "[]"},                      # a table that is not a table
    {"truncate": True},                   # a cut-short extension (would crash the loader)
    {"exports": "nope"},                  # the table names an export the library lacks
    {"cpu": "0123456789abcdef"},          # built for another CPU's instruction set
])
def test_a_library_not_current_or_not_sound_is_not_used(library: Path, tmp_path: Path,
                                                        damage: dict[str, Any]) -> None:
    folder = tmp_path / "lib"
    _copy_library(library, folder, **damage)
    out = tmp_path / "out"
    assert _run([str(REPO / "scenarios" / "tiny.toml"), "--out", str(out)],
                str(folder)) == ["llvmlite", "numba"]
    assert _logged(out) == "just-in-time"


def test_a_step_the_library_was_not_built_for_runs_with_numba(library: Path,
                                                             tmp_path: Path) -> None:
    """A 0.1 s step takes the Python step loop, whose kernels numba compiles; the log says so."""
    text = (REPO / "scenarios" / "tiny.toml").read_text()
    assert "step_s = 0.5" in text
    scenario = tmp_path / "tiny_fine.toml"
    scenario.write_text(text.replace("step_s = 0.5", "step_s = 0.1"))
    out = tmp_path / "out"
    assert _run([str(scenario), "--out", str(out)], str(library)) == ["llvmlite", "numba"]
    assert _logged(out) == "just-in-time"


def test_numba_debugging_settings_turn_the_library_off(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", _RUN_CODE, str(REPO / "scenarios" / "tiny.toml"),
                        "--out", str(out)], capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": str(library),
                            "NUMBA_BOUNDSCHECK": "1"})
    assert r.returncode == 0, r.stderr
    assert _logged(out) == "just-in-time"


@pytest.mark.parametrize(("env", "message"), [
    ("jit", "GPSSIGNAL_KERNELS = 'jit': the kernel library is turned off"),
    ("relative/folder", "GPSSIGNAL_KERNELS = 'relative/folder': must be 'jit' or an absolute"),
    ("FILE", "cannot build the kernel library there"),
])
def test_build_kernels_errors_are_one_line(tmp_path: Path, env: str, message: str) -> None:
    if env == "FILE":
        env = str(tmp_path / "a-file")
        Path(env).write_text("not a folder")
    r = _build(Path(env)) if env != "jit" and not env.startswith("relative") else \
        subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                       capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": env})
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_the_library_holds_the_gil_and_counts_references_plainly(library: Path) -> None:
    """The premise of the library's non-atomic reference counts: it never releases the GIL.

    ``pycc``'s entry points hold the GIL from call to return, so the plain
    increments ``_plain_reference_counts`` asks for cannot race: an
    extension that released it would import ``PyEval_SaveThread``.
    """
    from gpssignal._compiled import IMPORTED_KEY, _paths

    assert IMPORTED_KEY is not None
    so, _ = _paths(library, IMPORTED_KEY)
    data = so.read_bytes()
    # (It does import PyGILState_Ensure/Release: taking the GIL, not leaving it.)
    assert b"PyEval_SaveThread" not in data and b"PyEval_ReleaseThread" not in data
    assert b"NRT_incref" in data   # the counts are there, generated by the build


def test_the_library_is_built_for_this_cpu_and_says_so(library: Path) -> None:
    """On Linux the CPU is known (model and flags), and the library records it (it is
    built for it); elsewhere it is built for the generic CPU and records none."""
    from gpssignal._compiled import IMPORTED_KEY, _paths, cpu_id

    assert IMPORTED_KEY is not None
    _, table = _paths(library, IMPORTED_KEY)
    recorded = json.loads(table.read_text())["cpu"]
    if Path("/proc/cpuinfo").is_file():
        assert recorded == cpu_id() == cpu_id() and len(recorded) == 16
    else:
        assert recorded == cpu_id() == ""   # generic CPU: loads anywhere


def test_plain_reference_counts_is_undone_after_the_compile() -> None:
    import numba.core.runtime.nrtdynmod as nrtdynmod

    from gpssignal._compiled import _plain_reference_counts

    atomic = nrtdynmod._define_atomic_inc_dec
    with pytest.raises(RuntimeError), _plain_reference_counts():
        assert nrtdynmod._define_atomic_inc_dec is not atomic
        raise RuntimeError("a failed compile")
    assert nrtdynmod._define_atomic_inc_dec is atomic   # numba's JIT code: atomic again


def test_host_features_are_given_to_pycc_during_the_build_only() -> None:
    from numba.core.codegen import AOTCPUCodegen, get_host_cpu_features

    from gpssignal._compiled import _host_features

    generic = AOTCPUCodegen._customize_tm_features
    with pytest.raises(RuntimeError), _host_features(True):
        assert AOTCPUCodegen._customize_tm_features(None) == get_host_cpu_features()
        raise RuntimeError("a failed compile")
    assert AOTCPUCodegen._customize_tm_features is generic   # pycc's own again
    with _host_features(False):   # the generic CPU: nothing changed
        assert AOTCPUCodegen._customize_tm_features is generic


_LEAK_CODE = textwrap.dedent("""
    import gc, json, sys, tracemalloc
    from gpssignal import _compiled
    from gpssignal.control.gps import model_from_scenario
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
    from gpssignal.model.io import read_scenario
    sc = read_scenario(sys.argv[1])
    specs = [RunSpec(scenario=sc, controller=ControllerSpec.parse("fixed"), seed=1,
                     record_trajectories=True),
             RunSpec(scenario=sc, seed=1, sample_probes=True,
                     controller=ControllerSpec.parse("gps", model=model_from_scenario(sc)))]
    for spec in specs:
        run_one(spec)
    gc.collect()
    tracemalloc.start()
    grew = []
    for spec in specs * 2:
        before = tracemalloc.get_traced_memory()[0]
        run_one(spec)
        gc.collect()
        grew.append(tracemalloc.get_traced_memory()[0] - before)
    print(json.dumps({"grew": grew, "ran": sorted(_compiled._RAN_AHEAD),
                      "numba": "numba" in sys.modules}))
    """)


def test_the_library_frees_what_it_lets_go(library: Path) -> None:
    """Days run through the library leave no memory behind (its reference counts work),
    and a GPS day needs no numba.

    A release that never freed (numba's own non-atomic switch returns the
    old count) kept every array the library had held: about 7 MB per fixed
    and 40 MB per GPS day of the default scenario. A day may leave a few
    kB (the logging and numpy caches a day fills); 1 MB is far below a leak.
    """
    r = subprocess.run([sys.executable, "-c", _LEAK_CODE,
                        str(REPO / "scenarios" / "vallensbaek.toml")],
                       capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": str(library)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"run_steps", "_decision_kernel", "_report_steps", "match_append"} <= set(out["ran"])
    assert not out["numba"]   # a GPS day with probes runs wholly from the library
    assert max(out["grew"]) < 1_000_000, out["grew"]


def test_a_relative_kernel_folder_is_refused_by_every_command(tmp_path: Path) -> None:
    """Not silently ignored (the run would quietly compile with numba instead)."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "gpssignal", "run",
                        str(REPO / "scenarios" / "tiny.toml"), "--out", str(out)],
                       capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": "kernels"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("gpssignal run: error: GPSSIGNAL_KERNELS = 'kernels': must be "
                                "'jit' or an absolute folder path")
    assert not out.exists()


def test_a_build_whose_check_does_not_use_the_library_installs_nothing(tmp_path: Path) -> None:
    """``build_library`` refuses a check that never ran the new code, and leaves no file."""
    (tmp_path / "kmod_c.py").write_text(textwrap.dedent("""
        from gpssignal._compiled import njit

        @njit(cache=False)
        def halve(x):
            return 0.5 * x
        """))
    code = textwrap.dedent("""
        import os, sys
        import numpy as np
        import kmod_c
        from gpssignal import _compiled
        x = np.arange(3.0)
        with _compiled.recording() as calls:
            kmod_c.halve.resolve(x)(x)
        try:
            _compiled.build_library(calls, check=lambda: None)
        except RuntimeError as exc:
            print("refused:", exc)
        print(sorted(os.listdir(os.environ["GPSSIGNAL_KERNELS"])))
        """)
    lib = tmp_path / "lib"
    r = _python(code, env={"PYTHONPATH": str(tmp_path), "GPSSIGNAL_KERNELS": str(lib)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "refused: the check did not run halve from the library"
    assert lines[1] == "[]"   # nothing installed, the build folder removed


def test_without_a_c_compiler_the_build_says_so_in_one_line(tmp_path: Path) -> None:
    """No compiler: one line, exit code 1 (runs go on with numba), nothing left behind."""
    folder = tmp_path / "lib"
    r = subprocess.run([sys.executable, "-m", "gpssignal", "build-kernels"],
                       capture_output=True, text=True,
                       env={**os.environ, "GPSSIGNAL_KERNELS": str(folder),
                            "CC": str(tmp_path / "no-such-compiler")})
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "runs compile with numba instead" in r.stderr
    assert list(folder.iterdir()) == []
