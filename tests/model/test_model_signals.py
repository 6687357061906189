"""Signal programs as data: state timelines, events, unrolling and safety checks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpssignal.errors import ScenarioError
from gpssignal.model import Arm, Junction, Program, SignalTiming
from gpssignal.model.signals import (
    AMBER,
    GREEN,
    RED,
    RED_AMBER,
    STATE_NAMES,
    check_green_intervals,
    green_pieces,
    greens_at_zero,
    program_events,
    state_at,
    unrolled_greens,
)

# tiny.toml's program "normal": A wraps over the cycle end, B does not.
NORMAL = Program(name="normal", cycle_s=60, greens={"A": (50, 30), "B": (36, 44)})
IG = {("A", "B"): 5, ("B", "A"): 6}
AMBER_S, RED_AMBER_S, MIN_GREEN_S = 4, 2, 6


def expected_states(spans: list[tuple[int, int, int]]) -> list[int]:
    out = [None] * 60
    for a, b, state in spans:
        for x in range(a, b):
            out[x] = state
    assert None not in out
    return out


def test_state_names_match_codes() -> None:
    assert [STATE_NAMES[c] for c in (RED, RED_AMBER, GREEN, AMBER)] == [
        "red", "red-amber", "green", "amber"]


def test_state_at_wrapping_window() -> None:
    want = expected_states([(0, 30, GREEN), (30, 34, AMBER), (34, 48, RED),
                            (48, 50, RED_AMBER), (50, 60, GREEN)])
    got = [state_at(NORMAL, "A", x, AMBER_S, RED_AMBER_S) for x in range(60)]
    assert got == want


def test_state_at_plain_window() -> None:
    want = expected_states([(0, 34, RED), (34, 36, RED_AMBER), (36, 44, GREEN),
                            (44, 48, AMBER), (48, 60, RED)])
    got = [state_at(NORMAL, "B", x, AMBER_S, RED_AMBER_S) for x in range(60)]
    assert got == want


@pytest.mark.parametrize(("second", "state"), [
    (29.5, GREEN), (30.0, AMBER), (33.99, AMBER), (34.0, RED), (47.5, RED),
    (48.0, RED_AMBER), (49.9, RED_AMBER), (50.0, GREEN), (59.999, GREEN),
])
def test_state_at_fractional_seconds(second: float, state: int) -> None:
    assert state_at(NORMAL, "A", second, AMBER_S, RED_AMBER_S) == state


@pytest.mark.parametrize("k", [-2, -1, 1, 3])
def test_state_at_is_periodic(k: int) -> None:
    for x in range(60):
        assert (state_at(NORMAL, "A", x + k * 60, AMBER_S, RED_AMBER_S)
                == state_at(NORMAL, "A", x, AMBER_S, RED_AMBER_S))


def test_state_at_without_red_amber() -> None:
    got = [state_at(NORMAL, "A", x, AMBER_S, 0) for x in range(60)]
    assert RED_AMBER not in got
    assert got[48:50] == [RED, RED]


def test_state_at_amber_wraps_over_cycle_end() -> None:
    prog = Program(name="p", cycle_s=60, greens={"A": (20, 58)})
    got = [state_at(prog, "A", x, AMBER_S, RED_AMBER_S) for x in (57, 58, 59, 0, 1, 2)]
    assert got == [GREEN, AMBER, AMBER, AMBER, AMBER, RED]


def test_green_pieces() -> None:
    assert green_pieces(NORMAL, "A") == [(0.0, 30), (50, 60)]
    assert green_pieces(NORMAL, "B") == [(36, 44)]
    end_at_cycle = Program(name="p", cycle_s=60, greens={"A": (50, 60), "B": (60, 10)})
    assert green_pieces(end_at_cycle, "A") == [(50, 60)]
    assert green_pieces(end_at_cycle, "B") == [(0, 10)]


def test_greens_at_zero() -> None:
    assert greens_at_zero(NORMAL) == frozenset({"A"})
    starts_at_zero = Program(name="p", cycle_s=60, greens={"A": (0, 20), "B": (30, 60)})
    assert greens_at_zero(starts_at_zero) == frozenset({"A"})


def test_program_events_tiny() -> None:
    ev = program_events(NORMAL, ["A", "B"], AMBER_S, RED_AMBER_S)
    assert ev == [
        (30, 0, AMBER), (34, 0, RED),
        (34, 1, RED_AMBER), (36, 1, GREEN), (44, 1, AMBER),
        (48, 1, RED), (48, 0, RED_AMBER), (50, 0, GREEN),
    ]
    # Second 0 itself is not an event; the state there comes from state_at.
    assert all(0 < t < 60 for t, _, _ in ev)


@pytest.mark.parametrize("groups", [["A", "B"], ["B", "A"]])
def test_program_events_leave_green_before_entering(groups: list[str]) -> None:
    # A ends and B starts at the same second; whatever the group order, the
    # event list must end A's green before it starts B's.
    prog = Program(name="p", cycle_s=60, greens={"A": (10, 20), "B": (20, 40)})
    ev = program_events(prog, groups, AMBER_S, RED_AMBER_S)
    at_20 = [(groups[gi], s) for t, gi, s in ev if t == 20]
    assert at_20 == [("A", AMBER), ("B", GREEN)]
    times = [t for t, _, _ in ev]
    assert times == sorted(times)


def test_program_events_tie_order_by_state() -> None:
    # At second 30 all four kinds of change happen: D ends green (amber), C's
    # amber ends (red), B starts red-amber and A starts green.
    prog = Program(name="p", cycle_s=90, greens={
        "A": (30, 50), "B": (32, 60), "C": (10, 26), "D": (0, 30)})
    ev = program_events(prog, ["A", "B", "C", "D"], AMBER_S, RED_AMBER_S)
    at_30 = [s for t, _, s in ev if t == 30]
    assert at_30 == [AMBER, RED, RED_AMBER, GREEN]


def test_program_events_reproduce_state_at() -> None:
    """Replaying the events from the state at second 0 gives state_at everywhere."""
    for ra in (0, RED_AMBER_S):
        ev = program_events(NORMAL, ["A", "B"], AMBER_S, ra)
        state = [state_at(NORMAL, g, 0, AMBER_S, ra) for g in ("A", "B")]
        k = 0
        for x in range(60):
            while k < len(ev) and ev[k][0] <= x:
                state[ev[k][1]] = ev[k][2]
                k += 1
            assert state == [state_at(NORMAL, g, x, AMBER_S, ra) for g in ("A", "B")], x


def test_unrolled_greens_merges_window_across_cycle_boundary() -> None:
    got = unrolled_greens([(NORMAL, 0.0)] * 3, 0.0)
    assert got["A"] == [(0.0, 30), (50, 90), (110, 150), (170, 180)]
    assert got["B"] == [(36, 44), (96, 104), (156, 164)]


def test_unrolled_greens_start_time_and_hold() -> None:
    got = unrolled_greens([(NORMAL, 10.0), (NORMAL, 0.0)], 100.0)
    # The hold extends the green of A (green at second 0) and delays the rest.
    assert got["A"] == [(100.0, 140.0), (160, 200), (220, 230)]
    assert got["B"] == [(146, 154), (206, 214)]


def test_unrolled_greens_across_program_switch() -> None:
    peak = Program(name="peak", cycle_s=60, greens={"A": (51, 34), "B": (39, 45)})
    got = unrolled_greens([(NORMAL, 0.0), (peak, 0.0)], 0.0)
    assert got["A"] == [(0.0, 30), (50, 94), (111, 120)]


# ---------------------------------------------------------------------------
# check_green_intervals on hand-made interval lists
# ---------------------------------------------------------------------------

VALID = {"A": [(0.0, 30.0), (50.0, 90.0)], "B": [(36.0, 44.0)]}


def check(greens, intergreen=IG, horizon=(0.0, 120.0)):
    return check_green_intervals(greens, intergreen, MIN_GREEN_S, AMBER_S, RED_AMBER_S,
                                 horizon)


def test_check_valid_intervals() -> None:
    assert check(VALID) == []


def test_check_valid_unrolled_program() -> None:
    assert check(unrolled_greens([(NORMAL, 0)] * 3, 0), horizon=(0, 180)) == []


@pytest.mark.parametrize(("greens", "message"), [
    ({"A": [(0, 30)], "B": [(25, 44)]}, "conflicting groups A and B both green at t=25"),
    ({"A": [(40, 60)], "B": [(36, 44)]}, "conflicting groups B and A both green at t=40"),
    ({"A": [(0, 30)], "B": [(33, 44)]}, "intergreen A->B 3 s at t=33 < 5 s"),
    ({"A": [(48, 90)], "B": [(36, 44)]}, "intergreen B->A 4 s at t=48 < 6 s"),
    ({"A": [(0, 30)], "B": [(36, 40)]}, "group B green 4 s at t=36 < min green 6 s"),
    ({"A": [(0, 30), (34, 60)], "B": []},
     "group A red between greens 4 s at t=30 < amber + red-amber 6 s"),
])
def test_check_finds_violation(greens, message: str) -> None:
    problems = check(greens)
    assert message in problems, problems


def test_check_min_green_ignores_intervals_clipped_by_horizon() -> None:
    assert check({"A": [(0, 3), (117, 120)], "B": []}) == []
    assert check({"A": [(1, 4)], "B": []}) == ["group A green 3 s at t=1 < min green 6 s"]


def test_check_non_conflicting_groups_may_overlap() -> None:
    assert check({"A": [(0, 30)], "C": [(10, 40)]}) == []


def test_check_exact_limits_pass() -> None:
    # Intergreen exactly 5 s, red exactly amber + red-amber, green exactly min green.
    greens = {"A": [(10, 16), (22, 30)], "B": [(35, 41)]}
    assert check(greens) == []


# ---------------------------------------------------------------------------
# validate_junction_programs through Junction
# ---------------------------------------------------------------------------


def junction(groups: tuple[str, ...], intergreen: dict, *programs: Program) -> Junction:
    return Junction(id="J", lat_deg=0, lon_deg=0,
                    arms=(Arm(id="W", bearing_deg=270), Arm(id="E", bearing_deg=90)),
                    groups=groups, intergreen_s=intergreen, programs=programs,
                    default_program=programs[0].name,
                    timing=SignalTiming(amber_s=AMBER_S, red_amber_s=RED_AMBER_S,
                                        min_green_s=MIN_GREEN_S))


def test_tiny_programs_pass() -> None:
    peak = Program(name="peak", cycle_s=60, greens={"A": (51, 34), "B": (39, 45)})
    junction(("A", "B"), IG, NORMAL, peak)


def test_switch_that_shortens_green_below_min_green_is_rejected() -> None:
    # Each program is valid on its own and both have A green at second 0, but
    # a -> b gives A 0 s of green before second 0 (a starts A at 0) and 2 s after.
    a = Program(name="a", cycle_s=60, greens={"A": (0, 30), "B": (36, 52)})
    b = Program(name="b", cycle_s=60, greens={"A": (40, 2), "B": (8, 34)})
    junction(("A", "B"), IG, a)
    junction(("A", "B"), IG, b)
    with pytest.raises(ScenarioError) as exc:
        junction(("A", "B"), IG, a, b)
    msg = str(exc.value)
    assert "junction[J].program[a] -> program[b] switch" in msg
    assert "group A green 2 s at t=120 < min green 6 s" in msg


def test_switch_that_breaks_intergreen_is_rejected() -> None:
    # A conflicts with nothing and is green at second 0. B and C conflict with
    # intergreen 8 s. In a, B ends at 56; in b, C starts at 3: fine within
    # either program, 7 s across the switch a -> b.
    ig = {("B", "C"): 8, ("C", "B"): 8}
    a = Program(name="a", cycle_s=60, greens={"A": (50, 30), "B": (30, 56), "C": (10, 22)})
    b = Program(name="b", cycle_s=60, greens={"A": (50, 30), "B": (20, 40), "C": (3, 10)})
    junction(("A", "B", "C"), ig, a)
    junction(("A", "B", "C"), ig, b)
    with pytest.raises(ScenarioError) as exc:
        junction(("A", "B", "C"), ig, a, b)
    msg = str(exc.value)
    assert "junction[J].program[a] -> program[b] switch" in msg
    assert "intergreen B->C 7 s at t=123 < 8 s" in msg


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_program_switches_keep_the_rules(junction_strategy, data) -> None:
    """Property: a junction the validator accepts never breaks a rule under any
    sequence of program switches at second 0, with any hold of the state there."""
    j = data.draw(junction_strategy, label="junction")
    seq = data.draw(st.lists(
        st.tuples(st.sampled_from(j.programs),
                  st.one_of(st.just(0.0), st.integers(0, 120).map(float))),
        min_size=2, max_size=8), label="switches")
    greens = unrolled_greens(seq, 0.0)
    total = sum(p.cycle_s + hold for p, hold in seq)
    tm = j.timing
    assert check_green_intervals(greens, j.intergreen_s, tm.min_green_s, tm.amber_s,
                                 tm.red_amber_s, (0.0, total)) == []
