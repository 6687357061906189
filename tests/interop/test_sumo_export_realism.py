"""The SUMO export of junction realism: turn pockets, give-way, lane-change settings.

Built from ``scenarios/tiny.toml`` with an opposing approach added: the
west approach (300 m) gets a 40 m left-turn pocket whose permissive left
turn yields to the opposing (east) through traffic. The tests marked
``sumo`` need Eclipse SUMO and are skipped, saying why, without it
(tests/interop/conftest.py).
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model.io import parse_scenario
from gpssignal.model.scenario import Scenario
from gpssignal.model.signals import GREEN, state_at

REPO = Path(__file__).resolve().parents[2]
TINY = (REPO / "scenarios" / "tiny.toml").read_text(encoding="utf-8")

W_IN = """[[link]]
id = "W_in"
name = "Main road eastbound, approach"
to = "J1.W"
length_m = 400
speed_limit_kmh = 50
lane = [ { movements = ["through"], group = "A" } ]
"""
#: The west approach with a 40 m left pocket; its left turn yields to the
#: opposing through traffic. ``{lanes}``, ``{give_way}`` and the opposing
#: approach's ``{e_lanes}`` are filled in.
W_IN_POCKET = """[[link]]
id = "W_in"
name = "Main road eastbound, approach"
to = "J1.W"
length_m = 300
speed_limit_kmh = 50
lane = [ {lanes} ]
give_way = [ {give_way} ]

[[link]]
id = "E_in"
to = "J1.E"
length_m = 300
speed_limit_kmh = 50
lane = [ {e_lanes} ]

[[link]]
id = "W_out"
from = "J1.W"
length_m = 200
speed_limit_kmh = 50
lane = [ {{ movements = [] }} ]

