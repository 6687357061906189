"""Corridors: routes through several junctions, turn shares, spill-back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from gpssignal.evaluate import approach_table
from gpssignal.experiment import run_scenario
from gpssignal.model import read_scenario

CORRIDOR = "tests/data/two_junctions.toml"
DATA = Path(__file__).resolve().parents[1] / "data"


def _with_main_flow(sc, flow_vph: float):
    flows = tuple(dataclasses.replace(f, flow_vph=(flow_vph,)) if f.link == "W_in" else f
                  for f in sc.demand.flows)
    return dataclasses.replace(sc, demand=dataclasses.replace(sc.demand, flows=flows))


def test_turn_shares_at_the_second_junction() -> None:
    """Movements on the link between junctions follow its turn shares.

    Binomial tolerance: the share of left turns among n vehicles has standard
    deviation sqrt(p (1 - p) / n); 4 standard deviations make a false alarm
    about 1 in 16,000.
    """
    sc = _with_main_flow(read_scenario(CORRIDOR), 900)
    result, _ = run_scenario(sc, "fixed", seed=11, record_trajectories=False)
    net = result.network
    second = result.arrivals.route_moves[:, 1][result.arrivals.route_links[:, 1]
                                               == net.link_index("J1_J2")]
    n = len(second)
    p = 0.2
    share_left = np.mean(second == 0)
    assert n > 300
    assert abs(share_left - p) <= 4 * np.sqrt(p * (1 - p) / n)


def test_vehicles_cross_both_junctions_and_never_overlap() -> None:
    sc = read_scenario(CORRIDOR)
    result, _ = run_scenario(sc, "fixed", seed=3)
    p = result.passages
    net = result.network
    w_in = result.arrivals.route_links[:, 0] == net.link_index("W_in")
    crossed_both = np.isin(np.flatnonzero(w_in), p["vid"][p["junction"] == 1])
    assert crossed_both.all()
    # Every link here has one lane: consecutive vehicles on a link at one time
    # are at least a vehicle length (4.5 m, the default class) apart.
    tr = pd.DataFrame(result.trajectories).sort_values(["t_s", "link", "pos_m"])
    same = (tr["t_s"].diff() == 0) & (tr["link"].diff() == 0)
    spacing = tr["pos_m"].diff()[same]
    assert spacing.min() >= 4.5 - 1e-6


def test_queue_spills_back_through_the_upstream_junction() -> None:
    """A short green at J2 fills the 150 m link and blocks J1's discharge.

    Spill-back shows as a full internal link and as vehicles on J1's approach
    queued while J1 shows green, which never happens without it.
    """
    base = _with_main_flow(read_scenario(CORRIDOR), 700)
    j2 = base.junctions[1]
    short = dataclasses.replace(j2, programs=(
        dataclasses.replace(j2.programs[0], greens={"M": (50, 2), "S": (8, 44)}),
        dataclasses.replace(j2.programs[1], greens={"M": (51, 3), "S": (9, 45)})))
    blocked = dataclasses.replace(base, junctions=(base.junctions[0], short))
    rows = {}
    for name, sc in (("base", base), ("blocked", blocked)):
        result, _ = run_scenario(sc, "fixed", seed=5)
        ap = approach_table(result).set_index("approach_link")
        # Queued vehicles on J1's approach during J1 green (state 2) at 1 s samples.
        net = result.network
        green_m = _group_state_at(result, 0, result.queue_t_s) == 2
        col = np.flatnonzero(net.lane_link[result.queue_lanes] == net.link_index("W_in"))[0]
        stopped_on_green = (result.queue_veh[:, col] > 0) & green_m
        rows[name] = (ap.loc["J1_J2", "queue_max_m"], stopped_on_green.mean(),
                      ap.loc["W_in", "control_delay_s"])
    assert rows["blocked"][0] >= 140.0  # the 150 m link fills up
    assert rows["blocked"][1] > 5 * rows["base"][1] + 0.05
    assert rows["blocked"][2] > rows["base"][2] + 10.0


def _group_state_at(result, group: int, t: np.ndarray) -> np.ndarray:
    """State of a global signal group at times ``t`` from the signal log."""
    log = result.signal_log
    sel = log["group"] == group
    times, states = log["t_s"][sel], log["state"][sel]
    idx = np.searchsorted(times, t, side="right") - 1
    return states[np.maximum(idx, 0)]


def _with_kerb_pocket_downstream(pocket: bool) -> str:
    """Return two_junctions, two through lanes in, a right-turn lane at J2's kerb (or full)."""
    text = (DATA / "two_junctions.toml").read_text(encoding="utf-8")
    right = '{ movements = ["right"], group = "M"' + (", length_m = 50 }" if pocket else " }")
    edits = [
        ('  { id = "N", bearing_deg = 0 },\n]', '  { id = "N", bearing_deg = 0 },\n'
         '  { id = "S", bearing_deg = 180 },\n]'),
        ('lane = [ { movements = ["through"], group = "M" } ]',
         'lane = [ { movements = ["through"], group = "M" }, '
         '{ movements = ["through"], group = "M" } ]'),
        ('turn_shares = { through = 0.8, left = 0.2 }\n'
         'lane = [ { movements = ["through", "left"], group = "M" } ]',
         'turn_shares = { through = 0.6, left = 0.2, right = 0.2 }\n'
         f'lane = [ {right}, {{ movements = ["through"], group = "M" }}, '
         '{ movements = ["through", "left"], group = "M" } ]'),
        ('[[link]]\nid = "E_out"', '[[link]]\nid = "S2_out"\nfrom = "J2.S"\nlength_m = 200\n'
         'speed_limit_kmh = 50\nlane = [ { movements = [] } ]\n\n[[link]]\nid = "E_out"'),
        ('{ link = "W_in", movement = "through", flow_vph = [600] }',
         '{ link = "W_in", movement = "through", flow_vph = [1500] }'),
    ]
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    return text


def test_lanes_feed_the_full_lanes_beyond_a_kerb_pocket() -> None:
    """Two through lanes into a link whose kerb lane is a right-turn pocket.

    Each upstream lane feeds its own downstream full lane (kerb through lane,
    then the next); mapped onto the pocket, the kerb lane's traffic went to the
    next full lane, which then carried both lanes while the kerb through lane
    stood empty, and the upstream approach broke down (control delay 305 s
    against 54 s with a full-length right lane; 101 s once fixed, the rest
    being the right turners' lane changes on the 150 m link).
    """
    from gpssignal.model.io import parse_scenario
    from gpssignal.sim.network import compile_network

    sc = parse_scenario(_with_kerb_pocket_downstream(pocket=True))
    net = compile_network(sc)
    w_in = net.link_lanes[net.link_index("W_in")]
    j1_j2 = net.link_lanes[net.link_index("J1_J2")]
    through = 1
    assert list(net.lane_target[w_in, through]) == [j1_j2[1], j1_j2[2]]
    full_sc = parse_scenario(_with_kerb_pocket_downstream(pocket=False))
    full = approach_table(run_scenario(full_sc, "fixed", seed=1, record_trajectories=False)[0]
                          ).set_index("approach_link")
    short = approach_table(run_scenario(sc, "fixed", seed=1, record_trajectories=False)[0]
                           ).set_index("approach_link")
    # Margin: the pocket costs the right turners lane changes on a 150 m link
    # (measured 101 against 54 s); twice the full-lane delay keeps the 305 s of
    # the bug far out.
    assert short.loc["W_in", "control_delay_s"] < 2 * full.loc["W_in", "control_delay_s"]
