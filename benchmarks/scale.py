"""gpssignal against Eclipse SUMO on generated arterials and grids, 1 to 1,000 junctions.

For every network (:mod:`networks`: one-way streets, fixed timing, a stated
degree of saturation) the script exports day ``seed`` to SUMO
(:func:`gpssignal.interop.sumo_export.export_sumo`, the same vehicles at the
same times), then times four things, each in a fresh process, in turn
(A, B, C, D, A, B, C, D, ...) so that load on the machine hits all alike:

* ``gps`` — gpssignal in-process: :func:`run_scenario` with fixed timing,
  no trajectories, no files, after a warm-up run of ``scenarios/tiny.toml``
  that loads the compiled kernels;
* ``libsumo`` — SUMO in-process: ``libsumo.start`` + ``simulationStep`` to
  the end + ``close``;
* ``gps run`` — the whole command ``gpssignal run SCENARIO -q --out DIR``
  (start-up, imports, simulation with CO₂, tables and files), with the
  kernel library when it is current (``gpssignal build-kernels``);
* ``gps run (jit)`` — the same command with ``GPSSIGNAL_KERNELS=jit``
  (numba imported, its cached kernels loaded), the side-by-side baseline
  of the library;
* ``sumo`` — the whole ``sumo`` binary, without outputs.

Both simulators use a 0.5 s step and stop when the last vehicle has left or
at the end of the drain period, whichever comes first. Wall times are the
minimum (and median) of ``--repeat`` rounds; peak memory is each process's
maximum resident set size (``wait4``). Vehicle-steps are counted from the
runs (gpssignal: time in the network ÷ step; SUMO: vehicles per step) and
reported for both, so that a difference in what was simulated shows.

Usage (needs the ``sumo`` extra)::

    python benchmarks/scale.py                      # arterials 1-100 junctions, grid 100
    GPSSIGNAL_BENCH_MAX_JUNCTIONS=1000 python benchmarks/scale.py   # + grids 400, 1,000
    python benchmarks/scale.py --sizes arterial:1,5 --repeat 1 --out scale.md
    python benchmarks/scale.py --scenario scenarios/vallensbaek.toml \
        --scenario scenarios/vallensbaek_corridor.toml    # those alone

Peak memory is in MiB (the resident set size in KiB ÷ 1024), labelled MB.

Sizes above ``GPSSIGNAL_BENCH_MAX_JUNCTIONS`` (default 100) are skipped
unless named with ``--sizes``. The markdown table goes to stdout and to
``--out``; every figure (median times, the in-process variants' peak memory
too) to ``--out`` with the suffix ``.json``. A grid of n junctions is
``isqrt(n) × ceil(n / isqrt(n))`` (1,000 → 31 × 33 = 1,023).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from networks import shape, write_scenario

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "scenarios" / "tiny.toml"
DEFAULT_SIZES = "arterial:1,5,20,50,100 grid:100,400,1000"
#: Sizes above this many junctions run only when named (or with the variable raised).
MAX_ENV = "GPSSIGNAL_BENCH_MAX_JUNCTIONS"

_GPS_CHILD = """
import json, sys, time
from gpssignal.experiment.run import run_scenario
from gpssignal.model.io import read_scenario
import numpy as np
run_scenario(read_scenario(sys.argv[2]), "fixed", seed=1, record_trajectories=False)
sc = read_scenario(sys.argv[1])
t0 = time.perf_counter()
res, _ = run_scenario(sc, "fixed", seed=1, record_trajectories=False)
wall = time.perf_counter() - t0
dep = res.depart_s[np.isfinite(res.depart_s)]
ex = np.where(np.isfinite(res.exit_s), res.exit_s, res.end_s)[np.isfinite(res.depart_s)]
print(json.dumps({"wall_s": wall, "vehicles": int(len(dep)),
                  "vehicle_steps": float(np.sum(ex - dep) / sc.step_s)}))
