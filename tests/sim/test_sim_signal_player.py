"""The compiled steps play the signal changes within each cycle as the runtimes would.

With a :class:`~gpssignal.sim.signals.SignalPlayer` the junctions' SimPy
processes wake only at their synchronisation points; the changes in between
are applied by the compiled steps before each step. The runtimes' own
events (``Simulation.play_signals = False``) are the reference: every array
of the result, the probe stream and the switches must be identical, bit for
bit, and the conflict monitors must see every played change.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_results import FIELDS, assert_same

from gpssignal.control.io import read_model
from gpssignal.experiment.run import ControllerSpec, RunSpec, make_controller, run_one
from gpssignal.model.io import read_scenario
from gpssignal.model.signals import GREEN
from gpssignal.sim import engine, signals
from gpssignal.sim.controller import decision_timeout
from gpssignal.sim.engine import Simulation
from gpssignal.sim.signals import SafetyViolation, SignalPlayer, exact_delay

ROOT = Path(__file__).resolve().parents[2]
class _CountingPlayer(SignalPlayer):
    """A player that counts the cycles it was handed, one by one or repeated."""

    cycles = 0
    repeated = 0

    def start_cycle(self, j: int, lo: int, hi: int, cycle_start: float, now: float) -> float:
        type(self).cycles += 1
        return super().start_cycle(j, lo, hi, cycle_start, now)

    def repeat(self, j: int, lo: int, cycle_s: float, until: float, end: float,
               zero: list[tuple[int, int, int]]) -> None:
        type(self).repeated += 1
        super().repeat(j, lo, cycle_s, until, end, zero)


def _run(monkeypatch: pytest.MonkeyPatch, played: bool, spec: RunSpec,
         repeats: bool = True) -> Any:
    monkeypatch.setattr(Simulation, "play_signals", played)
    monkeypatch.setattr(engine, "SignalPlayer", _CountingPlayer)
    _CountingPlayer.cycles = _CountingPlayer.repeated = 0
    out = run_one(spec)
    if not repeats:
        # Nothing handed over: the process wakes at every synchronisation point.
        assert _CountingPlayer.repeated == 0 and _CountingPlayer.cycles >= 20
    elif not played:
        assert _CountingPlayer.cycles == _CountingPlayer.repeated == 0
    elif spec.controller.kind == "gps":
        # The GPS controller may switch at any synchronisation point: each is
        # the process's (20 in tiny's 20 min at 60 s, over a hundred in a 3 h day).
        assert _CountingPlayer.cycles >= 20 and _CountingPlayer.repeated == 0
    else:
        # A clock-driven controller's coming synchronisation points that keep
        # the program are handed over in one go (a few per junction and plan
        # change), not one by one.
        n = len(spec.scenario.junctions)
        assert _CountingPlayer.repeated >= n
        assert _CountingPlayer.cycles <= 5 * n + 2 * len(spec.scenario.schedule) * n
    return out


@pytest.mark.parametrize(("scenario", "controller", "seed", "day_type", "log_capacity"), [
    # one junction; a log of 8 changes fills at once, so it grows many times
    ("tiny.toml", "fixed", 1, None, 8),
    # pedestrians read the groups' states; time-of-day switches with holds
    ("vallensbaek.toml", "tod", 2, None, None),
    # an incident: its gates close exit lanes the played states also set
    ("vallensbaek.toml", "fixed:peak", 3, "incident", None),
    # GPS decisions at the synchronisation points' very times, probes sampled
    ("vallensbaek.toml", "gps", 3, None, None),
    # five junctions with offsets: several junctions change at one time
    ("vallensbaek_corridor.toml", "tod", 1, None, None),
])
def test_played_changes_equal_the_runtimes_own_events(
        monkeypatch: pytest.MonkeyPatch, scenario: str, controller: str, seed: int,
        day_type: str | None, log_capacity: int | None) -> None:
    sc = read_scenario(ROOT / "scenarios" / scenario)
    model = read_model(ROOT / "data" / "vallensbaek_model.json") if controller == "gps" else None
    spec = RunSpec(scenario=sc, controller=ControllerSpec.parse(controller, model=model),
                   seed=seed, day_type=day_type, sample_probes=controller == "gps")
    ref = _run(monkeypatch, False, spec)
    if log_capacity is not None:
        monkeypatch.setattr(SignalPlayer, "LOG_CAPACITY", log_capacity)
    new = _run(monkeypatch, True, spec)
    assert ref.result.n_steps > 2000   # the run was not cut short
    assert len(ref.result.signal_log["t_s"]) > 100
    for f in FIELDS:
        assert_same(getattr(ref.result, f), getattr(new.result, f), f)
    if controller == "gps":
        assert ref.probes is not None and new.probes is not None
        assert_same(ref.probes.columns, new.probes.columns, "probes")
    if controller == "tod":
        assert len(new.result.switches) > 0   # the switches were exercised


def _rotated(sc: Any, group: str) -> Any:
    """``sc`` with every program's greens moved earlier in its cycle (the same timing
    otherwise) so that ``group``'s green starts at cycle second 0."""
    def rotate(p: Any) -> Any:
        by_s = p.greens[group][0]
        greens = {g: ((a - by_s) % p.cycle_s, (b - by_s) % p.cycle_s)
                  for g, (a, b) in p.greens.items()}
        return dataclasses.replace(p, greens=greens)
    return dataclasses.replace(sc, junctions=tuple(
        dataclasses.replace(j, programs=tuple(rotate(p) for p in j.programs))
        for j in sc.junctions))


