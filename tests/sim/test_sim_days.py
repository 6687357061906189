"""Day types: the draw from the mix, forced types, incidents and diversions.

Statistical tolerances are stated where used; every test has a fixed seed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from gpssignal.errors import ScenarioError
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.days import DayType, ExtraFlow, Incident
from gpssignal.model.io import dump_scenario, parse_scenario, read_scenario, scenario_hash
from gpssignal.model.scenario import Scenario
from gpssignal.sim.demand import draw_day
from gpssignal.sim.engine import day_streams

#: A normal deviate beyond 4.5 sd has probability 7e-6: the bound of every
#: count check below (binomial / Poisson, normal approximation).
Z = 4.5

HEAVY = DayType(name="heavy", frequency=0.3, demand_factor=1.2)
LATE = DayType(name="late", frequency=0.2, peak_shift_s=(600.0, 1200.0))
ORD = DayType(name="ordinary", frequency=0.5)


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return read_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "tiny.toml")


@pytest.fixture(scope="module")
def mixed(tiny: Scenario) -> Scenario:
    return dataclasses.replace(tiny, day_types=(ORD, HEAVY, LATE))


def _day(sc: Scenario, seed: int, day_type: str | None = None):
    s = day_streams(seed)
    return draw_day(sc, np.random.default_rng(s["day"]), np.random.default_rng(s["day_type"]),
                    day_type)


def test_types_are_drawn_with_the_mix_frequencies(mixed: Scenario) -> None:
    n = 3000
    names = [_day(mixed, seed).day_type for seed in range(n)]
    for d in mixed.day_types:
        count = names.count(d.name)
        sd = math.sqrt(n * d.frequency * (1 - d.frequency))
        assert abs(count - n * d.frequency) <= Z * sd, (d.name, count)


def test_a_type_scales_and_shifts_the_day(mixed: Scenario, tiny: Scenario) -> None:
    for seed in range(40):
        plain, typed = _day(tiny, seed), _day(mixed, seed)
        # The ordinary spread comes from the same stream as before mixes existed.
        factor = {"ordinary": 1.0, "heavy": 1.2, "late": 1.0}[typed.day_type]
        assert typed.demand_level == pytest.approx(plain.demand_level * factor, rel=1e-12)
        extra = typed.peak_shift_s - plain.peak_shift_s
        if typed.day_type == "late":
            assert 600.0 <= extra <= 1200.0
        else:
            assert extra == 0.0


def test_no_mix_draws_the_same_days_as_before(tiny: Scenario) -> None:
    # Without a mix the type stream is not read: the day is the old draw.
    for seed in range(10):
        s = day_streams(seed)
        old = draw_day(tiny, np.random.default_rng(s["day"]))
        assert _day(tiny, seed) == old
        assert old.day_type == "ordinary"


def test_forcing_a_type_keeps_the_rest_of_the_day(mixed: Scenario) -> None:
    for seed in range(20):
        drawn = _day(mixed, seed)
        forced = _day(mixed, seed, "heavy")
        assert forced.day_type == "heavy"
        base = drawn.demand_level / {"ordinary": 1.0, "heavy": 1.2, "late": 1.0}[
            drawn.day_type]
        assert forced.demand_level == pytest.approx(base * 1.2, rel=1e-12)


def test_every_controller_sees_the_same_day_type(mixed: Scenario) -> None:
    for seed in (3, 4, 5):
        types = {run_one(RunSpec(scenario=mixed, controller=ControllerSpec.parse(c),
                                 seed=seed)).result.day.day_type for c in ("fixed", "tod")}
        assert len(types) == 1


def _exits(sc: Scenario, seed: int, link: str) -> np.ndarray:
    """Times [s] vehicles leave the network through ``link``."""
    r = run_one(RunSpec(scenario=sc, controller=ControllerSpec(kind="fixed"), seed=seed)).result
    idx = r.network.link_index(link)
    last = np.array([rl[rl >= 0][-1] for rl in r.arrivals.route_links])
    return r.exit_s[(last == idx) & ~np.isnan(r.exit_s)]


def test_an_incident_caps_the_flow_at_its_capacity(tiny: Scenario) -> None:
    inc = Incident(link="E_out", start_clock_s=(7 * 3600 + 120.0,) * 2,
                   duration_s=(600.0, 600.0), capacity_vph=240.0)
    sc = dataclasses.replace(tiny, day_types=(DayType(name="incident", frequency=1.0,
                                                      incidents=(inc,)),))
    t = _exits(sc, 2, "E_out")
    # Main-road demand (600 veh/h) exceeds the 240 veh/h that pass: a queue
    # stands at the bottleneck all through the incident. One lane: a release
    # every 15 s. Over 480 s from 60 s after the start, the queue is already
    # there: 32 releases; ±2 for the window's edges and one amber pass.
    window = (t >= 180.0) & (t < 660.0)
    assert abs(window.sum() - 32) <= 2
    # Without the incident the same demand passes at its own rate (600 veh/h).
    free = _exits(tiny, 2, "E_out")
    assert ((free >= 180.0) & (free < 660.0)).sum() > 60


def test_a_diversion_adds_the_expected_vehicles(tiny: Scenario) -> None:
    ef = ExtraFlow(link="S_in", movement="through", flow_vph=400.0,
                   start_clock_s=(7 * 3600 + 100.0,) * 2, duration_s=(450.0, 450.0))
    sc = dataclasses.replace(tiny, day_types=(DayType(name="diversion", frequency=1.0,
                                                      extra_flows=(ef,)),))
    extra = []
    for seed in range(8):
        a = run_one(RunSpec(scenario=sc, controller=ControllerSpec(kind="fixed"), seed=seed))
        b = run_one(RunSpec(scenario=tiny, controller=ControllerSpec(kind="fixed"), seed=seed))
        extra.append(len(a.result.arrivals) - len(b.result.arrivals))
    # 400 veh/h for 450 s = 50 a day: the sum of 8 days is Poisson(400) plus
    # the base flows' own Poisson noise (the two runs draw them differently):
    # sd = sqrt(400 + 2 × 8 × 200 veh × 0.25) ≈ 35.
    assert abs(sum(extra) - 400) <= Z * math.sqrt(400 + 2 * 8 * 200 * 0.25)


def test_day_types_round_trip_and_change_the_hash(tiny: Scenario) -> None:
    inc = Incident(link="E_out", start_clock_s=(25_500.0, 26_100.0), duration_s=(300.0, 600.0),
                   capacity_vph=500.0)
    sc = dataclasses.replace(tiny, existing_plan="fixed:peak", day_types=(
        dataclasses.replace(ORD, frequency=0.7), DayType(name="incident", frequency=0.3,
                                                         incidents=(inc,))))
    assert parse_scenario(dump_scenario(sc)) == sc
    assert scenario_hash(sc) != scenario_hash(tiny)
    assert sc.baseline_plan == "fixed:peak"


@pytest.mark.parametrize("change, field", [
    ({"day_types": (dataclasses.replace(ORD, frequency=0.4),)}, "day_type.frequency"),
    ({"day_types": (ORD, dataclasses.replace(ORD, frequency=0.5))}, "day_type.name"),
    ({"day_types": (DayType(name="i", frequency=1.0, incidents=(Incident(
        link="W_in", start_clock_s=(25_200.0, 25_200.0), duration_s=(60.0, 60.0),
        capacity_vph=100.0),)),)}, "incident[0].link"),
    ({"day_types": (DayType(name="d", frequency=1.0, extra_flows=(ExtraFlow(
        link="E_out", movement="through", flow_vph=10.0, start_clock_s=(25_200.0, 25_200.0),
        duration_s=(60.0, 60.0)),)),)}, "extra_flow[0].link"),
    ({"existing_plan": "fixed:nothing"}, "evaluation.existing_plan"),
    ({"existing_plan": "sometimes"}, "evaluation.existing_plan"),
])
def test_bad_day_types_and_plans_are_refused(tiny: Scenario, change, field) -> None:
    with pytest.raises(ScenarioError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(tiny, **change)


def test_default_scenario_declares_its_plan_and_mix() -> None:
    sc = read_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "vallensbaek.toml")
    assert sc.baseline_plan == "tod"
    assert {d.name for d in sc.day_types} == {"ordinary", "heavy", "early_peak", "late_peak",
                                               "incident", "diversion"}
    assert sum(d.frequency for d in sc.day_types) == pytest.approx(1.0, abs=1e-9)
    assert [r.value for r in sc.published][:2] == ["−21 %", "32 → 38 km/h"]
