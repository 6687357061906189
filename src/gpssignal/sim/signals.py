"""Signal runtime (programs driven by SimPy events) and the conflict monitor.

The runtime plays each junction's current program as a list of state-change
events. It changes program only at the program's cycle second 0, the
synchronisation point (see :mod:`gpssignal.model.signals`), and may hold the
synchronisation state there so that the new program's cycle starts at its own
offset. The conflict monitor is independent of the runtime: it is told every
state change and checks it against the junction's conflict matrix, intergreen
matrix, minimum green, amber and red-amber (a group never turns green while a
conflicting one is green or amber), raising :class:`SafetyViolation` at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from gpssignal.model.scenario import Junction
from gpssignal.model.signals import (
    AMBER,
    GREEN,
    RED,
    RED_AMBER,
    STATE_NAMES,
    program_events,
    state_at,
)

__all__ = ["ConflictMonitor", "JunctionSignals", "ProgramSwitch", "SafetyViolation"]

#: Tolerance on signal times, against rounding in the event clock [s].
_TOL_S = 1e-6
#: The state that follows each state in the normal sequence.
_NEXT = {RED: RED_AMBER, RED_AMBER: GREEN, GREEN: AMBER, AMBER: RED}


class SafetyViolation(RuntimeError):  # noqa: N818 - public name, used by callers and tests
    """A signal state broke a safety rule. The message says which and when."""


class ConflictMonitor:
    """Checks every signal state change of one junction.

    Parameters
    ----------
    junction : Junction
        Supplies the conflict/intergreen matrix and the timing rules.
    """

    def __init__(self, junction: Junction) -> None:
        self.junction_id = junction.id
        self.groups = list(junction.groups)
        n = len(self.groups)
        self.intergreen = np.full((n, n), np.nan)
        for (i, j), v in junction.intergreen_s.items():
            self.intergreen[self.groups.index(i), self.groups.index(j)] = v
        self.timing = junction.timing
        short = np.argwhere(self.intergreen < self.timing.amber_s - _TOL_S)
        if len(short):
            i, j = (self.groups[int(k)] for k in short[0])
            self._fail(0.0, f"intergreen {i}->{j} {self.intergreen[short[0][0], short[0][1]]:g}"
                            f" s < amber {self.timing.amber_s:g} s: {j} could turn green "
                            f"while {i} is amber")
        # Python lists, not arrays: one change reads a few elements, where
        # numpy's per-element access costs more than the check itself.
        self.state: list[int] = [RED] * n
        self.since: list[float] = [-math.inf] * n
        self.last_green_end: list[float] = [-math.inf] * n
        self.checks = 0
        self._conflicts = self._conflict_lists()

    def _conflict_lists(self) -> list[list[tuple[int, float]]]:
        """Per group, the groups it conflicts with and the intergreen from each, ascending."""
        n = len(self.groups)
        return [[(k, float(self.intergreen[k, g])) for k in range(n)
                 if not math.isnan(self.intergreen[k, g])] for g in range(n)]

    def _fail(self, t: float, msg: str) -> None:
        raise SafetyViolation(f"junction {self.junction_id} at t={t:.2f} s: {msg}")

    def start(self, t: float, states: np.ndarray) -> None:
        """Accept the initial states (history before ``t`` is unknown)."""
        n = len(self.groups)
        self.state = [int(x) for x in states]
        self.since = [-math.inf] * n
        self._conflicts = self._conflict_lists()
        green = [a for a in range(n) if self.state[a] == GREEN]
        for a in green:
            for b in green:
                if not math.isnan(self.intergreen[a, b]):
                    self._fail(t, f"initial conflicting greens {self.groups[a]} and "
                                  f"{self.groups[b]}")

    def observe(self, t: float, g: int, new: int) -> None:
        """Check that group index ``g`` may change to state ``new`` at time ``t`` [s]."""
        self.checks += 1
        state = self.state
        old = state[g]
        tm = self.timing
        expected = _NEXT[old]
        if old == RED and tm.red_amber_s <= 0:
            expected = GREEN
        name = self.groups[g]
        if new != expected:
            self._fail(t, f"group {name} {STATE_NAMES[old]} -> {STATE_NAMES[new]} is not a "
                          "valid sequence")
        dur = t - self.since[g]
        if old == GREEN and dur < tm.min_green_s - _TOL_S:
            self._fail(t, f"group {name} green lasted {dur:.2f} s < min green "
                          f"{tm.min_green_s:g} s")
        if old == AMBER and abs(dur - tm.amber_s) > _TOL_S and math.isfinite(dur):
            self._fail(t, f"group {name} amber lasted {dur:.2f} s, not {tm.amber_s:g} s")
        if old == RED_AMBER and abs(dur - tm.red_amber_s) > _TOL_S and math.isfinite(dur):
            self._fail(t, f"group {name} red-amber lasted {dur:.2f} s, not "
                          f"{tm.red_amber_s:g} s")
        if new == GREEN:
            for k, intergreen in self._conflicts[g]:
                if state[k] == GREEN or state[k] == AMBER:
                    # An intergreen covers the conflicting group's amber
                    # (gpssignal.model.signals.check_intergreen_covers_amber).
                    self._fail(t, f"group {name} green while conflicting {self.groups[k]} "
                                  f"is {STATE_NAMES[state[k]]}")
                gap = t - self.last_green_end[k]
                if gap < intergreen - _TOL_S:
                    self._fail(t, f"intergreen {self.groups[k]}->{name} {gap:.2f} s < "
                                  f"{intergreen:g} s")
        if old == GREEN:
            self.last_green_end[g] = t
        state[g] = new
        self.since[g] = t


@dataclass(frozen=True, slots=True)
class ProgramSwitch:
    """A program change: asked at a synchronisation point, effective after the hold."""

    t_s: float
    junction: str
    from_program: str
    to_program: str
    hold_s: float


@dataclass
class JunctionSignals:
    """Runs the programs of one junction inside a SimPy environment.

    Parameters
    ----------
    junction : Junction
    group_base : int
        Global index of the junction's first signal group.
    group_state : ndarray
        Shared array of all groups' states; this runtime writes its slice.
    on_change : callable
        Called ``on_change(t_s, global_group, state)`` after every change.
    request : callable
        ``request(junction_id, clock_s) -> program name``: asked at every
        synchronisation point (the controller).
    start_clock_s : float
        Clock time of simulation time 0 [s after midnight].
    """

    junction: Junction
    group_base: int
    group_state: np.ndarray
    on_change: Callable[[float, int, int], None]
    request: Callable[[str, float], str]
    start_clock_s: float
    monitor: ConflictMonitor = field(init=False)
    switches: list[ProgramSwitch] = field(default_factory=list)
    current: str = ""

    def __post_init__(self) -> None:
        """Build the conflict monitor and each program's events and states at 0."""
        self.monitor = ConflictMonitor(self.junction)
        tm = self.junction.timing
        self._events = {p.name: program_events(p, self.junction.groups, tm.amber_s,
                                               tm.red_amber_s) for p in self.junction.programs}
        self._zero = {p.name: [int(state_at(p, g, 0.0, tm.amber_s, tm.red_amber_s))
                               for g in self.junction.groups]
                      for p in self.junction.programs}

    def _set(self, t: float, g: int, state: int) -> None:
        self.monitor.observe(t, g, state)
        self.group_state[self.group_base + g] = state
        self.on_change(t, self.group_base + g, state)

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Run the signals as a SimPy process: start mid-cycle at time 0, then cycle forever."""
        jn = self.junction
        tm = jn.timing
        prog = jn.program(self.request(jn.id, self.start_clock_s))
        self.current = prog.name
        cs = (self.start_clock_s - prog.offset_s) % prog.cycle_s
        init = np.array([state_at(prog, g, cs, tm.amber_s, tm.red_amber_s)
                         for g in jn.groups])
        self.monitor.start(env.now, init)
        n = len(jn.groups)
        self.group_state[self.group_base:self.group_base + n] = init
        for g in range(n):
            self.on_change(env.now, self.group_base + g, int(init[g]))
        cycle_start = env.now - cs
        events = [e for e in self._events[prog.name] if e[0] > cs + _TOL_S]
        # The body of _set, inlined: this loop runs at every signal change.
        observe, group_state, base, on_change = (self.monitor.observe, self.group_state,
                                                 self.group_base, self.on_change)
        while True:
            for tc, g, s in events:
                wait = cycle_start + tc - env.now
                if wait > 0:
                    yield env.timeout(wait)
                now = env.now
                observe(now, g, s)
                group_state[base + g] = s
                on_change(now, base + g, s)
            wait = cycle_start + prog.cycle_s - env.now
            if wait > 0:
                yield env.timeout(wait)
            self._to_zero(env.now, prog.name)
            clock = self.start_clock_s + env.now
            wanted = self.request(jn.id, clock)
            if wanted != prog.name:
                new = jn.program(wanted)
                hold = (new.offset_s - clock) % new.cycle_s
                if hold > new.cycle_s - _TOL_S:
                    hold = 0.0
                self.switches.append(ProgramSwitch(t_s=env.now, junction=jn.id,
                                                   from_program=prog.name, to_program=new.name,
                                                   hold_s=hold))
                if hold > 0:
                    yield env.timeout(hold)
                prog = new
                self.current = prog.name
                self._to_zero(env.now, prog.name)
            cycle_start = env.now
            events = self._events[prog.name]

    def _to_zero(self, t: float, program: str) -> None:
        """Set the states of cycle second 0 of ``program``."""
        n = len(self.junction.groups)
        zero = self._zero[program]
        state = self.group_state[self.group_base:self.group_base + n].tolist()
        changed = [g for g in range(n) if state[g] != zero[g]]
        # Leaving green first, then the rest, as at any instant.
        for g in sorted(changed, key=lambda k: (zero[k] == GREEN, k)):
            self._set(t, g, zero[g])
