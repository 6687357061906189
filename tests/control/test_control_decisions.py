"""Decisions of the run-time path (:meth:`GpsRuntime.decide`), driven directly
with synthetic points on the stretch polylines, one decision every 10 s.

Thresholds of the synthetic model (``make_line_model``): switch to relief
below 30 km/h, back above 40 km/h.
"""

from __future__ import annotations

import numpy as np

LOW, HIGH = 30.0, 40.0


def test_switches_to_relief_when_slow_with_enough_points(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(min_points=3, window_s=60.0))
    assert d.tick({0: [20.0]}) == []
    assert d.tick({0: [20.0]}) == []
    assert d.tick({0: [20.0]}) == [(0, "peak")]     # the 3rd point makes it informative
    assert d.rt.program(0) == "peak"
    (row,) = d.rt.decision_log()
    assert row == {"t_ms": d.now, "junction": "J0", "from_program": "normal",
                   "to_program": "peak", "reason": "slow", "stretch": "s0_0",
                   "mean_kmh": 20.0, "points": 3}
    for _ in range(20):                                # stays while slow
        assert d.tick({0: [20.0]}) == []


def test_fewer_than_min_points_is_never_slow(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(min_points=5, window_s=300.0, stale_after_s=600.0))
    changes = []
    for _ in range(4):
        changes += d.tick({0: [2.0]})                  # 4 crawling points, one short
    for _ in range(40):
        changes += d.tick()                            # 400 s: not yet stale
    assert changes == []
    assert d.rt.program(0) == "normal"
    assert d.rt.decision_log() == []
    assert d.rt.stale_events == 0
    # One more point in the same window makes it informative, and slow.
    d2 = make_driver(make_line_model(min_points=5, window_s=300.0))
    got = [d2.tick({0: [2.0]}) for _ in range(5)]
    assert got == [[], [], [], [], [(0, "peak")]]


def test_hysteresis_no_flapping_between_low_and_high(make_line_model, make_driver) -> None:
    rng = np.random.default_rng(11)
    d = make_driver(make_line_model(min_points=3, window_s=60.0, min_dwell_s=0.0))

    def hover():  # two points per tick, strictly between the thresholds
        return {0: list(rng.uniform(LOW + 0.5, HIGH - 0.5, 2))}

    # In the default program: 10 minutes of in-between speeds, no switch.
    assert all(d.tick(hover()) == [] for _ in range(60))
    # A slow spell switches to relief ...
    changes = [d.tick({0: [10.0, 10.0]}) for _ in range(3)]
    assert sum(len(c) for c in changes) == 1
    # ... and 10 minutes of in-between speeds do not switch back.
    assert all(d.tick(hover()) == [] for _ in range(60))
    assert d.rt.program(0) == "peak"
    # Fast again: back to default once, and only when the window mean is above high.
    changes = [d.tick({0: [48.0, 50.0]}) for _ in range(12)]
    assert sum(len(c) for c in changes) == 1
    assert d.rt.program(0) == "normal"
    for t_ms, mean, modes, ch in d.history:
        if modes[0] == 1 and ch:
            assert mean[0] > HIGH, (t_ms, mean)
        if modes[0] == 1 and mean[0] > HIGH:
            assert ch == [(0, "normal")]
        if modes[0] == 0 and ch:
            assert mean[0] < LOW
    log = d.rt.decision_log()
    assert [r["reason"] for r in log] == ["slow", "recovered"]
    assert log[1]["mean_kmh"] > HIGH


def test_min_dwell_blocks_a_second_change(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(min_points=2, window_s=20.0, min_dwell_s=120.0))
    changes = []
    while not changes:
        changes = d.tick({0: [10.0, 10.0]})
    t_relief = d.now
    # Fast at once: the 20-s window is all fast after 2 ticks, but the change
    # back must wait for the dwell (120 s after the last change, inclusive).
    t_back = None
    for _ in range(30):
        if d.tick({0: [50.0, 50.0]}):
            t_back = d.now
            break
    assert t_back == t_relief + 120_000
    # And the next change (slow again at once) waits another 120 s.
    t_again = None
    for _ in range(30):
        if d.tick({0: [10.0, 10.0]}):
            t_again = d.now
            break
    assert t_again == t_back + 120_000


