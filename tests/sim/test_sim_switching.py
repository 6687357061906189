"""Program switching under random requests never breaks a signal safety rule.

Property (docs/architecture.md#conventions: property tests, safety): whatever program a controller
asks for at each synchronisation point, the run completes without the conflict
monitor raising :class:`SafetyViolation`, the switches are exactly the requests
that differ from the running program, no vehicle crosses at red, and the
signal log, checked again independently with the model's rule checker
(:func:`gpssignal.model.signals.check_green_intervals`), breaks no rule.

The monitor itself is also fed sequences that break each rule, so that "it
never raised" above means something.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import Junction, Scenario
from gpssignal.model.signals import AMBER, GREEN, RED, RED_AMBER, check_green_intervals
from gpssignal.sim.engine import Simulation
from gpssignal.sim.signals import ConflictMonitor, SafetyViolation

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


@functools.cache
def short_scenario(name: str) -> Scenario:
    """The scenario cut to its first demand interval, without drain time.

    tiny: 600 s (one 600 s interval at tiny's 15-min rates); vallensbaek: the
    first 900 s interval of its 12. The peak hour would fall outside the
    shortened period, so it is dropped.
    """
    sc = read_scenario(SCENARIOS / f"{name}.toml")
    duration = {"tiny": 600.0, "vallensbaek": 900.0}[name]
    flows = tuple(dataclasses.replace(f, flow_vph=(f.flow_vph[0],)) for f in sc.demand.flows)
    demand = dataclasses.replace(sc.demand, interval_s=duration, flows=flows)
    junctions = tuple(dataclasses.replace(j, crossings=tuple(
        dataclasses.replace(c, flow_pph=(c.flow_pph[0],)) for c in j.crossings))
        for j in sc.junctions)
    return dataclasses.replace(sc, duration_s=duration, drain_s=0.0, demand=demand,
                               peak_clock_s=None, junctions=junctions)


def with_variation(sc: Scenario, start_shift_s: int, offsets: list[int]) -> Scenario:
    """``sc`` started ``start_shift_s`` later (so mid-cycle) and with program
    offsets ``offsets[k] % cycle`` (so switches need a hold to reach the new
    program's offset)."""
    j = sc.junctions[0]
    programs = tuple(dataclasses.replace(p, offset_s=float(o % int(p.cycle_s)))
                     for p, o in zip(j.programs, offsets, strict=False))
    programs += j.programs[len(programs):]
    jn = dataclasses.replace(j, programs=programs)
    return dataclasses.replace(sc, start_clock_s=sc.start_clock_s + start_shift_s,
                               junctions=(jn, *sc.junctions[1:]))


class ScriptedController:
    """Asks, at its n-th call, for ``script[n % len(script)]``; logs every call."""

    name = "scripted"

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.calls: list[tuple[str, float, str]] = []

    def attach(self, sim: Simulation) -> None:
        """Nothing to watch."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        wanted = self.script[len(self.calls) % len(self.script)]
        self.calls.append((junction_id, clock_s, wanted))
        return wanted


def green_intervals(result, junction: Junction, group_base: int,
                    end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Green intervals per group of ``junction`` rebuilt from the signal log."""
    log = result.signal_log
    out: dict[str, list[tuple[float, float]]] = {g: [] for g in junction.groups}
    since: dict[int, float] = {}
    for t, g, s in zip(log["t_s"], log["group"], log["state"], strict=True):
        k = int(g) - group_base
        if not 0 <= k < len(junction.groups):
            continue
        if s == GREEN:
            since.setdefault(k, float(t))
        elif k in since:
            out[junction.groups[k]].append((since.pop(k), float(t)))
    for k, t0 in since.items():
        out[junction.groups[k]].append((t0, end_s))
    return out


def check_run(name: str, script: list[str], seed: int, start_shift_s: int,
              offsets: list[int]) -> None:
    sc = with_variation(short_scenario(name), start_shift_s, offsets)
    ctrl = ScriptedController(script)
    sim = Simulation(sc, ctrl, seed, record_trajectories=False)
    decel = [0.0]

    def hardest(view) -> None:
        if len(view.accel_mps2):
            decel[0] = min(decel[0], float(view.accel_mps2.min()))

    sim.add_step_hook(hardest)
    result = sim.run()  # no SafetyViolation

    assert result.monitor_checks > 0
    # Vehicles, too, stay physical under random switching: nobody brakes beyond
    # the emergency deceleration (rounding of the step's mean: 1e-9), and nobody
    # had to be held back behind a leader. A vehicle that could not stop at red
    # crosses it and is counted (result.red_crossings), never forced to stop.
    assert decel[0] >= -sc.driver.max_decel_mps2 - 1e-9
    assert result.held_back == 0

    # Expected switches: each request after the first (the initial program)
    # that differs from the program then running.
    j = sc.junctions[0]
    assert len(ctrl.calls) >= 2, "the run must reach a synchronisation point"
    running = ctrl.calls[0][2]
    expected = []
    for jid, clock, wanted in ctrl.calls[1:]:
        if wanted != running:
            new = j.program(wanted)
            hold = (new.offset_s - clock) % new.cycle_s
            expected.append((jid, clock - sc.start_clock_s, running, wanted, hold))
            running = wanted
    got = [(s.junction, s.t_s, s.from_program, s.to_program, s.hold_s)
           for s in result.switches]
    assert len(got) == len(expected)
    for (gj, gt, gf, gto, gh), (ej, et, ef, eto, eh) in zip(got, expected, strict=True):
        assert (gj, gf, gto) == (ej, ef, eto)
        assert gt == pytest.approx(et, abs=1e-6)
        # A hold within rounding of a full cycle is no hold (signals.py).
        cycle = j.program(eto).cycle_s
        assert min(abs(gh - eh), abs(gh - eh + cycle), abs(gh - eh - cycle)) < 1e-6
        assert 0 <= gh < cycle

    # Independent check of the signal log with the model's rule checker.
    base = int(result.network.group_offset[0])
    greens = green_intervals(result, j, base, result.end_s)
    tm = j.timing
    problems = check_green_intervals(greens, j.intergreen_s, tm.min_green_s, tm.amber_s,
                                     tm.red_amber_s, (0.0, result.end_s))
    assert problems == []


def program_names(name: str) -> list[str]:
    return [p.name for p in short_scenario(name).junctions[0].programs]


def scripts(name: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(program_names(name)), min_size=1, max_size=12)


SETTINGS = settings(max_examples=20, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(script=scripts("tiny"), seed=st.integers(0, 2**32 - 1),
       start_shift_s=st.integers(0, 59), offsets=st.lists(st.integers(0, 59), min_size=2,
                                                          max_size=2))
@example(script=["normal", "peak"], seed=1, start_shift_s=0, offsets=[0, 0])
@example(script=["peak", "normal"], seed=2, start_shift_s=17, offsets=[0, 23])
def test_random_switching_is_safe_tiny(script, seed, start_shift_s, offsets):
    check_run("tiny", script, seed, start_shift_s, offsets)


@SETTINGS
@given(script=scripts("vallensbaek"), seed=st.integers(0, 2**32 - 1),
       start_shift_s=st.integers(0, 89), offsets=st.lists(st.integers(0, 89), min_size=2,
                                                          max_size=2))
@example(script=["normal", "peak"], seed=1, start_shift_s=0, offsets=[0, 0])
@example(script=["peak", "normal"], seed=2, start_shift_s=44, offsets=[10, 70])
def test_random_switching_is_safe_vallensbaek(script, seed, start_shift_s, offsets):
    check_run("vallensbaek", script, seed, start_shift_s, offsets)


def test_short_scenarios_are_what_the_property_assumes():
    for name, duration in (("tiny", 600.0), ("vallensbaek", 900.0)):
        sc = short_scenario(name)
        assert sc.duration_s == duration and sc.drain_s == 0
        assert sc.demand.interval_s == duration
        assert all(len(f.flow_vph) == 1 for f in sc.demand.flows)
        assert len(program_names(name)) >= 2


# ---------------------------------------------------------------------------
# The monitor catches each kind of violation (negative tests).
# tiny's J1: groups A, B; intergreen A->B 5 s, B->A 6 s; amber 4 s,
# red-amber 2 s, min green 6 s.
# ---------------------------------------------------------------------------

A, B = 0, 1


@pytest.fixture
def monitor() -> ConflictMonitor:
    m = ConflictMonitor(short_scenario("tiny").junctions[0])
    assert m.groups == ["A", "B"]
    return m


def _hand_over(m: ConflictMonitor, b_green_at: float) -> None:
    """A green until 10 s, then B green at ``b_green_at``."""
    m.start(0.0, np.array([GREEN, RED]))
    m.observe(10.0, A, AMBER)
    m.observe(14.0, A, RED)
    m.observe(b_green_at - 2.0, B, RED_AMBER)
    m.observe(b_green_at, B, GREEN)


def test_monitor_accepts_a_valid_hand_over(monitor):
    _hand_over(monitor, b_green_at=15.0)  # intergreen A->B = 5 s exactly
    assert monitor.checks == 4


def test_monitor_rejects_short_intergreen(monitor):
    with pytest.raises(SafetyViolation, match=r"junction J1 .*intergreen A->B 4\.00 s < 5 s"):
        _hand_over(monitor, b_green_at=14.0)


def test_monitor_rejects_short_green(monitor):
    monitor.start(0.0, np.array([RED, RED]))
    monitor.observe(0.0, A, RED_AMBER)
    monitor.observe(2.0, A, GREEN)
    with pytest.raises(SafetyViolation,
                       match=r"junction J1 .*group A green lasted 3\.00 s < min green 6 s"):
        monitor.observe(5.0, A, AMBER)


def test_monitor_rejects_conflicting_greens(monitor):
    monitor.start(0.0, np.array([GREEN, RED]))
    monitor.observe(20.0, B, RED_AMBER)
    with pytest.raises(SafetyViolation,
                       match=r"junction J1 .*group B green while conflicting A is green"):
        monitor.observe(22.0, B, GREEN)


def test_monitor_rejects_initial_conflicting_greens(monitor):
    with pytest.raises(SafetyViolation, match=r"initial conflicting greens A and B"):
        monitor.start(0.0, np.array([GREEN, GREEN]))


def test_monitor_rejects_skipped_amber(monitor):
    monitor.start(0.0, np.array([GREEN, RED]))
    with pytest.raises(SafetyViolation, match=r"group A green -> red is not a valid sequence"):
        monitor.observe(10.0, A, RED)


def test_monitor_rejects_short_amber(monitor):
    monitor.start(0.0, np.array([GREEN, RED]))
    monitor.observe(10.0, A, AMBER)
    with pytest.raises(SafetyViolation, match=r"group A amber lasted 3\.00 s, not 4 s"):
        monitor.observe(13.0, A, RED)


def test_green_intervals_helper_sees_a_conflict():
    """The independent log check in the property is not vacuous."""
    j = short_scenario("tiny").junctions[0]
    tm = j.timing
    greens = {"A": [(0.0, 30.0)], "B": [(20.0, 40.0)]}
    problems = check_green_intervals(greens, j.intergreen_s, tm.min_green_s, tm.amber_s,
                                     tm.red_amber_s, (0.0, 60.0))
    assert any("both green" in p for p in problems)