"""

_SUMO_CHILD = """
import json, sys, time
import libsumo
args, end = json.loads(sys.argv[1]), float(sys.argv[2])
t0 = time.perf_counter()
libsumo.start(args)
steps = 0
while libsumo.simulation.getMinExpectedNumber() > 0 and libsumo.simulation.getTime() < end:
    libsumo.simulationStep()
    steps += libsumo.vehicle.getIDCount()
libsumo.close()
print(json.dumps({"wall_s": time.perf_counter() - t0, "vehicle_steps": steps}))
"""


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall [s], peak resident memory [MB], stdout).

    Through ``/usr/bin/time``, a small process: a child forked from this
    (large) Python process would count this process's memory in its peak.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name, *cmd],
                           capture_output=True, text=True, check=False,
                           env=None if env is None else {**os.environ, **env})
        wall = time.perf_counter() - t0
        if p.returncode:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({p.returncode}): "
                               f"{p.stderr.strip()[-800:]}")
        peak_kb = float(f.read().split()[-1])
    return wall, peak_kb / 1024, p.stdout


def sumo_args(folder: Path, step_s: float, end_s: float) -> list[str]:
    """SUMO's options: the exported network, vehicles and programs, no outputs."""
    from gpssignal.interop.sumo import sumo_binary

    return [str(sumo_binary("sumo")), "-n", str(folder / "net.net.xml"), "-r",
            str(folder / "routes.rou.xml"), "-a", str(folder / "tls.add.xml"),
            "--step-length", f"{step_s:g}", "--end", f"{end_s:g}", "--no-step-log", "true",
            "--no-warnings", "true", "--time-to-teleport", "-1",
            "--default.emergencydecel", "decel"]


def measure(kind: str, junctions: int, x: float, repeat: int, work: Path) -> dict[str, Any]:
    """Time the four variants on one generated network; return one table row."""
    rows, cols = shape(kind, junctions)
    path = write_scenario(work / f"{kind}{junctions}.toml", kind, junctions, x=x)
    return measure_file(path, f"{kind} {rows}×{cols}", repeat, work)


def measure_file(path: Path, label: str, repeat: int, work: Path) -> dict[str, Any]:
    """Time the four variants on the scenario file ``path``; return one table row.

    A scenario with pedestrian crossings is exported with its pedestrians
    (both simulators then move the same road users).
    """
    from gpssignal.interop.sumo_export import export_sumo
    from gpssignal.model.io import read_scenario

    sc = read_scenario(path)
    walkers = any(j.crossings for j in sc.junctions)
    folder = export_sumo(sc, work / f"sumo_{path.stem}", seed=1, pedestrians=walkers).folder
    end = sc.duration_s + sc.drain_s
    args = sumo_args(folder, sc.step_s, end)
    py = sys.executable
    gps_cli = str(Path(py).with_name("gpssignal"))
    variants = {
        "gps": lambda: _run([py, "-c", _GPS_CHILD, str(path), str(TINY)]),
        "libsumo": lambda: _run([py, "-c", _SUMO_CHILD, json.dumps(args), str(end)]),
        "gps_run": lambda: _run([gps_cli, "run", str(path), "-q", "--out",
                                 tempfile.mkdtemp(dir=work) + "/out"]),
        "sumo": lambda: _run(args),
        "gps_run_jit": lambda: _run([gps_cli, "run", str(path), "-q", "--out",
                                     tempfile.mkdtemp(dir=work) + "/out"],
                                    env={"GPSSIGNAL_KERNELS": "jit"}),
    }
    walls: dict[str, list[float]] = {k: [] for k in variants}
    rss: dict[str, float] = {}
    info: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in variants.items():
            wall, mb, out = fn()
            if name in ("gps", "libsumo"):
                res = json.loads(out.strip().splitlines()[-1])  # libsumo prints too
                wall = res.pop("wall_s")
                info[name] = res
            walls[name].append(wall)
            rss[name] = max(rss.get(name, 0.0), mb)
    return {"network": label, "junctions": len(sc.junctions),
            "vehicles": info["gps"]["vehicles"],
            "vehicle_steps_gps": info["gps"]["vehicle_steps"],
            "vehicle_steps_sumo": info["libsumo"]["vehicle_steps"],
            "min_s": {k: min(v) for k, v in walls.items()},
            "median_s": {k: statistics.median(v) for k, v in walls.items()},
            "peak_mb": rss}


