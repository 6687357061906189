"""The vehicle kernels: numpy reference functions and the compiled step kernel."""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal.control import FixedTimeController, TimeOfDayController
from gpssignal.emissions import emission_model
from gpssignal.model import read_scenario
from gpssignal.sim import Simulation, ballistic_update, idm_acceleration
from gpssignal.sim import kernel as K

#: One petrol-car class (index 0) for the kernel's emission accumulation.
_EM = emission_model([("car", "PC_petrol_Euro-6ab", 1500.0, 1.8, 1.5)])


def test_idm_free_road_at_desired_speed_is_zero() -> None:
    v = np.array([10.0, 13.9])
    acc = idm_acceleration(v, v, np.full(2, np.inf), np.zeros(2), np.full(2, 2.0),
                           np.full(2, 2.5), np.full(2, 1.1), np.full(2, 2.0), 4.0)
    np.testing.assert_allclose(acc, 0.0, atol=1e-12)


def test_idm_standing_start_is_max_acceleration() -> None:
    acc = idm_acceleration(np.zeros(1), np.full(1, 13.9), np.full(1, np.inf), np.zeros(1),
                           np.full(1, 2.0), np.full(1, 2.5), np.full(1, 1.1), np.full(1, 2.0),
                           4.0)
    np.testing.assert_allclose(acc, 2.0)


def test_idm_empty_input() -> None:
    e = np.empty(0)
    assert idm_acceleration(e, e, e, e, e, e, e, e, 4.0).shape == (0,)


def test_ballistic_update_stops_within_the_step() -> None:
    v_new, dx = ballistic_update(np.array([2.0, 10.0]), np.array([-8.0, 1.0]), 0.5)
    # 2 m/s at -8 m/s² stops after 0.25 s having moved v²/(2|a|) = 0.25 m.
    np.testing.assert_allclose(v_new, [0.0, 10.5])
    np.testing.assert_allclose(dx, [0.25, 5.125])


