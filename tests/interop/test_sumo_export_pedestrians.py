"""Pedestrians in the SUMO export and the cross-check.

The scenario is tests/sim/test_sim_road_users.py's: one junction, a crossing
over the south arm (group P_S, green with the main road's group A, whose
right turners leave over it), here on recall.

* every gpssignal crossing is a SUMO crossing on its own traffic-light link
  index, driven by its pedestrian group;
* the day's pedestrians are SUMO persons (same number and arrival times);
* a short run gives a pedestrian delay close to gpssignal's, and SUMO's
  right turners give way to the pedestrians.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from gpssignal.control.fixed import FixedTimeController
from gpssignal.interop.compare import has_pedestrians, run_sumo, sumo_kpis
from gpssignal.interop.sumo_export import (
    SumoExport,
    check_crossings,
    crossings,
    export_sumo,
    tl_phases,
)
from gpssignal.model.io import parse_scenario
from gpssignal.model.scenario import Scenario
from gpssignal.sim.engine import Simulation
from tests.sim.test_sim_road_users import road_users_toml

pytestmark = pytest.mark.sumo


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(road_users_toml())


@pytest.fixture(scope="module")
def exported(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> SumoExport:
    return export_sumo(scenario, tmp_path_factory.mktemp("peds"), seed=1, pedestrians=True)


def test_each_crossing_is_a_sumo_crossing_on_its_groups_link_index(
        scenario: Scenario, exported: SumoExport) -> None:
    assert has_pedestrians(scenario)
    (x,) = crossings(scenario)
    # The four vehicle links come first (B, A, A, A), then the crossing.
    assert exported.link_groups["J1"] == ["B", "A", "A", "A", "P_S"]
    assert x.link_index == 4 and set(x.crossed) == {"S_in", "S_out"}
    assert check_crossings(exported.net, scenario) == {"J1": ["P_S"]}
    root = ET.parse(exported.net).getroot()
    built = [e for e in root.iter("edge") if e.get("function") == "crossing"]
    assert [set(e.get("crossingEdges").split()) for e in built] == [{"S_in", "S_out"}]
    # The road's lanes keep their indices: S_out has its two lanes, no sidewalk.
    lanes = {ln.get("id") for e in root.iter("edge") if e.get("id") == "S_out"
             for ln in e.iter("lane")}
    assert lanes == {"S_out_0", "S_out_1"}
    # The crossing's state is P_S's: green while it is green, red otherwise.
    states = [s for _, s in tl_phases(scenario, "J1", "normal", exported.link_groups["J1"],
                                      exported.yielding["J1"])]
    logic = ET.parse(exported.folder / "tls.add.xml").getroot().find("tlLogic")
    assert [p.get("state") for p in logic.iter("phase")] == states
    assert {s[4] for s in states} == {"G", "r"}
    assert all(s[4] == "r" for s in states if s[0] in "Gyu")   # B conflicts with P_S


def test_persons_are_gpssignals_pedestrians(scenario: Scenario, exported: SumoExport) -> None:
    sim = Simulation(scenario, FixedTimeController(scenario), seed=1, record_trajectories=False)
    assert sim.pedestrians is not None
    arrival = sim.pedestrians.arrival[0]
    persons = list(ET.parse(exported.folder / "routes.rou.xml").getroot().iter("person"))
    assert exported.persons == len(persons) == len(arrival) > 20
    depart = np.sort([float(p.get("depart")) for p in persons])
    # Each starts ahead of its arrival by its walk to the crossing (< 5 s here).
    lead = arrival - depart
    assert (lead > 0).all() and (lead < 5).all()


def test_short_run_pedestrian_delay_close_to_gpssignals(scenario: Scenario,
                                                        exported: SumoExport) -> None:
    """SUMO's mean wait against gpssignal's, seed 1, 15 min, recall, no island.

    Measured: SUMO 8.17 s, gpssignal 8.88 s (-8 %); seed 2: 8.90 vs 8.86 s.
    Paired per pedestrian, SUMO's waits are about 1 s shorter for those who
    wait (SUMO inserts a person at the next 0.5 s step and counts a wait from
    its first whole step stopped); the 1.5 s bound is about twice the
    measured gap and far below the 15 s a crossing without signal (no wait)
    or one ignoring the signal would differ by.
    """
    from gpssignal.interop.compare import gpssignal_kpis

    run_sumo(exported.config)
    k = sumo_kpis(exported.folder, scenario)
    g, _ = gpssignal_kpis(scenario, 1)
    assert k["pedestrians"] == pytest.approx(g["pedestrians"], abs=2)
    assert np.isfinite(k["pedestrian_mean_delay_s"])
    assert abs(k["pedestrian_mean_delay_s"] - g["pedestrian_mean_delay_s"]) < 1.5