@pytest.mark.parametrize("controller", ["fixed", "tod"])
def test_changes_at_cycle_second_0_are_played_at_each_synchronisation_point(
        monkeypatch: pytest.MonkeyPatch, controller: str) -> None:
    """tiny with its greens moved 50-51 s earlier, so that group A turns green at cycle
    second 0: every synchronisation point the compiled steps play makes that change
    (the bundled scenarios have none there). A log of 8 changes fills at many of them."""
    sc = _rotated(read_scenario(ROOT / "scenarios" / "tiny.toml"), "A")
    zeros: list[int] = []
    repeat = SignalPlayer.repeat

    def counting(self: SignalPlayer, j: int, lo: int, cycle_s: float, until: float,
                 end: float, zero: list[tuple[int, int, int]]) -> None:
        zeros.append(len(zero))
        repeat(self, j, lo, cycle_s, until, end, zero)

    monkeypatch.setattr(SignalPlayer, "repeat", counting)
    spec = RunSpec(scenario=sc, controller=ControllerSpec.parse(controller), seed=1)
    ref = _run(monkeypatch, False, spec)
    monkeypatch.setattr(SignalPlayer, "LOG_CAPACITY", 8)
    new = _run(monkeypatch, True, spec)
    assert zeros and min(zeros) >= 1   # A's red-amber -> green at every cycle end
    assert len(ref.result.signal_log["t_s"]) > 60
    for f in FIELDS:
        assert_same(getattr(ref.result, f), getattr(new.result, f), f)
    if controller == "tod":
        assert len(new.result.switches) > 0


def test_the_signal_log_is_in_time_then_junction_order() -> None:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek_corridor.toml")
    r = run_one(RunSpec(scenario=sc, controller=ControllerSpec.parse("tod"), seed=1)).result
    t, g = r.signal_log["t_s"], r.signal_log["group"]
    offsets = np.cumsum([0] + [len(j.groups) for j in sc.junctions])
    junction = np.searchsorted(offsets, g, side="right") - 1
    assert (np.diff(t) >= 0).all()
    same_t = np.diff(t) == 0
    assert same_t.sum() > 100 and (np.diff(junction)[same_t] >= 0).all()
    # changes of several junctions at one time occur (offsets 0 and 90 s apart)
    assert (np.diff(junction)[same_t] > 0).any()


