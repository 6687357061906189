"""gpssignal against Eclipse SUMO (libsumo) on the same default 3-hour scenario.

Both simulate the same vehicles (the SUMO export carries gpssignal's arrivals
of seed 1) under fixed timing at a 0.5 s step, in this process, without GUI
and without writing any output; both stop when the last vehicle has left.
gpssignal: :func:`run_scenario` (its per-vehicle results are kept in memory,
no files); SUMO: ``libsumo.simulationStep()`` to the end. Reported in
``extra_info``: simulated vehicle-seconds per wall second, counted once per
simulator in an untimed run. Skipped without the ``sumo`` extra.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpssignal.experiment.run import run_scenario
from gpssignal.model.io import read_scenario

libsumo = pytest.importorskip("libsumo", reason="libsumo not installed (the sumo extra)")

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "vallensbaek.toml"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    from gpssignal.interop.sumo_export import export_sumo

    sc = read_scenario(SCENARIO)
    # Pedestrians too, so both simulate the same road users (SUMO then builds the
    # junction with internal links, as for every scenario with pedestrians).
    ex = export_sumo(sc, tmp_path_factory.mktemp("sumo"), seed=1, pedestrians=True)
    return ex.folder, sc.step_s


def _sumo_args(folder: Path, step: float) -> list[str]:
    from gpssignal.interop.sumo import sumo_binary

    return [str(sumo_binary("sumo")), "-n", str(folder / "net.net.xml"), "-r",
            str(folder / "routes.rou.xml"), "-a", str(folder / "tls.add.xml"),
            "--step-length", f"{step:g}", "--no-step-log", "true", "--no-warnings", "true",
            "--time-to-teleport", "-1", "--default.emergencydecel", "decel"]


def _run_sumo(args: list[str], count: bool = False) -> int:
    libsumo.start(args)
    veh_steps = 0
    if count:
        while libsumo.simulation.getMinExpectedNumber() > 0:
            libsumo.simulationStep()
            veh_steps += libsumo.vehicle.getIDCount()
    else:
        while libsumo.simulation.getMinExpectedNumber() > 0:
            libsumo.simulationStep()
    libsumo.close()
    return veh_steps


def test_sumo_libsumo_default_scenario(benchmark, exported) -> None:
    folder, step = exported
    args = _sumo_args(folder, step)
    veh_steps = _run_sumo(args, count=True)
    benchmark.pedantic(_run_sumo, args=(args,), rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"vehicle_steps": veh_steps,
                                 "vehicle_seconds_per_s": veh_steps * step / mean})


def test_gpssignal_default_scenario_same_vehicles(benchmark) -> None:
    sc = read_scenario(SCENARIO)
    res, _ = run_scenario(sc, "fixed", seed=1, record_trajectories=True)
    assert res.trajectories is not None
    veh_steps = len(res.trajectories["t_s"])
    benchmark.pedantic(lambda: run_scenario(sc, "fixed", seed=1, record_trajectories=False),
                       rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"vehicle_steps": veh_steps,
                                 "vehicle_seconds_per_s": veh_steps * sc.step_s / mean})
