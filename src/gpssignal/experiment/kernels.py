"""The kernel library: the engine's compiled step loop built ahead of time, and checked.

``gpssignal build-kernels`` runs two days of the bundled Vallensbæk scenario
(fixed time, and GPS with probe points) with numba compiling as it goes,
noting the argument types of every kernel called from Python through
:meth:`~gpssignal._compiled.Kernel.resolve` (the engine's step loop, the
probe sampler's, the map matching's and the GPS controller's kernels),
compiles those kernels for those types into one extension module
(:func:`gpssignal._compiled.build_library`), then runs the same days again
through the new library, before it is put in place, and compares every
array of the results, the probe points and the decisions. A library that
gives a different result by a single bit, or that the check did not run,
is never put in place and the build fails; runs then keep using numba's
compiler.

With the library, a run starts without importing numba (about 0.5 s and
110 MB less per process: ``README.md`` Performance has the measurement),
and so does a GPS day.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from gpssignal import _compiled
from gpssignal.control.gps import model_from_scenario
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.io import read_scenario

__all__ = ["KernelBuild", "build_kernels", "result_fingerprint"]

#: The day the build records and checks: the bundled default scenario, its own seed.
BUILD_SCENARIO = "vallensbaek.toml"


@dataclass(frozen=True, slots=True)
class KernelBuild:
    """What :func:`build_kernels` did.

    Attributes
    ----------
    path : Path
        The library file.
    built : bool
        False when the library was already current (nothing done).
    exports : int
        Kernel entry points in the library (kernels × argument types).
    fingerprint : str
        SHA-256 of the check runs' outputs, the same through numba's
        compiler and through the library (empty when nothing was built).
    build_s : float
        Wall time of the build and check [s].
    """

    path: Path
    built: bool
    exports: int = 0
    fingerprint: str = ""
    build_s: float = 0.0


def result_fingerprint(result: Any) -> str:
    """Return a SHA-256 of every array and number of a :class:`~gpssignal.sim.engine.SimResult`.

    Two runs have the same fingerprint only when every output of the
    simulation is the same to the last bit.
    """
    h = hashlib.sha256()

    def add(x: Any) -> None:
        if isinstance(x, np.ndarray):
            h.update(f"{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes() if x.dtype != object
                     else repr(x.tolist()).encode())
        elif isinstance(x, dict):
            for k in sorted(x):
                h.update(str(k).encode())
                add(x[k])
        elif isinstance(x, list | tuple):
            for y in x:
                add(y)
        else:
            h.update(repr(x).encode())

    for f in dataclasses.fields(result):
        if f.name in ("scenario", "network", "wall_s"):
            continue   # inputs, and the timing (never the same twice)
        h.update(f.name.encode())
        add(getattr(result, f.name))
    return h.hexdigest()


def _check_runs() -> str:
    """Run the build's two days; return the SHA-256 of all they produced.

    A fixed-time day with trajectories, and a GPS day sampling probe points
    for an untrained model of the scenario (:func:`model_from_scenario`'s
    defaults; it switches programs 7 times that day), which runs the probe
    sampler's, the matching's and the GPS controller's kernels: the
    fingerprint covers its result, every probe column and the decision log.
    """
    path = Path(str(resources.files("gpssignal") / "scenarios" / BUILD_SCENARIO))
    sc = read_scenario(path)
    fixed = RunSpec(scenario=sc, controller=ControllerSpec.parse("fixed"), seed=sc.seed,
                    record_trajectories=True)
    h = hashlib.sha256(result_fingerprint(run_one(fixed).result).encode())
    gps = RunSpec(scenario=sc, seed=sc.seed, sample_probes=True,
                  controller=ControllerSpec.parse("gps", model=model_from_scenario(sc)))
    out = run_one(gps)
    h.update(result_fingerprint(out.result).encode())
    assert out.probes is not None
    for name in sorted(out.probes.columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(out.probes.columns[name]).tobytes())
    h.update(repr(out.controller.runtime.decision_log()).encode())  # type: ignore[attr-defined]
    return h.hexdigest()


def build_kernels(force: bool = False) -> KernelBuild:
    """Build and check the kernel library for the sources this process imported.

    Does nothing when a current library loads (unless ``force``). The
    bundled scenario's day is run once through numba's compiler, recording
    the kernels' argument types, and once through the new library before it
    is put in place: a different fingerprint, or a kernel not run from the
    library, raises ``RuntimeError`` and leaves no library. ``OSError`` when
    the folder cannot be written; ``ValueError`` for a relative
    ``GPSSIGNAL_KERNELS``.
    """
    current = _compiled.current_library()
    if current is not None and not force:
        return KernelBuild(path=current, built=False)
    t0 = time.perf_counter()
    with _compiled.recording() as calls:
        reference = _check_runs()
    checked: list[str] = []

    def check() -> None:
        got = _check_runs()
        if got != reference:
            raise RuntimeError(f"its run of {BUILD_SCENARIO} differs from numba's "
                               "just-in-time code; not installed, numba compiles instead")
        checked.append(got)

    so, exports = _compiled.build_library(calls, check)
    return KernelBuild(path=so, built=True, exports=exports, fingerprint=checked[0],
                       build_s=time.perf_counter() - t0)