def test_stale_feed_returns_to_default_logged_and_counted_once(make_line_model,
                                                                make_driver) -> None:
    d = make_driver(make_line_model(min_points=3, window_s=300.0, min_dwell_s=600.0,
                                    stale_after_s=60.0))
    for _ in range(3):
        d.tick({0: [10.0]})
    assert d.rt.program(0) == "peak"
    t_last = d.now                                   # the last point's receipt
    got = []
    for _ in range(100):                             # the feed stops for 1000 s
        for ch in d.tick():
            got.append((d.now, ch))
    # Stale when more than 60 s have passed: the first decision after that is
    # 70 s later. The fall-back ignores the 600-s dwell, and while stale the
    # slow points still in the 300-s window do not switch it to relief again.
    assert got == [(t_last + 70_000, (0, "normal"))]
    assert d.rt.stale_events == 1
    log = d.rt.decision_log()
    assert log[-1]["reason"] == "stale"
    assert (log[-1]["t_ms"], log[-1]["from_program"], log[-1]["to_program"]) == (
        t_last + 70_000, "peak", "normal")
    assert len(log) == 2


def test_stale_in_default_program_is_logged_and_counted_per_outage(make_line_model,
                                                                   make_driver) -> None:
    d = make_driver(make_line_model(min_points=3, stale_after_s=60.0))
    for _ in range(3):
        d.tick({0: [45.0]})
    for _ in range(50):
        assert d.tick() == []                         # already default: no change
    assert d.rt.stale_events == 1
    (row,) = d.rt.decision_log()
    assert (row["reason"], row["from_program"], row["to_program"]) == ("stale", "normal",
                                                                        "normal")
    # Points resume, then stop again: a second outage, counted once more.
    for _ in range(3):
        d.tick({0: [45.0]})
    for _ in range(50):
        d.tick()
    assert d.rt.stale_events == 2
    assert [r["reason"] for r in d.rt.decision_log()] == ["stale", "stale"]


def test_junction_that_never_had_points_is_not_stale(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(n_junctions=2, stale_after_s=60.0))
    for _ in range(200):
        assert d.tick({1: [45.0]}) == []             # only J1 gets points
    assert d.rt.stale_events == 0
    assert d.rt.decision_log() == []
    assert d.rt.program(0) == "normal"


def test_junctions_decide_independently_in_one_call(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(n_junctions=3, min_points=3, window_s=60.0,
                                    min_dwell_s=0.0, stale_after_s=60.0))
    # J0 slow, J1 fast, J2 slow but too few points.
    assert d.tick({0: [10.0] * 3, 1: [50.0] * 3, 2: [10.0] * 2}) == [(0, "peak")]
    # J2 gets its third point; J0 stays, J1 stays.
    assert d.tick({0: [10.0], 1: [50.0], 2: [10.0]}) == [(2, "peak")]
    # One call changes two junctions in opposite directions; J1 is untouched.
    # (J0's window: 4 points at 10 + 20 at 50 = 43.3 km/h; J1's: 4 at 50 + 20
    # at 10 = 16.7 km/h.)
    ch = d.tick({0: [50.0] * 20, 1: [10.0] * 20, 2: [10.0]})
    assert sorted(ch) == [(0, "normal"), (1, "peak")]
    assert [d.rt.program(k) for k in range(3)] == ["normal", "peak", "peak"]
    # Only J2's feed stops: only J2 falls back.
    got = []
    for _ in range(10):
        got += d.tick({0: [45.0], 1: [10.0]})
    assert got == [(2, "normal")]
    assert d.rt.stale_events == 1
    assert [d.rt.program(k) for k in range(3)] == ["normal", "peak", "normal"]


def test_any_slow_stretch_switches_all_must_recover(make_line_model, make_driver) -> None:
    d = make_driver(make_line_model(stretches_per_junction=2, min_points=3, window_s=30.0,
                                    min_dwell_s=0.0))
    assert d.tick({0: [50.0] * 3, 1: [10.0] * 3}) == [(0, "peak")]
    assert d.rt.decision_log()[0]["stretch"] == "s0_1"   # the slow one is named
    for _ in range(5):                                    # one stays slow: no recovery
        assert d.tick({0: [50.0] * 3, 1: [35.0] * 3}) == []
    for _ in range(5):
        if d.tick({0: [50.0] * 3, 1: [45.0] * 3}):
            break
    assert d.rt.program(0) == "normal"
    # A stretch without information neither blocks nor causes recovery.
    for _ in range(3):                                    # s0_0 slow, s0_1 silent
        d.tick({0: [10.0] * 3})
    assert d.rt.program(0) == "peak"
    for _ in range(10):                                   # no information at all:
        assert d.tick() == []                             # no recovery (not yet stale)
    for _ in range(4):
        d.tick({0: [50.0] * 3})                           # s0_1 has no points at all
    assert d.rt.program(0) == "normal"
