"""The SUMO export and the fixed-timing cross-check (gpssignal.interop).

Marked ``sumo``; skipped, saying why, without Eclipse SUMO (``.ci/run``
installs the ``sumo`` extra).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model.io import read_scenario
from gpssignal.model.signals import GREEN, state_at

# Skipped without SUMO (tests/interop/conftest.py).
pytestmark = pytest.mark.sumo

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = [REPO / "scenarios" / "tiny.toml", REPO / "tests" / "data" / "two_junctions.toml",
             REPO / "scenarios" / "vallensbaek.toml"]
LETTER = {0: "r", 1: "u", 2: "G", 3: "y"}


def motor_only(sc):  # type: ignore[no-untyped-def]
    """``sc`` without pedestrians and cyclists (their flows 0; signals kept).

    The cross-checks of the motor traffic model compare like with like: the
    SUMO export has no pedestrians, and SUMO's right turners lose far more to
    straight-on cyclists than gpssignal's (measured on the default scenario,
    seed 1001, ordinary day: cyclists add 5.1 s/veh of motor time loss in
    SUMO and 1.0 s/veh in gpssignal, and take SUMO's peak stretch speed from
    33.0 to 28.2 km/h; docs/validation.md, "Cyclists and pedestrians against
    SUMO"), a difference of the give-way models that these bounds are not about.
    """
    from gpssignal.interop.compare import without_road_users

    return without_road_users(sc)


def switching_model(sc):  # type: ignore[no-untyped-def]
    """The shipped model with the thresholds of the model trained before cyclists existed.

    The shipped model, trained once side-road turners gave way to
    pedestrians and cyclists, almost never switches (about 0.5 switches a
    day: `normal` all morning loses least there). These tests check that the
    controller drives SUMO as it drives gpssignal, which needs switches:
    29.4 / 33.6 km/h, 180 s window, 300 s dwell (about 20 switches a day).
    """
    import dataclasses

    from gpssignal.control.io import read_model

    m = read_model(REPO / "data" / "vallensbaek_model.json")
    st = tuple(dataclasses.replace(s, threshold_low_kmh=29.4, threshold_high_kmh=33.6)
               for s in m.stretches)
    return dataclasses.replace(m, stretches=st, window_s=180.0, min_dwell_s=300.0)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_export_maps_every_link_index_to_its_group_and_keeps_the_programs(
        path: Path, tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import export_sumo

    sc = read_scenario(path)
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    tls = ET.parse(ex.folder / "tls.add.xml").getroot()
    for j in sc.junctions:
        groups = ex.link_groups[j.id]
        # Every controlled link index belongs to a group of that junction.
        assert set(groups) <= set(j.groups)
        for logic in tls.iter("tlLogic"):
            if logic.get("id") != j.id:
                continue
            prog = next(p for p in j.programs if p.name == logic.get("programID"))
            phases = [(float(p.get("duration")), p.get("state")) for p in logic.iter("phase")]
            assert sum(d for d, _ in phases) == pytest.approx(prog.cycle_s)
            # The SUMO state at every half second equals gpssignal's state there.
            t0 = 0.0
            for dur, state in phases:
                for x in np.arange(t0 + 0.25, t0 + dur, 0.5):
                    # Give-way movements show SUMO's minor green "g" while green.
                    want = "".join(
                        "g" if st == GREEN and ex.yielding[j.id][i] else LETTER[st]
                        for i, st in enumerate(state_at(prog, g, x, j.timing.amber_s,
                                                        j.timing.red_amber_s) for g in groups))
                    assert state == want, (j.id, prog.name, x)
                t0 += dur
        # The default program is loaded last (SUMO runs the last one loaded).
        ids = [lg.get("programID") for lg in tls.iter("tlLogic") if lg.get("id") == j.id]
        assert ids[-1] == j.default_program


def test_a_connection_netconvert_did_not_make_is_reported(tmp_path: Path) -> None:
    from gpssignal.interop.sumo_export import check_connections, export_sumo

    sc = read_scenario(SCENARIOS[0])
    ex = export_sumo(sc, tmp_path / "x", seed=1)
    tree = ET.parse(ex.net)
    root = tree.getroot()
    victim = next(c for c in root.iter("connection") if c.get("tl"))
    root.remove(victim)
    tree.write(tmp_path / "broken.net.xml")
    with pytest.raises(ScenarioError, match="missing"):
        check_connections(tmp_path / "broken.net.xml", sc)


@pytest.mark.parametrize("path, seeds", [(SCENARIOS[1], [1, 2]), (SCENARIOS[2], [1])],
                         ids=["two_junctions", "vallensbaek"])
def test_fixed_timing_agrees_with_sumo(path: Path, seeds: list[int], tmp_path: Path) -> None:
    from gpssignal.interop.compare import compare_fixed

    sc = motor_only(read_scenario(path))
    df = compare_fixed(sc, seeds, tmp_path)
    cols = ["vehicles", "mean_time_loss_s", "throughput_vph", "co2_g_per_veh_km",
            "stretch_speed_peak_kmh"]
    g = df[df["simulator"] == "gpssignal"].set_index("seed")[cols]
    s = df[df["simulator"] == "sumo"].set_index("seed")[cols]
    # Same vehicles (the export carries gpssignal's arrivals): equal by
    # construction, a check of the export, not of the simulators.
    assert (g["vehicles"] == s["vehicles"]).all()
    # Tolerances: the car-following implementations differ (SUMO integrates IDM
    # in 0.25 s sub-steps, inserts vehicles by its own rules and jumps junctions
    # without internal lanes), and the E3 detector counts stretch traversals by
    # exit time, gpssignal by entry time. Measured on two_junctions (no short
    # lanes): -1.2 % time loss, +1.9 % stretch speed (docs/validation.md). On
    # the default scenario (seed 1; turn pockets, platoons from an upstream
    # signal): time loss +7.2 %, stretch speed -6.0 %, CO2 -0.9 %. Its
    # northbound approach runs near capacity at the peak, where SUMO loses
    # more: it inserts the platoons only at the desired speed (about half of
    # the time-loss difference is its insertion delay), and its lane choice
    # at entry (departLane "best") balances the two lanes differently from
    # gpssignal's (most space behind the last vehicle) once left turners for
    # the pocket share the inner lane (docs/validation.md, "Turn pockets,
    # lane changes and give-way against SUMO"). The bounds leave 1.7x that
    # room. Above saturation the simulators part further (the sweep in
    # docs/validation.md), which these bounds do not cover. Throughput is
    # nearly equal by construction (every trip ends); its bound checks the
    # export, not the car following.
    rel = (s / g - 1).abs()
    assert (rel["mean_time_loss_s"] < 0.12).all(), rel["mean_time_loss_s"]
    assert (rel["throughput_vph"] < 0.02).all(), rel["throughput_vph"]
    assert (rel["co2_g_per_veh_km"] < 0.06).all(), rel["co2_g_per_veh_km"]
    assert (rel["stretch_speed_peak_kmh"] < 0.10).all(), rel["stretch_speed_peak_kmh"]


def test_discharge_saturation_flow_agrees_with_sumo(tmp_path: Path) -> None:
    from gpssignal.interop.compare import compare_saturation_flow

    sc = read_scenario(REPO / "tests" / "data" / "saturation_one_lane.toml")
    r = compare_saturation_flow(sc, "W_in", 1, tmp_path)
    # Hundreds of saturated headways each; both in the practical range
    # (docs/references.md#saturation-flow: 1,700-1,900 veh/h/lane) and within 5 % of each other
    # (measured: 1,849 vs 1,846, docs/validation.md).
    assert r["gpssignal_headways"] > 100 and r["sumo_headways"] > 100
    assert 1700 <= r["sumo_vph"] <= 2000
    assert abs(r["sumo_vph"] / r["gpssignal_vph"] - 1) < 0.05


def test_gps_controller_drives_sumo_like_gpssignal(tmp_path: Path) -> None:
    pytest.importorskip("libsumo", reason="libsumo not installed (the sumo extra)")
    from gpssignal.interop.compare import compare_gps

    sc = motor_only(read_scenario(SCENARIOS[2]))
    model = switching_model(sc)
    df = compare_gps(sc, model, [1001], tmp_path).set_index(["simulator", "controller"])
    # The same equipped vehicles report in both: point counts differ only by
    # the vehicles' different trajectories (measured 4,410 vs 4,559, +3.4 %).
    pg, ps = df.loc[("gpssignal", "gps"), "probe_points"], df.loc[("sumo", "gps"), "probe_points"]
    assert abs(ps / pg - 1) < 0.05
    assert df.loc[("sumo", "gps"), "switches"] > 0
    # Against the `normal` program fixed, the controller helps in both
    # simulators on this (ordinary) day (measured -0.71 and -0.27 s/veh with
    # the motor-only scenario and the switching model; docs/validation.md).
    bg = df.loc[("gpssignal", "gps"), "mean_time_loss_s"] - df.loc[("gpssignal", "fixed"),
                                                                     "mean_time_loss_s"]
    bs = df.loc[("sumo", "gps"), "mean_time_loss_s"] - df.loc[("sumo", "fixed"),
                                                               "mean_time_loss_s"]
    assert bg < 0 and bs < 0
    # Under the controller both simulators end within the fixed-timing bound of
    # test_fixed_timing_agrees_with_sumo (12 %): the controller adds no source
    # of difference of its own, so its runs differ as fixed timing does on this
    # day (measured: fixed 29.32 vs 31.23 s/veh, +6.5 %; GPS 28.61 vs 30.96,
    # +8.2 %; the northbound approach is near capacity, where SUMO's insertion
    # of the upstream platoons and its entry-lane choice beside the turn pocket
    # cost more, see test_default_scenario_agrees_on_ordinary_and_heavy_days).
    # Before the right-turn lanes and the `peak` re-model of issue 15 the two
    # ended within 2.4 %.
    gg, gs = df.loc[("gpssignal", "gps"), "mean_time_loss_s"], df.loc[("sumo", "gps"),
                                                                     "mean_time_loss_s"]
    assert abs(gs / gg - 1) < 0.12


def test_sumo_program_switches_happen_only_at_the_synchronisation_point(tmp_path: Path
                                                                        ) -> None:
    pytest.importorskip("libsumo", reason="libsumo not installed (the sumo extra)")
    from gpssignal.interop.sumo_gps import run_gps_in_sumo

    sc = read_scenario(SCENARIOS[2])
    run = run_gps_in_sumo(sc, switching_model(sc), 1002, tmp_path)
    assert run.switches
    for t, jid, old, _ in run.switches:
        p = next(q for q in sc.junction(jid).programs if q.name == old)
        cs = (sc.start_clock_s + t - p.offset_s) % p.cycle_s
        assert min(cs, p.cycle_s - cs) < sc.step_s / 2


def test_fcd_output_covers_the_probe_share_only(tmp_path: Path) -> None:
    import dataclasses

    from gpssignal.control.fixed import FixedTimeController
    from gpssignal.interop.compare import run_sumo
    from gpssignal.interop.sumo_export import export_sumo
    from gpssignal.model.geo import link_geometry
    from gpssignal.probes.sampler import ProbeSampler
    from gpssignal.sim.engine import Simulation

    sc = read_scenario(SCENARIOS[0])
    sc = dataclasses.replace(sc, probes=dataclasses.replace(sc.probes, penetration=0.3))
    ex = export_sumo(sc, tmp_path / "x", seed=2)
    run_sumo(ex.config)
    seen = {int(v.get("id")) for v in ET.parse(ex.folder / "fcd.xml").getroot().iter("vehicle")}
    sim = Simulation(sc, FixedTimeController(sc), seed=2, record_trajectories=False)
    equipped = ProbeSampler(sc, sc.probes, sim.arrivals, link_geometry(sc),
                            np.random.default_rng(sim.streams["probes"])).equipped
    assert seen == set(np.flatnonzero(equipped).tolist())
    assert 0 < len(seen) < len(sim.arrivals)


#: Bounds on |SUMO / gpssignal - 1| for (time loss, stretch speed, CO2/veh-km)
#: at nominal demand, seed 1001 (docs/validation.md, "Turn pockets, lane
#: changes and give-way against SUMO"). Measured with the re-modelled default
#: scenario (turn pockets, give-way side-road lefts, platoons from an
#: upstream signal): +7.1 / -6.2 / -1.1 % on the ordinary day and
#: +9.6 / -4.3 / -0.5 % on the heavy day (before it: +1.9 / -0.5 / -0.9 and
#: +9.6 / -2.0 / +0.6 %). With issue 15's right-turn lanes and `peak` re-model,
#: run without pedestrians and cyclists (``motor_only``): +6.5 / +0.8 / -0.9 %
#: ordinary, +8.2 / -1.7 / -0.9 % heavy. Explained, on the ordinary day: 1.14 of the
#: 2.21 s/veh are SUMO's insertion delay (departDelay 1.22 s/veh against
#: gpssignal's 0.08 s entry wait; SUMO inserts the northbound platoons only
#: at the desired speed); with gpssignal's entry lane imposed on each SUMO
#: vehicle the difference falls to +4.2 %, i.e. about 2.9 points are the two
#: entry-lane rules (gpssignal: most space behind the last vehicle; SUMO
#: departLane "best") balancing the northbound lanes differently once left
#: turners share the inner lane up to the pocket; the northbound approach is
#: near capacity at the peak (X ≈ 0.92), which magnifies both. The other
#: approaches offset a little (their short protected and permissive lefts
#: lose less in SUMO). The ordinary bounds leave about 1.4x the measured
#: difference, the heavy ones about 2x (at least 3 %).
BOUNDS = {"ordinary": (0.10, 0.09, 0.03), "heavy": (0.20, 0.08, 0.03)}


@pytest.mark.parametrize("day_type", ["ordinary", "heavy"])
def test_default_scenario_agrees_on_ordinary_and_heavy_days(day_type: str,
                                                            tmp_path: Path) -> None:
    from gpssignal.interop.compare import compare_fixed, scaled_day

    sc = scaled_day(motor_only(read_scenario(SCENARIOS[2])), 1.0, day_type)
    df = compare_fixed(sc, [1001], tmp_path).set_index("simulator")
    rel = (df.loc["sumo"] / df.loc["gpssignal"] - 1).abs()
    tl, speed, co2 = BOUNDS[day_type]
    assert rel["mean_time_loss_s"] < tl, rel
    assert rel["stretch_speed_peak_kmh"] < speed, rel
    assert rel["co2_g_per_veh_km"] < co2, rel


def test_small_scenario_agrees_at_demand_1_2(tmp_path: Path) -> None:
    from gpssignal.interop.compare import compare_fixed, scaled_day

    sc = scaled_day(read_scenario(SCENARIOS[0]), 1.2, None)
    df = compare_fixed(sc, [1, 2, 3], tmp_path)
    m = df.groupby("simulator")[["mean_time_loss_s", "stretch_speed_peak_kmh",
                                 "co2_g_per_veh_km"]].mean()
    rel = (m.loc["sumo"] / m.loc["gpssignal"] - 1).abs()
    # Measured over these seeds: -2.0 % (time loss), +1.9 % (stretch speed),
    # -2.8 % (CO2/veh-km) (`gpssignal cross-check scenarios/tiny.toml --sweep
    # 1.2 --seeds 1,2,3`); a 6 % bound is about twice the largest.
    assert (rel < 0.06).all(), rel


def test_per_lane_discharge_flow_agrees_with_sumo(tmp_path: Path) -> None:
    from gpssignal.interop.compare import compare_fixed_approaches

    sc = read_scenario(REPO / "tests" / "data" / "saturation_one_lane.toml")
    _, appr = compare_fixed_approaches(sc, [1], tmp_path)
    a = appr[appr["approach"] == "W_in"].set_index("simulator")
    # The sweep's discharge flow (HCM headways on each lane's stop-line
    # crossings: gpssignal's passages, SUMO's instant loop 0.1 m before the
    # stop line). Measured 1,849.0 (gpssignal) vs 1,843.8 veh/h/lane (SUMO),
    # -0.3 %, 340 headways each (docs/validation.md); the 2 % bound is about
    # 6x that, and tighter than the platoon-to-platoon spread of either.
    assert (a["discharge_headways"] > 100).all()
    assert abs(a.loc["sumo", "discharge_vph"] / a.loc["gpssignal", "discharge_vph"] - 1) < 0.02
    # Both queue columns are filled (their agreement is not asserted: SUMO's
    # E2 jam excludes the discharging front, docs/validation.md).
    assert (a["queue_mean_m"] > 0).all()
