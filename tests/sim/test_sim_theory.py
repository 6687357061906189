"""Verification of the simulator against traffic-flow theory.

This is the second kind of test in docs/architecture.md#conventions.

Each tolerance is stated next to its assertion with the reason for it.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal.experiment import run_scenario
from gpssignal.model import read_scenario

CAR = next(c for c in read_scenario("scenarios/vallensbaek.toml").vehicle_classes
           if c.name == "car_petrol")


def _webster_delay_s(cycle_s: float, green_s: float, q_vps: float, s_vps: float) -> tuple[
        float, float]:
    """Webster (1958) uniform delay d1 and full delay d1 + d2 + d3 [s/veh].

    Effective green is taken equal to the displayed green: amber used by
    drivers (~2 s) and start-up lost time (~2 s) roughly cancel, as in HCM's
    default (effective green = G + Y - l with l = 4 s, Y = 4 s).
    """
    lam = green_s / cycle_s
    x = q_vps / (s_vps * lam)
    d1 = cycle_s * (1 - lam) ** 2 / (2 * (1 - lam * min(1.0, x)))
    d2 = x**2 / (2 * q_vps * (1 - x))
    d3 = -0.65 * (cycle_s / q_vps**2) ** (1 / 3) * x ** (2 + 5 * lam)
    return d1, d1 + d2 + d3


def _per_vehicle(result, values: np.ndarray, vid: np.ndarray) -> np.ndarray:
    out = np.full(len(result.arrivals), np.nan)
    out[vid] = values
    return out


def test_saturation_flow_of_default_cars_is_1800_to_2000(make_one_approach) -> None:
    """Queue discharge headways of the default car give 1,800-2,000 veh/h/lane.

    The range is the project target of docs/references.md#saturation-flow
    (HCM base 1,900 pc/h/lane; practical 1,700-1,900). Headways are taken
    within saturated platoons from the 5th vehicle on, where start-up loss
    has passed (HCM's saturation-headway method).
    """
    sc = make_one_approach(flow_vph=2400, duration_s=1800, time_headway_s=CAR.time_headway_s,
                           max_accel_mps2=CAR.max_accel_mps2,
                           comfortable_decel_mps2=CAR.comfortable_decel_mps2)
    result, _ = run_scenario(sc, "fixed", seed=1, record_trajectories=False)
    t = np.sort(result.passages["t_s"])
    h = np.diff(t)
    platoon = np.array([i >= 4 and (h[i - 4:i + 1] < 4.0).all() for i in range(len(h))])
    assert platoon.sum() > 200  # enough saturated headways to be a measurement
    saturation_vph = 3600.0 / h[platoon].mean()
    assert 1800.0 <= saturation_vph <= 2000.0, saturation_vph


@pytest.mark.parametrize("flow_vph", [300, 600])
def test_signal_delay_matches_webster(make_one_approach, flow_vph: int) -> None:
    """Delay caused by the signal on an under-saturated approach ~ Webster.

    The signal's delay is isolated as control delay minus the time loss of
    the same vehicles (common random numbers) on the same road with a
    permanent green, which removes car-following losses that exist without
    any signal. It must lie within 20 % of Webster's formula: Webster fitted
    his formula to simulations to about ±10 %, and it treats stops as
    instantaneous, so the deceleration and acceleration loss of each stopped
    vehicle (2-3 s per stop at 50 km/h) is missing from it. It must also
    exceed the uniform delay d1, which ignores the randomness of arrivals.
    """
    cycle, green = 60.0, 30.0
    signal_delay = []
    for seed in (1, 2, 3):
        sc = make_one_approach(flow_vph=flow_vph, cycle_s=cycle, green=(0.0, green))
        free = make_one_approach(flow_vph=flow_vph, permanent=True)
        r, _ = run_scenario(sc, "fixed", seed=seed, record_trajectories=False)
        r0, _ = run_scenario(free, "fixed", seed=seed, record_trajectories=False)
        np.testing.assert_array_equal(r.arrivals.t_s, r0.arrivals.t_s)
        with_signal = _per_vehicle(r, r.passages["control_delay_s"], r.passages["vid"])
        without = _per_vehicle(r0, r0.passages["control_delay_s"], r0.passages["vid"])
        signal_delay.append(with_signal - without)
    d = np.concatenate(signal_delay)
    d = d[~np.isnan(d)]
    d1, webster = _webster_delay_s(cycle, green, flow_vph / 3600.0, 1850.0 / 3600.0)
    assert d.mean() > d1
    assert abs(d.mean() - webster) <= 0.2 * webster, (d.mean(), webster)


def test_empty_always_green_road_has_no_time_loss(make_one_approach) -> None:
    """Isolated vehicles on a road with a permanent green lose no time.

    All cars share one desired speed, so they keep their arrival headways. The
    IDM's interaction term never vanishes: at a headway of 60 s (a gap of
    830 m) it slows a follower to 99.99 % of its desired speed, which costs at
    most 0.01 s over the 700 m route; exit times are interpolated exactly at
    constant speed. Hence the 0.01 s tolerance.
    """
    sc = make_one_approach(flow_vph=30, permanent=True, speed_factor_sd=0.0,
                           duration_s=7200.0)
    result, _ = run_scenario(sc, "fixed", seed=4, record_trajectories=False)
    tl = (result.exit_s - result.depart_s) - result.arrivals.free_flow_time_s + (
        result.depart_s - result.arrivals.t_s)
    headway = np.diff(result.arrivals.t_s, prepend=-np.inf)
    isolated = headway >= 60.0
    assert isolated.sum() > 20
    assert np.all(np.abs(tl[isolated]) < 0.01), tl[isolated]
    assert np.all(result.stops[isolated] == 0)
    # Without isolation the loss is still small: the whole fleet loses < 0.5 s/veh.
    assert np.nanmean(tl) < 0.5


def test_vehicles_are_conserved(make_one_approach) -> None:
    """Arrived = exited + in the network + waiting outside, at any stop time.

    An over-saturated approach cut off with no drain time leaves vehicles
    both inside and waiting outside.
    """
    sc = make_one_approach(flow_vph=2400, duration_s=900, drain_s=0.0)
    result, _ = run_scenario(sc, "fixed", seed=2, record_trajectories=False)
    exited = int(np.sum(~np.isnan(result.exit_s)))
    assert result.in_network > 0 and result.waiting > 0
    assert len(result.arrivals) == exited + result.in_network + result.waiting
    # Vehicles that never entered have no departure time.
    assert int(np.sum(np.isnan(result.depart_s))) == result.waiting


def test_no_vehicle_crosses_on_red_and_queues_are_never_negative(make_one_approach) -> None:
    sc = make_one_approach(flow_vph=900, duration_s=1800)
    result, _ = run_scenario(sc, "fixed", seed=3, record_trajectories=False)
    assert result.red_crossings == 0
    assert result.monitor_checks > 0
    assert np.all(result.queue_m >= 0) and np.all(result.queue_veh >= 0)
    # Every crossing happened on green or amber (codes 2 and 3).
    assert set(np.unique(result.passages["state"])) <= {2, 3}
