"""Corridors: routes through several junctions, turn shares, spill-back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from gpssignal.evaluate import approach_table
from gpssignal.experiment import run_scenario
from gpssignal.model import read_scenario

CORRIDOR = "tests/data/two_junctions.toml"


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