def _state(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n vehicles on one green lane (lane 0) that exits the network."""
    F = np.zeros((K.N_F, n))
    F[K.F_EMERG] = 9.0  # the emergency deceleration (SUMO's default)
    I = np.zeros((K.N_I, n), dtype=np.int64)
    pos = np.sort(rng.uniform(0, 400, n))
    # Keep at least a car length between vehicles.
    pos = pos + np.arange(n) * 7.0
    F[K.F_POS] = pos
    F[K.F_V] = rng.uniform(0, 15, n)
    F[K.F_V0] = rng.uniform(11, 16, n)
    F[K.F_LEN] = 4.5
    F[K.F_AMAX] = rng.uniform(1.5, 2.5, n)
    F[K.F_B] = rng.uniform(2.0, 3.0, n)
    F[K.F_T] = rng.uniform(0.9, 1.5, n)
    F[K.F_S0] = 2.0
    F[K.F_ISQ] = 0.5 / np.sqrt(F[K.F_AMAX] * F[K.F_B])
    F[K.F_LLEN] = 1e4
    F[K.F_MPOS] = np.inf
    I[K.I_VID] = np.arange(n)
    I[K.I_NEXT] = -1
    I[K.I_MOVING] = (F[K.F_V] > 0.1).astype(np.int64)
    return F, I


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_step_kernel_matches_numpy_reference(seed: int) -> None:
    """The compiled kernel computes the same IDM step as the numpy functions.

    Tolerance 1e-12 relative: the same floating-point formula, evaluated in a
    different order only where the compiler fuses operations.
    """
    rng = np.random.default_rng(seed)
    n = 40
    F, I = _state(rng, n)
    # Shuffle the columns: the kernel must sort by position itself.
    perm = rng.permutation(n)
    F, I = F[:, perm].copy(), I[:, perm].copy()
    ref_order = np.argsort(F[K.F_POS])
    pos, v = F[K.F_POS][ref_order], F[K.F_V][ref_order]
    gap = np.append(pos[1:] - 4.5 - pos[:-1], np.inf)
    dv = np.append(v[:-1] - v[1:], 0.0)
    col = lambda r: F[r][ref_order]  # noqa: E731
    acc = idm_acceleration(v, col(K.F_V0), gap, dv, col(K.F_AMAX), col(K.F_B), col(K.F_T),
                           col(K.F_S0), 4.0)
    acc = np.maximum(acc, -9.0)
    v_ref, dx_ref = ballistic_update(v, acc, 0.5)
    # A step past the leader: brake just enough to stop 0.01 m short of it
    # (within the 9 m/s² emergency deceleration), else held back there.
    room = np.maximum(gap - 0.01, 0.0)
    over = dx_ref > room
    can = over & (v * v <= 2.0 * 9.0 * room)
    need = np.where(room > 0, v * v / (2.0 * np.where(room > 0, room, 1.0)), 9.0)
    within = can & (v <= need * 0.5)
    v_ref = np.where(within, 0.0, np.where(can, v - need * 0.5, v_ref))
    dx_ref = np.where(within, room, np.where(can, 0.5 * (v + v_ref) * 0.5, dx_ref))
    held = over & ~can
    dx_ref = np.where(held, room, dx_ref)
    v_ref = np.where(held, np.minimum(v_ref, room / 0.5), v_ref)
    stops = np.zeros(n, dtype=np.int64)
    K.step_vehicles(F, I, n, np.array([2]), np.zeros(1, np.int64), 0.5, 3.5, 4.0, 0.1,
                    stops, np.zeros(1, np.int64), np.zeros(n, np.int64), np.zeros(n),
                    np.zeros(n, np.int64), np.zeros(n, np.int64), _EM.coef, _EM.coast,
                    4.5, np.zeros(2, np.int64), *K.empty_rules(1), 0.0)
    np.testing.assert_array_equal(I[K.I_VID], I[K.I_VID][np.argsort(F[K.F_POS])])
    np.testing.assert_allclose(F[K.F_POS], pos + dx_ref, rtol=1e-12)
    np.testing.assert_allclose(F[K.F_V], v_ref, rtol=1e-12, atol=1e-12)


def test_step_kernel_stops_at_red() -> None:
    """A lone vehicle approaching a red signal stops before the stop line, once."""
    F, I = _state(np.random.default_rng(0), 1)
    F[K.F_POS], F[K.F_V], F[K.F_LLEN] = 300.0, 13.9, 400.0
    stops = np.zeros(1, dtype=np.int64)
    bufs = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64),
            np.zeros(1, np.int64))
    for _ in range(240):
        K.step_vehicles(F, I, 1, np.array([0]), np.zeros(1, np.int64), 0.5, 3.5, 4.0, 0.1,
                        stops, *bufs, _EM.coef, _EM.coast,
                    4.5, np.zeros(2, np.int64), *K.empty_rules(1), 0.0)
    assert F[K.F_V, 0] == pytest.approx(0.0, abs=1e-3)
    assert 390.0 < F[K.F_POS, 0] < 400.0
    assert stops[0] == 1


def test_same_seed_same_day_and_common_demand_across_controllers() -> None:
    sc = read_scenario("scenarios/tiny.toml")
    a = Simulation(sc, FixedTimeController(sc), seed=7, record_trajectories=True).run()
    b = Simulation(sc, FixedTimeController(sc), seed=7, record_trajectories=True).run()
    c = Simulation(sc, TimeOfDayController(sc), seed=7, record_trajectories=False).run()
    d = Simulation(sc, FixedTimeController(sc), seed=8, record_trajectories=False).run()
    for key in ("t_s", "vid", "pos_m", "speed_mps"):
        np.testing.assert_array_equal(a.trajectories[key], b.trajectories[key])
    np.testing.assert_array_equal(a.exit_s, b.exit_s)
    # Common random numbers: another controller sees exactly the same vehicles.
    np.testing.assert_array_equal(a.arrivals.t_s, c.arrivals.t_s)
    np.testing.assert_array_equal(a.arrivals.route_links, c.arrivals.route_links)
    np.testing.assert_array_equal(a.arrivals.speed_factor, c.arrivals.speed_factor)
    assert not np.array_equal(a.exit_s, c.exit_s)  # ... but drives them differently
    assert len(a.arrivals) != len(d.arrivals) or not np.array_equal(a.arrivals.t_s,
                                                                    d.arrivals.t_s)