def test_changes_a_step_apart_are_left_to_the_runtimes() -> None:
    """At a 1 s step, red-amber (1 s) is not more than a step: the runtimes play the changes."""
    sc = dataclasses.replace(read_scenario(ROOT / "scenarios" / "tiny.toml"), step_s=1.0)
    sim = Simulation(sc, make_controller("fixed", sc), seed=1, record_trajectories=False)
    assert sim.compiled_steps and sim.player is None
    r = sim.run()
    assert len(r.signal_log["t_s"]) > 100 and r.monitor_checks == len(r.signal_log["t_s"]) - \
        sum(len(j.groups) for j in sc.junctions)   # the initial states are not checked


def test_the_conflict_monitor_sees_every_played_change() -> None:
    sc = read_scenario(ROOT / "scenarios" / "tiny.toml")
    sim = Simulation(sc, make_controller("fixed", sc), seed=1, record_trajectories=False)
    assert sim.player is not None
    # A played event that turns a group green out of sequence (from amber or red).
    states = sim.player.tables[5]
    k = int(np.flatnonzero(states != GREEN)[0])
    states[k] = GREEN
    with pytest.raises(SafetyViolation, match="junction J1"):
        sim.run()


_CORRIDOR = read_scenario(ROOT / "scenarios" / "vallensbaek_corridor.toml")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 40), st.integers(0, 19),
                          st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 30.0])),
                min_size=1, max_size=120),
       st.integers(1, 6))