def table(rows: list[dict[str, Any]]) -> str:
    """Return the rows as a markdown table (minimum wall times; ratios SUMO ÷ gpssignal)."""
    out = ["| network | junctions | vehicles | vehicle-steps gpssignal / SUMO | "
           "gpssignal in-process [s] | libsumo [s] | libsumo ÷ gpssignal | "
           "µs per vehicle-step (gpssignal) | `gpssignal run` [s] | `sumo` [s] | "
           "sumo ÷ gpssignal run | peak MB gpssignal run / sumo | "
           "`gpssignal run` without the kernel library [s] | its peak MB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["min_s"]
        us = 1e6 * m["gps"] / max(r["vehicle_steps_gps"], 1)
        out.append(
            f"| {r['network']} | {r['junctions']:,} | {r['vehicles']:,} | "
            f"{r['vehicle_steps_gps']:,.0f} / {r['vehicle_steps_sumo']:,} | {m['gps']:.2f} | "
            f"{m['libsumo']:.2f} | {m['libsumo'] / m['gps']:.1f}× | {us:.2f} | "
            f"{m['gps_run']:.2f} | {m['sumo']:.2f} | {m['sumo'] / m['gps_run']:.2f}× | "
            f"{r['peak_mb']['gps_run']:.0f} / {r['peak_mb']['sumo']:.0f} | "
            f"{m['gps_run_jit']:.2f} | {r['peak_mb']['gps_run_jit']:.0f} |")
    return "\n".join(out)


def parse_sizes(text: str, limit: int | None) -> list[tuple[str, int]]:
    """``"arterial:1,5 grid:100"`` → [(kind, junctions)], dropping sizes above ``limit``."""
    sizes = []
    for part in text.split():
        kind, _, ns = part.partition(":")
        sizes += [(kind, int(n)) for n in ns.split(",") if n]
    return [(k, n) for k, n in sizes if limit is None or n <= limit]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write it to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=None,
                    help=f"e.g. 'arterial:1,5 grid:100' (default: {DEFAULT_SIZES!r}, "
                    f"up to ${MAX_ENV} junctions)")
    ap.add_argument("--scenario", type=Path, action="append", default=[],
                    help="also a scenario file, e.g. scenarios/vallensbaek.toml (repeatable)")
    ap.add_argument("--x", type=float, default=0.6, help="degree of saturation (default 0.6)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    a = ap.parse_args(argv)
    limit = None if a.sizes else int(os.environ.get(MAX_ENV, "100"))
    if a.scenario and a.sizes is None:
        a.sizes = ""  # only the named scenarios
    sizes = parse_sizes(a.sizes if a.sizes is not None else DEFAULT_SIZES, limit)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for path in a.scenario:
            rows.append(measure_file(path.resolve(), path.stem, a.repeat, Path(tmp)))
            print(f"{path}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        for kind, n in sizes:
            rows.append(measure(kind, n, a.x, a.repeat, Path(tmp)))
            print(f"{kind} {n}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    text = (f"Generated networks: degree of saturation {a.x:g}, 15 min of demand + up to "
            f"10 min drain; scenario files as they are; minimum of {a.repeat} alternating "
            "rounds; "
            f"`python benchmarks/scale.py{' ' + ' '.join(argv or sys.argv[1:])}`, "
            f"{time.perf_counter() - t0:.0f} s.\n\n" + table(rows) + "\n")
    print(text)
    if a.out is not None:
        a.out.write_text(text, encoding="utf-8")
        (a.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