[[link]]
id = "S_out"
from = "J1.S"
length_m = 200
speed_limit_kmh = 50
lane = [ {{ movements = [] }} ]
"""
LEFT_POCKET = ('{ movements = ["through"], group = "A" }, '
               '{ movements = ["left"], group = "A", length_m = 40 }')
#: Nested short lanes on both sides: a 30 m right flare at the kerb, two
#: left lanes of 60 m and 40 m at the centre.
NESTED = ('{ movements = ["right"], group = "A", length_m = 30 }, '
          '{ movements = ["through"], group = "A" }, '
          '{ movements = ["left"], group = "A", length_m = 60 }, '
          '{ movements = ["left"], group = "A", length_m = 40 }')
LEFT_YIELDS = '{ movement = "left", to = ["E_in.through"] }'
E_THROUGH = '{ movements = ["through"], group = "A" }'

DEMAND = """  { link = "W_in", movement = "through", flow_vph = [600] },"""
DEMAND_MORE = """  { link = "W_in", movement = "through", flow_vph = [450] },
  { link = "W_in", movement = "left", flow_vph = [120] },
  { link = "E_in", movement = "through", flow_vph = [400] },"""


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected exactly one {old!r} in tiny.toml"
    return text.replace(old, new)


def pocket_scenario(lanes: str = LEFT_POCKET, give_way: str = LEFT_YIELDS,
                    right_vph: float = 0.0, e_lanes: str = E_THROUGH,
                    north_exit_lanes: int = 1) -> Scenario:
    """tiny.toml with the opposing approach, the west pocket and its give-way rule."""
    text = _replace_once(TINY, W_IN, W_IN_POCKET.format(lanes=lanes, give_way=give_way,
                                                        e_lanes=e_lanes))
    text = _replace_once(text, 'from = "J1.N"\nlength_m = 200\nspeed_limit_kmh = 50\n'
                         'lane = [ { movements = [] } ]',
                         'from = "J1.N"\nlength_m = 200\nspeed_limit_kmh = 50\nlane = [ '
                         + ", ".join(["{ movements = [] }"] * north_exit_lanes) + " ]")
    demand = DEMAND_MORE + (f'\n  {{ link = "W_in", movement = "right", '
                            f'flow_vph = [{right_vph:g}] }},' if right_vph else "")
    text = _replace_once(text, DEMAND, demand)
    text = _replace_once(text, "end_m = 400", "end_m = 300")
    return parse_scenario(text)


def _edges(net: Path) -> dict[str, list[ET.Element]]:
    """Normal edges of a built network: id -> its lanes."""
    return {e.get("id", ""): list(e.iter("lane")) for e in ET.parse(net).getroot().iter("edge")
            if e.get("function") != "internal"}


def test_link_edges_cut_a_link_where_each_short_lane_begins() -> None:
    from gpssignal.interop.sumo_export import link_edges

    sc = pocket_scenario(NESTED, right_vph=60)
    parts = link_edges(sc)["W_in"]
    assert [(p.edge, p.start_m, p.end_m, p.lanes) for p in parts] == [
        ("W_in.0", 0.0, 240.0, (1,)),
        ("W_in.1", 240.0, 260.0, (1, 2)),
        ("W_in.2", 260.0, 270.0, (1, 2, 3)),
        ("W_in", 270.0, 300.0, (0, 1, 2, 3))]
    # Links without short lanes stay one edge with their own id.
    assert [(p.edge, p.lanes) for p in link_edges(sc)["E_in"]] == [("E_in", (0,))]
    assert parts[1].lane_id(2) == "W_in.1_1"


@pytest.mark.sumo
def test_the_pocket_lane_exists_only_over_its_last_40_m(tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    sc = pocket_scenario()
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    edges = _edges(ex.net)
    # The full lane upstream, both lanes on the last 40 m, lengths as the scenario.
    assert len(edges["W_in.0"]) == 1 and len(edges["W_in"]) == 2
    assert float(edges["W_in.0"][0].get("length", 0)) == pytest.approx(260.0)
    assert all(float(ln.get("length", 0)) == pytest.approx(40.0) for ln in edges["W_in"])
    cons = [(c.get("from"), c.get("fromLane"), c.get("to"), c.get("toLane"), c.get("tl"))
            for c in ET.parse(ex.net).getroot().iter("connection")
            if not (c.get("from") or ":").startswith(":")]
    # The full lane continues into itself and into the pocket where it begins
    # (no signal: the lane splits there); the pocket lane turns left.
    assert ("W_in.0", "0", "W_in", "0", None) in cons
    assert ("W_in.0", "0", "W_in", "1", None) in cons
    assert ("W_in", "1", "N_out", "0", "J1") in cons
    assert ("W_in", "0", "E_out", "0", "J1") in cons
    assert not any(f == "W_in.0" and t != "W_in" for f, _, t, _, _ in cons)
    # Same lateral position: the upstream lane lies where lane 0 lies at the stop line.
    y_up = float(edges["W_in.0"][0].get("shape", "").split()[-1].split(",")[1])
    y_down = float(edges["W_in"][0].get("shape", "").split()[0].split(",")[1])
    assert y_up == pytest.approx(y_down, abs=0.01)
    # Routes list both parts of the link.
    routes = {r.get("edges") for r in ET.parse(ex.folder / "routes.rou.xml").getroot().iter(
        "route")}
    assert {"W_in.0 W_in N_out", "W_in.0 W_in E_out", "E_in W_out"} <= routes
    # Detectors by position along the link: the stretch (100 m to the stop
    # line) enters on the upstream edge and leaves on both stop-line lanes;
    # the through lane's queue detector spans both edges, the pocket's only its own.
    e3 = ET.parse(ex.folder / "stretch.add.xml").getroot().find("entryExitDetector")
    assert e3 is not None
    assert [(d.get("lane"), d.get("pos")) for d in e3.iter("detEntry")] == [("W_in.0_0", "100")]
    assert [(d.get("lane"), d.get("pos")) for d in e3.iter("detExit")] == [
        ("W_in_0", "39.9"), ("W_in_1", "39.9")]
    det = {d.get("id"): d for d in ET.parse(ex.folder / "approach.add.xml").getroot()}
    assert det["q|W_in|0"].get("lanes") == "W_in.0_0 W_in_0"
    assert det["q|W_in|1"].get("lane") == "W_in_1"
    assert det["q|W_in|1"].get("endPos") == "40"
    assert det["s|W_in|1"].get("lane") == "W_in_1"


@pytest.mark.sumo
def test_nested_short_lanes_on_both_sides_build_and_check(tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    sc = pocket_scenario(NESTED, right_vph=60)
    ex = export_sumo(sc, tmp_path / "x", seed=1)   # check_connections passed
    edges = _edges(ex.net)
    assert [len(edges[e]) for e in ("W_in.0", "W_in.1", "W_in.2", "W_in")] == [1, 2, 3, 4]
    # Each short lane is reached from the nearest lane before its start: the
    # through lane splits into the 60 m left lane, that one into the 40 m
    # left lane, and the through lane into the right flare.
    cons = {(c.get("from"), c.get("fromLane"), c.get("to"), c.get("toLane"))
            for c in ET.parse(ex.net).getroot().iter("connection")
            if (c.get("from") or "").startswith("W_in.")}
    assert cons == {("W_in.0", "0", "W_in.1", "0"), ("W_in.0", "0", "W_in.1", "1"),
                    ("W_in.1", "0", "W_in.2", "0"), ("W_in.1", "1", "W_in.2", "1"),
                    ("W_in.1", "1", "W_in.2", "2"),
                    ("W_in.2", "0", "W_in", "1"), ("W_in.2", "1", "W_in", "2"),
                    ("W_in.2", "2", "W_in", "3"), ("W_in.2", "0", "W_in", "0")}
    # Lateral positions kept: gpssignal's through lane (1) is SUMO lane 0
    # upstream and lane 1 at the stop line, on the same line.
    ys = {e: [float(ln.get("shape", "").split()[0].split(",")[1]) for ln in edges[e]]
          for e in ("W_in.0", "W_in.1", "W_in")}
    assert ys["W_in.0"][0] == pytest.approx(ys["W_in"][1], abs=0.01)
    assert ys["W_in.1"][1] == pytest.approx(ys["W_in"][2], abs=0.01)
    det = {d.get("id"): d for d in ET.parse(ex.folder / "approach.add.xml").getroot()}
    assert det["q|W_in|1"].get("lanes") == "W_in.0_0 W_in.1_0 W_in.2_0 W_in_1"
    assert det["q|W_in|2"].get("lanes") == "W_in.1_1 W_in.2_1 W_in_2"
    assert det["q|W_in|0"].get("lane") == "W_in_0"


@pytest.mark.sumo
def test_the_permissive_left_shows_minor_green_and_yields_to_the_opposing_through(
        tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    sc = pocket_scenario()
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    root = ET.parse(ex.net).getroot()
    index = {(c.get("from"), c.get("to")): int(c.get("linkIndex", -1))
             for c in root.iter("connection") if c.get("tl") == "J1"}
    left, opposing = index[("W_in", "N_out")], index[("E_in", "W_out")]
    assert ex.yielding is not None
    assert [i for i, y in enumerate(ex.yielding["J1"]) if y] == [left]
    # Every green second of group A: 'g' for the left turn, 'G' for the rest.
    j = sc.junction("J1")
    groups = ex.link_groups["J1"]
    tls = ET.parse(ex.folder / "tls.add.xml").getroot()
    for logic in tls.iter("tlLogic"):
        prog = next(p for p in j.programs if p.name == logic.get("programID"))
        t0 = 0.0
        for ph in logic.iter("phase"):
            dur, state = float(ph.get("duration", 0)), ph.get("state", "")
            g = state_at(prog, "A", t0 + dur / 2, j.timing.amber_s, j.timing.red_amber_s)
            for i, grp in enumerate(groups):
                if grp == "A" and g == GREEN:
                    assert state[i] == ("g" if i == left else "G")
            t0 += dur
    # SUMO's right-of-way makes the left turn yield to the opposing through
    # (response bits are written from the highest link index down).
    req = {int(r.get("index", -1)): r.get("response", "")
           for jn in root.iter("junction") if jn.get("id") == "J1" for r in jn.iter("request")}
    assert req[left][-1 - opposing] == "1"
    assert req[opposing][-1 - left] == "0"


@pytest.mark.sumo
def test_a_give_way_between_movements_that_do_not_cross_is_still_made(tmp_path: Path
                                                                     ) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    # Opposing through movements do not cross; the export's prohibition makes
    # netconvert add the conflict, so the rule still holds in SUMO.
    sc = pocket_scenario(give_way='{ movement = "through", to = ["E_in.through"] }')
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    root = ET.parse(ex.net).getroot()
    index = {(c.get("from"), c.get("to")): int(c.get("linkIndex", -1))
             for c in root.iter("connection") if c.get("tl") == "J1"}
    mine, opposing = index[("W_in", "E_out")], index[("E_in", "W_out")]
    assert ex.yielding is not None and ex.yielding["J1"][mine]
    req = {int(r.get("index", -1)): r.get("response", "")
           for jn in root.iter("junction") if jn.get("id") == "J1" for r in jn.iter("request")}
    assert req[mine][-1 - opposing] == "1"


@pytest.mark.sumo
def test_a_give_way_sumo_does_not_make_is_reported(tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import check_give_way, export_sumo

    sc = pocket_scenario()
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    tree = ET.parse(ex.net)
    for jn in tree.getroot().iter("junction"):
        if jn.get("id") == "J1":
            for r in jn.iter("request"):
                r.set("response", "0" * len(r.get("response", "")))
    tree.write(tmp_path / "broken.net.xml")
    with pytest.raises(ScenarioError, match=r"does not yield to E_in\.through"):
        check_give_way(tmp_path / "broken.net.xml", sc)


@pytest.mark.sumo
def test_a_give_way_into_another_lane_of_the_same_exit_is_listed_as_unmapped(
        tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    # Left (west) and opposing right (east) turns enter different lanes of a
    # two-lane exit: no conflict in SUMO, so the rule's right-turn part is
    # not represented (the through part is).
    sc = pocket_scenario(give_way='{ movement = "left", to = ["E_in.through", "E_in.right"] }',
                         e_lanes='{ movements = ["through", "right"], group = "A" }',
                         north_exit_lanes=2)
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    assert len(ex.give_way_unmapped) == 1
    assert ex.give_way_unmapped[0].startswith("W_in.left -> E_in.right")
    assert ex.yielding is not None and sum(ex.yielding["J1"]) == 1


@pytest.mark.sumo
@pytest.mark.parametrize("discretionary", [False, True])
def test_vehicle_types_carry_the_lane_change_and_gap_settings(discretionary: bool,
                                                              tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    sc = pocket_scenario()
    sc = dataclasses.replace(sc, driver=dataclasses.replace(
        sc.driver, lc_discretionary=discretionary, critical_gap_s=5.0))
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    vt = next(ET.parse(ex.folder / "routes.rou.xml").getroot().iter("vType"))
    assert vt.get("lcSpeedGain") == ("1" if discretionary else "0")
    assert vt.get("lcKeepRight") == "0"
    assert vt.get("lcStrategic") is None and vt.get("lcCooperative") is None
    car = sc.vehicle_classes[0]
    clear = math.sqrt(2 * car.length_m / car.max_accel_mps2)
    assert float(vt.get("jmTimegapMinor", "nan")) == pytest.approx(5.0 - clear, abs=1e-3)


@pytest.mark.sumo
@pytest.mark.parametrize("lanes", [LEFT_POCKET, NESTED], ids=["left_pocket", "nested"])
def test_sumo_runs_the_pocket_scenario_to_the_end(lanes: str, tmp_path: Path) -> None:
    from gpssignal.interop.compare import run_sumo
    from gpssignal.interop.sumo_export import export_sumo

    sc = pocket_scenario(lanes, right_vph=60 if lanes == NESTED else 0.0)
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    run_sumo(ex.config)
    vehicles = {v.get("id"): (v.find("route").get("edges") or "")   # type: ignore[union-attr]
                for v in ET.parse(ex.folder / "routes.rou.xml").getroot().iter("vehicle")}
    trips = list(ET.parse(ex.folder / "tripinfo.xml").getroot().iter("tripinfo"))
    # Every vehicle finished its trip (the drain period is long enough) ...
    assert len(trips) == len(vehicles) > 100
    assert all(float(t.get("arrival", "-1")) >= 0 for t in trips)
    last = list(ET.parse(ex.folder / "summary.xml").getroot().iter("step"))[-1]
    assert last.get("teleports") == "0" and last.get("collisions") == "0"
    assert last.get("arrived") == str(len(vehicles))
    # ... and left turners left from the pocket, the others from the through lane.
    crossed: dict[str, int] = {}
    for el in ET.parse(ex.folder / "stopline.xml").getroot().iter("instantOut"):
        if el.get("state") == "enter":
            crossed[el.get("id", "")] = crossed.get(el.get("id", ""), 0) + 1
    n_left = sum(r.startswith("W_in") and r.endswith("N_out") for r in vehicles.values())
    n_through = sum(r.startswith("W_in") and r.endswith("E_out") for r in vehicles.values())
    pocket = [2, 3] if lanes == NESTED else [1]
    through = 1 if lanes == NESTED else 0
    assert n_left > 0
    assert sum(crossed.get(f"s|W_in|{k}", 0) for k in pocket) == n_left
    assert crossed.get(f"s|W_in|{through}", 0) == n_through
    # The queue detector over the through lane covers both edges.
    q = [float(iv.get("meanMaxJamLengthInMeters", "0"))
         for iv in ET.parse(ex.folder / "queue.xml").getroot().iter("interval")
         if iv.get("id") == f"q|W_in|{through}"]
    assert q and max(q) > 0
