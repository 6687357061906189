"""The signal runtime's precomputed lists give what the plain rules give.

The conflict monitor works out its expected next states and timing limits
once, and the signal state keeps each group's lanes as a Python list (issue
18, speed); these tests check both against the rules they stand for.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import SignalTiming
from gpssignal.model.signals import AMBER, GREEN, RED, RED_AMBER
from gpssignal.sim.network import compile_network
from gpssignal.sim.records import SignalState
from gpssignal.sim.signals import ConflictMonitor, SafetyViolation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
A, B = 0, 1  # tiny's J1: intergreen A->B 5 s, amber 4 s, min green 6 s


def _monitor(red_amber_s: float) -> ConflictMonitor:
    j = read_scenario(SCENARIOS / "tiny.toml").junctions[0]
    timing = dataclasses.replace(j.timing, red_amber_s=red_amber_s)
    assert isinstance(timing, SignalTiming)
    m = ConflictMonitor(dataclasses.replace(j, timing=timing))
    assert m.groups == ["A", "B"]
    m.start(0.0, np.array([GREEN, RED]))
    m.observe(10.0, A, AMBER)
    m.observe(14.0, A, RED)
    return m


def test_without_red_amber_red_goes_straight_to_green() -> None:
    m = _monitor(red_amber_s=0.0)
    m.observe(15.0, B, GREEN)  # intergreen A->B = 5 s exactly
    assert m.checks == 3 and m.state == [RED, GREEN]
    with pytest.raises(SafetyViolation, match="group B red -> red-amber is not a valid sequence"):
        _monitor(red_amber_s=0.0).observe(15.0, B, RED_AMBER)


def test_with_red_amber_red_may_not_go_straight_to_green() -> None:
    with pytest.raises(SafetyViolation, match="group B red -> green is not a valid sequence"):
        _monitor(red_amber_s=2.0).observe(15.0, B, GREEN)


@pytest.mark.parametrize("name", ["tiny", "vallensbaek"])
def test_a_change_sets_every_lane_of_its_group_and_no_other(name: str) -> None:
    net = compile_network(read_scenario(SCENARIOS / f"{name}.toml"))
    signals = SignalState(net)
    for g in range(net.n_groups):
        for state in (AMBER, RED):
            expected = signals.lane_state.copy()
            expected[net.lane_group == g] = state
            signals.changed(float(g), g, state)
            np.testing.assert_array_equal(signals.lane_state, expected)
    assert (net.lane_group >= 0).any()
    log = signals.log()
    assert log["group"].tolist() == [g for g in range(net.n_groups) for _ in (AMBER, RED)]
    assert log["state"].tolist() == [AMBER, RED] * net.n_groups
