"""Simulator benchmarks (pytest-benchmark; run with `make bench`).

Reported in ``extra_info``: simulated vehicle-seconds per wall second (the
sum over steps of the vehicles in the network × step length, divided by the
wall time) and vehicle-steps per second, so results compare across scenario
sizes and with SUMO's vehicle-steps per second.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpssignal.emissions import emission_model
from gpssignal.experiment import run_scenario
from gpssignal.model import read_scenario
from gpssignal.sim import ballistic_update, idm_acceleration
from gpssignal.sim import kernel as K

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "vallensbaek.toml"


@pytest.mark.parametrize("controller", ["fixed", "tod"])
def test_default_scenario_3h(benchmark, controller: str) -> None:
    """The whole default 3-hour scenario in-process (trajectories recorded)."""
    sc = read_scenario(DEFAULT)
    run_scenario(sc, controller, seed=1)  # compile / warm caches outside the timing
    result, _ = benchmark.pedantic(lambda: run_scenario(sc, controller, seed=1),
                                   rounds=3, iterations=1)
    veh_steps = len(result.trajectories["t_s"])
    wall = benchmark.stats.stats.mean
    benchmark.extra_info.update({
        "vehicles": len(result.arrivals), "steps": result.n_steps, "step_s": sc.step_s,
        "vehicle_steps": veh_steps,
        "vehicle_seconds_per_s": veh_steps * sc.step_s / wall,
        "vehicle_steps_per_s": veh_steps / wall,
    })

#: One petrol-car class (index 0): the step includes the CO2 and fuel accumulation.
_EM = emission_model([("car", "PC_petrol_Euro-6ab", 1500.0, 1.8, 1.5)])


def test_default_scenario_whole_process(benchmark) -> None:
    """`gpssignal run` on the default scenario as a separate process (imports,
    simulation, tables and files), the figure users feel."""
    exe = [sys.executable, "-m", "gpssignal", "run", str(DEFAULT), "-q", "--out",
           str(ROOT / "results" / "bench")]
    subprocess.run(exe, check=True)  # warm the compiled-kernel cache
    benchmark.pedantic(lambda: subprocess.run(exe, check=True), rounds=3, iterations=1)


def _kernel_state(n: int, rng: np.random.Generator):
    n_lanes = max(1, n // 50)
    F = np.zeros((K.N_F, n))
    F[K.F_EMERG] = 9.0  # the emergency deceleration (SUMO's default)
    I = np.zeros((K.N_I, n), dtype=np.int64)
    lane = np.sort(rng.integers(0, n_lanes, n))
    I[K.I_LANE] = lane
    for ln in range(n_lanes):
        sel = lane == ln
        F[K.F_POS, sel] = np.arange(sel.sum()) * 20.0
    F[K.F_V] = rng.uniform(5, 14, n)
    F[K.F_V0] = 13.9
    F[K.F_LEN], F[K.F_AMAX], F[K.F_B], F[K.F_T], F[K.F_S0] = 4.5, 2.0, 2.5, 1.1, 2.0
    F[K.F_ISQ] = 0.5 / np.sqrt(2.0 * 2.5)
    F[K.F_LLEN] = 1e9
    F[K.F_MPOS] = np.inf
    I[K.I_VID] = np.arange(n)
    I[K.I_NEXT] = -1
    return F, I, n_lanes


@pytest.mark.parametrize("n", [100, 10_000])
def test_kernel_compiled_step(benchmark, n: int) -> None:
    """One compiled vehicle step (sort, leaders, IDM, integration)."""
    F, I, n_lanes = _kernel_state(n, np.random.default_rng(1))
    args = (np.full(n_lanes, 2), np.arange(n_lanes), 0.5, 3.5, 4.0, 0.1,
            np.zeros(n, np.int64), np.zeros(n_lanes, np.int64), np.zeros(n, np.int64),
            np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64), _EM.coef, _EM.coast,
            4.5, np.zeros(2, np.int64), *K.empty_rules(n_lanes), 0.0)
    K.step_vehicles(F, I, n, *args)
    benchmark(lambda: K.step_vehicles(F, I, n, *args))
    benchmark.extra_info["vehicle_steps_per_s"] = n / benchmark.stats.stats.mean


@pytest.mark.parametrize("n", [100, 10_000])
def test_kernel_numpy_reference_step(benchmark, n: int) -> None:
    """Baseline for the ratio: the same step as separate numpy calls."""
    F, I, _ = _kernel_state(n, np.random.default_rng(1))

    def step() -> None:
        order = np.argsort(I[K.I_LANE] * 1e5 + F[K.F_POS])
        pos, v, ln = F[K.F_POS][order], F[K.F_V][order], I[K.I_LANE][order]
        same = ln[1:] == ln[:-1]
        gap = np.append(np.where(same, pos[1:] - 4.5 - pos[:-1], np.inf), np.inf)
        dv = np.append(np.where(same, v[:-1] - v[1:], 0.0), 0.0)
        acc = idm_acceleration(v, F[K.F_V0][order], gap, dv, F[K.F_AMAX][order],
                               F[K.F_B][order], F[K.F_T][order], F[K.F_S0][order], 4.0,
                               inv_two_sqrt_ab=F[K.F_ISQ][order])
        v_new, dx = ballistic_update(v, np.maximum(acc, -9.0), 0.5)
        dx = np.minimum(dx, np.maximum(gap - 0.01, 0.0))
        F[K.F_POS][order] = pos + dx
        F[K.F_V][order] = v_new

    benchmark(step)
    benchmark.extra_info["vehicle_steps_per_s"] = n / benchmark.stats.stats.mean
