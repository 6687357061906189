"""Network topology: movement resolution by arm bearings (right-hand traffic)."""

from __future__ import annotations

import dataclasses

import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model import Scenario, movement_targets
from gpssignal.model.network import (
    MAX_TURN_ERROR_DEG,
    entry_links,
    exit_links,
    split_arm_ref,
)

ALL = ("left", "through", "right")
CROSS = {"N": 0.0, "E": 90.0, "S": 180.0, "W": 270.0}


def test_movement_targets_tiny(tiny: Scenario) -> None:
    assert movement_targets(tiny) == {("W_in", "through"): "E_out",
                                      ("S_in", "through"): "N_out"}


def test_entry_and_exit_links_tiny(tiny: Scenario) -> None:
    assert [lk.id for lk in entry_links(tiny)] == ["W_in", "S_in"]
    assert [lk.id for lk in exit_links(tiny)] == ["E_out", "N_out"]


def test_four_arm_crossroads(build_one_junction) -> None:
    s = build_one_junction(CROSS, {a: ALL for a in CROSS})
    # Arriving from the west you head east: left is north, right is south.
    assert movement_targets(s) == {
        ("W_in", "left"): "N_out", ("W_in", "through"): "E_out", ("W_in", "right"): "S_out",
        ("N_in", "left"): "E_out", ("N_in", "through"): "S_out", ("N_in", "right"): "W_out",
        ("E_in", "left"): "S_out", ("E_in", "through"): "W_out", ("E_in", "right"): "N_out",
        ("S_in", "left"): "W_out", ("S_in", "through"): "N_out", ("S_in", "right"): "E_out",
    }


def test_skewed_crossroads_picks_nearest_arm(build_one_junction) -> None:
    # W_in heads 70 deg: through E (100, off 30) not N (20, off 50); left heads
    # 340: N (off 40); right heads 160: S (200, off 40) not E (100, off 60).
    arms = {"N": 20.0, "E": 100.0, "S": 200.0, "W": 250.0}
    s = build_one_junction(arms, {"W": ALL})
    assert movement_targets(s) == {("W_in", "left"): "N_out", ("W_in", "through"): "E_out",
                                   ("W_in", "right"): "S_out"}


def test_bearings_wrap_around_north(build_one_junction) -> None:
    # S_in (bearing 185) heads 5 deg; the arm at 355 is 10 deg off across north.
    arms = {"N": 355.0, "E": 95.0, "S": 185.0, "W": 265.0}
    s = build_one_junction(arms, {"S": ALL})
    assert movement_targets(s) == {("S_in", "left"): "W_out", ("S_in", "through"): "N_out",
                                   ("S_in", "right"): "E_out"}


def test_only_requested_movements_resolved(build_one_junction) -> None:
    s = build_one_junction(CROSS, {"E": ("through",)})
    assert movement_targets(s) == {("E_in", "through"): "W_out"}


def test_no_arm_within_60_degrees(build_one_junction) -> None:
    # T-junction without a north arm: through from the south has nowhere to go.
    with pytest.raises(ScenarioError) as exc:
        build_one_junction({"E": 90.0, "S": 180.0, "W": 270.0}, {"S": ("through",)})
    msg = str(exc.value)
    assert "link[S_in].lanes.movements = 'through'" in msg
    assert "within 60 deg of heading 0 deg" in msg


def test_no_u_turn_into_own_arm(build_one_junction) -> None:
    # Two opposite arms: a left turn from W heads north, 90 deg from E; the
    # incoming arm W itself is not a candidate.
    with pytest.raises(ScenarioError, match=r"'left'.*within 60 deg of heading 0 deg"):
        build_one_junction({"W": 270.0, "E": 90.0}, {"W": ("left",)})


@pytest.mark.parametrize(("bearing", "ok"), [(MAX_TURN_ERROR_DEG, True), (300.0, True),
                                             (61.0, False), (299.0, False)])
def test_turn_error_limit_is_inclusive(build_one_junction, bearing: float, ok: bool) -> None:
    # From S the through heading is 0; the only other arm is `bearing` deg off it.
    arms = {"S": 180.0, "X": bearing}
    if ok:
        s = build_one_junction(arms, {"S": ("through",)})
        assert movement_targets(s) == {("S_in", "through"): "X_out"}
    else:
        with pytest.raises(ScenarioError, match="within 60 deg"):
            build_one_junction(arms, {"S": ("through",)})


def test_movement_to_arm_without_outgoing_link(build_one_junction) -> None:
    with pytest.raises(ScenarioError) as exc:
        build_one_junction(CROSS, {"W": ("right",)}, outgoing=("N", "E"))
    msg = str(exc.value)
    assert "link[W_in].lanes.movements = 'right'" in msg
    assert "leads to arm J.S, which has no outgoing link" in msg


def test_two_outgoing_links_on_one_arm(tiny: Scenario) -> None:
    dup = dataclasses.replace(tiny.link("N_out"), id="N_out2")
    with pytest.raises(ScenarioError) as exc:
        dataclasses.replace(tiny, links=(*tiny.links, dup))
    assert "link[N_out2].from = 'J1.N': arm already has outgoing link N_out" in str(exc.value)


@pytest.mark.parametrize(("ref", "message"), [
    ("J1", "must be 'JUNCTION.ARM'"),
    ("J1.W.x", "must be 'JUNCTION.ARM'"),
    ("J2.W", "unknown junction 'J2'"),
    ("J1.Q", "junction J1 has no arm 'Q'"),
])
def test_split_arm_ref_errors(tiny: Scenario, ref: str, message: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        split_arm_ref(ref, "link[x].to", tiny)
    assert f"link[x].to = {ref!r}: {message}" == str(exc.value)


def test_split_arm_ref(tiny: Scenario) -> None:
    j, arm = split_arm_ref("J1.S", "f", tiny)
    assert (j.id, arm) == ("J1", "S")
