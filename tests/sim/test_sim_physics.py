"""The vehicle step cannot cheat: no deceleration beyond the emergency limit,
red crossings and emergency brakings counted where physics forces them, and
zero where it does not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpssignal.experiment.run import make_controller
from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import Demand, DemandFlow, Scenario
from gpssignal.sim.engine import Simulation

TINY = Path(__file__).resolve().parents[2] / "scenarios" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return read_scenario(TINY)


def _run(sc: Scenario, seed: int = 4):
    sim = Simulation(sc, make_controller("fixed", sc), seed, record_trajectories=False)
    hardest = [0.0]

    def hook(view) -> None:
        if len(view.accel_mps2):
            hardest[0] = min(hardest[0], float(view.accel_mps2.min()))

    sim.add_step_hook(hook)
    return sim.run(), hardest[0]


def _amber(sc: Scenario, amber_s: float) -> Scenario:
    j = sc.junctions[0]
    return dataclasses.replace(sc, junctions=(dataclasses.replace(
        j, timing=dataclasses.replace(j.timing, amber_s=amber_s)),))


def test_an_amber_too_short_to_stop_gives_red_crossings(tiny: Scenario) -> None:
    # At 50 km/h (13.9 m/s) a driver who needs more than 3.5 m/s² to stop goes
    # on: everyone within 13.9² / 7 = 27.6 m of the line when amber starts.
    # A 1 s amber lets only those within 13.9 m clear it: the rest cross on
    # red. They are counted, and nobody brakes beyond 9 m/s² to avoid it.
    short, hardest = _run(_amber(tiny, 1.0))
    assert short.red_crossings > 0
    assert hardest >= -tiny.driver.max_decel_mps2 - 1e-9
    assert short.held_back == 0
    # With the Danish 4 s amber the same traffic clears on amber.
    normal, hardest = _run(tiny)
    assert normal.red_crossings < short.red_crossings
    assert hardest >= -tiny.driver.max_decel_mps2 - 1e-9


def test_a_lone_vehicle_stops_gently_and_never_crosses_red(tiny: Scenario) -> None:
    # Sparse demand: every vehicle sees the red from afar and stops within the
    # comfortable deceleration; nothing to count.
    sparse = dataclasses.replace(tiny, demand=Demand(interval_s=900, flows=(
        DemandFlow(link="W_in", movement="through", flow_vph=(40,)),
        DemandFlow(link="S_in", movement="through", flow_vph=(20,)))))
    result, hardest = _run(sparse)
    assert len(result.arrivals) > 5
    assert result.red_crossings == 0
    assert result.emergency_brakings == 0
    assert hardest > -sparse.driver.emergency_braking_mps2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_default_scenario_stays_within_the_emergency_deceleration(seed: int) -> None:
    sc = read_scenario(TINY.parent / "vallensbaek.toml")
    # The busiest hour (07:00-08:00) alone, without the day-type mix, to keep it short.
    junctions = tuple(dataclasses.replace(j, crossings=tuple(
        dataclasses.replace(c, flow_pph=c.flow_pph[4:8]) for c in j.crossings))
        for j in sc.junctions)
    sc = dataclasses.replace(sc, start_clock_s=7 * 3600.0, duration_s=3600.0, schedule=(),
                             peak_clock_s=None, day_types=(), existing_plan="",
                             junctions=junctions, demand=Demand(
        interval_s=sc.demand.interval_s,
        flows=tuple(dataclasses.replace(f, flow_vph=f.flow_vph[4:8]) for f in sc.demand.flows)))
    result, hardest = _run(sc, seed)
    assert hardest >= -sc.driver.max_decel_mps2 - 1e-9
    assert result.held_back == 0


def test_a_class_never_brakes_beyond_its_own_emergency_deceleration(tiny: Scenario) -> None:
    # The same 1 s amber as above, with the class able to brake at only 6 m/s²:
    # nobody brakes harder than 6, and more vehicles must cross on red than
    # with the driver's default of 9.
    weak = dataclasses.replace(tiny.vehicle_classes[0], emergency_decel_mps2=6.0)
    sc = dataclasses.replace(_amber(tiny, 1.0), vehicle_classes=(weak,))
    result, hardest = _run(sc)
    assert hardest >= -6.0 - 1e-9
    assert result.held_back == 0
    default, _ = _run(_amber(tiny, 1.0))
    assert result.red_crossings >= default.red_crossings


def test_an_emergency_deceleration_below_the_comfortable_one_is_refused(tiny: Scenario
                                                                        ) -> None:
    from gpssignal.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"vehicle_class\[car\]\.emergency_decel_mps2"):
        dataclasses.replace(tiny.vehicle_classes[0], emergency_decel_mps2=1.0)