def test_the_compiled_check_refuses_what_the_monitor_refuses(
        changes: list[tuple[int, int, int, float]], batches: int) -> None:
    """Random changes on the corridor's five junctions, checked in a few batches by the
    compiled check (``SignalPlayer.observe_played``) and one by one by fresh Python
    monitors: the same change is refused, with the same message, or none is, and the
    state and counts agree. Most changes go to the state that should follow (so that
    sequences run long: the timing and intergreen rules are reached), one in ten to
    any state; the waits range from shorter than any amber to a cycle's part. Of 300
    such draws (seeded, by hand) 57 % ended at a wrong sequence, 29 % at a timing
    rule (red-amber, amber, minimum green), 5 % at a conflicting green and 9 %
    passed."""
    sim = Simulation(_CORRIDOR, make_controller("fixed", _CORRIDOR), seed=1,
                     record_trajectories=False)
    player = sim.player
    assert player is not None
    rts = sim.junction_rt
    fresh = [signals.ConflictMonitor(rt.junction) for rt in rts]
    log: list[tuple[float, int, int, int, int]] = []
    current = [[0] * len(rt.junction.groups) for rt in rts]   # RED, as fresh monitors
    since = [[-math.inf] * len(rt.junction.groups) for rt in rts]
    for j, g, pick, dt in changes:
        rt = rts[j]
        g %= len(rt.junction.groups)
        tm = rt.junction.timing
        fixed = {1: tm.red_amber_s, 3: tm.amber_s}.get(current[j][g])   # RED_AMBER, AMBER
        # Each group's clock goes on from its last change (the monitors do not
        # ask for the changes in time order): mostly on time out of amber and
        # red-amber, so that the later rules are reached.
        t = max(since[j][g], 0.0) + (fixed if fixed is not None and pick < 14 else dt)
        state = pick % 4 if pick >= 18 else fresh[j]._expected[current[j][g]]
        current[j][g], since[j][g] = state, t
        log.append((t, j, g, rt.group_base + g, state))
    expected: str | None = None
    for t, j, g, _, state in log:
        try:
            fresh[j].observe(t, g, state)
        except SafetyViolation as err:
            expected = str(err)
            break
    got: str | None = None
    ends = sorted({len(log), *(k * len(log) // batches for k in range(1, batches))})
    k0 = 0
    try:
        for k1 in ends:
            for k in range(k0, k1):
                player.log_t[k] = log[k][0]
                player.log_i[0, k] = log[k][3]
                player.log_i[1, k] = log[k][4]
            sim.signals.log_n[0] = k1
            player.observe_played()
            k0 = k1
    except SafetyViolation as err:
        got = str(err)
    assert got == expected
    if expected is None:   # every change checked, counted per junction, the same state
        assert [rt.monitor.checks for rt in rts] == [m.checks for m in fresh]
        for rt, m in zip(rts, fresh, strict=True):
            b, n = rt.group_base, len(m.groups)
            assert player.m_state[b:b + n].tolist() == m.state
            assert player.m_since[b:b + n].tolist() == m.since
            assert player.m_green_end[b:b + n].tolist() == m.last_green_end


def test_played_run_checks_as_many_changes_as_the_runtimes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    results = []
    for played in (False, True):
        monkeypatch.setattr(Simulation, "play_signals", played)   # read when a run is built
        sim = Simulation(sc, make_controller("tod", sc), seed=2, record_trajectories=False)
        assert (sim.player is not None) is played
        results.append(sim.run())
    assert results[0].monitor_checks == results[1].monitor_checks > 5000   # 40 per 90 s cycle


@given(now=st.floats(0, 1e7), ahead=st.floats(0, 1e5), ulps=st.integers(-2, 2))
def test_exact_delay_lands_on_the_time_or_says_it_cannot(now: float, ahead: float,
                                                         ulps: int) -> None:
    at = now + ahead
    for _ in range(abs(ulps)):   # a time a few rounding steps off a sum
        at = max(now, math.nextafter(at, math.copysign(math.inf, ulps)))
    d = exact_delay(now, at)
    assert d is None or (d >= 0 and now + d == at)
    if ulps == 0:
        assert d is not None   # a time the clock reached by a wait is found


def test_no_exact_wait_there_is_found_so() -> None:
    # The sums from 0.2296 s step over 18.98... s (measured): a wait from
    # the cycle's start cannot land on its end, so the runtime wakes at each change.
    assert exact_delay(0.22959747434245337, 18.983376790051413) is None


def test_without_exact_waits_the_runtime_wakes_at_each_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sc = read_scenario(ROOT / "scenarios" / "vallensbaek.toml")
    spec = RunSpec(scenario=sc, controller=ControllerSpec.parse("tod"), seed=2)
    ref = _run(monkeypatch, False, spec)
    monkeypatch.setattr(signals, "exact_delay", lambda now, at: None)
    new = _run(monkeypatch, True, spec, repeats=False)   # no wait lands on a later end
    for f in FIELDS:
        assert_same(getattr(ref.result, f), getattr(new.result, f), f)


def test_a_decision_comes_before_earlier_scheduled_events_at_its_time() -> None:
    env = simpy.Environment()
    order: list[str] = []

    def sync(env: simpy.Environment) -> Any:
        yield env.timeout(10.0)   # scheduled at 0
        order.append("sync")

    def decide(env: simpy.Environment) -> Any:
        yield env.timeout(5.0)
        yield decision_timeout(env, 5.0)   # scheduled at 5, due at 10 too
        order.append("decision")

    env.process(sync(env))
    env.process(decide(env))
    env.run()
    assert order == ["decision", "sync"]


def test_fits_needs_more_than_a_step_between_changes() -> None:
    sc = read_scenario(ROOT / "scenarios" / "tiny.toml")
    sim = Simulation(sc, make_controller("fixed", sc), seed=1, record_trajectories=False)
    rts = sim.junction_rt
    # tiny's programs have changes 1 s apart at the closest (red-amber)
    assert SignalPlayer.fits(rts, 0.5) and not SignalPlayer.fits(rts, 1.0)
    assert signals.no_player()[0][0] == np.inf   # the empty player plays nothing
