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
        short_pairs = self.intergreen < self.timing.amber_s - _TOL_S
        if short_pairs.any():
            short = np.argwhere(short_pairs)
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
        # The state each state must change to, and the timing limits with
        # their tolerance, worked out once: observe runs at every change.
        self._expected = dict(_NEXT)
        if self.timing.red_amber_s <= 0:
            self._expected[RED] = GREEN
        self._min_green_tol = self.timing.min_green_s - _TOL_S
        self._amber_s = self.timing.amber_s
        self._red_amber_s = self.timing.red_amber_s

    def _conflict_lists(self) -> list[list[tuple[int, float, float]]]:
        """Per group, its conflicting groups ascending: (group, intergreen, that less tolerance)."""
        n = len(self.groups)
        ig = self.intergreen.tolist()
        return [[(k, ig[k][g], ig[k][g] - _TOL_S) for k in range(n) if not math.isnan(ig[k][g])]
                for g in range(n)]

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
        if new != self._expected[old]:
            self._fail(t, f"group {self.groups[g]} {STATE_NAMES[old]} -> {STATE_NAMES[new]} "
                          "is not a valid sequence")
        # One timing rule per old state (the states exclude each other).
        if old == GREEN:
            dur = t - self.since[g]
            if dur < self._min_green_tol:
                self._fail(t, f"group {self.groups[g]} green lasted {dur:.2f} s < min green "
                              f"{self.timing.min_green_s:g} s")
            # Green is left for amber only, so no conflict check follows.
            self.last_green_end[g] = t
        elif old == AMBER:
            dur = t - self.since[g]
            if abs(dur - self._amber_s) > _TOL_S and math.isfinite(dur):
                self._fail(t, f"group {self.groups[g]} amber lasted {dur:.2f} s, not "
                              f"{self._amber_s:g} s")
        elif old == RED_AMBER:
            dur = t - self.since[g]
            if abs(dur - self._red_amber_s) > _TOL_S and math.isfinite(dur):
                self._fail(t, f"group {self.groups[g]} red-amber lasted {dur:.2f} s, not "
                              f"{self._red_amber_s:g} s")
        if new == GREEN:
            last_green_end = self.last_green_end
            for k, intergreen, limit in self._conflicts[g]:
                other = state[k]
                if other in (GREEN, AMBER):
                    # An intergreen covers the conflicting group's amber
                    # (gpssignal.model.signals.check_intergreen_covers_amber).
                    self._fail(t, f"group {self.groups[g]} green while conflicting "
                                  f"{self.groups[k]} is {STATE_NAMES[other]}")
                gap = t - last_green_end[k]
                if gap < limit:
                    self._fail(t, f"intergreen {self.groups[k]}->{self.groups[g]} {gap:.2f} s < "
                                  f"{intergreen:g} s")
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
        # The events again with each group's global index, for process's loop.
        base = self.group_base
        self._steps = {name: [(tc, g, base + g, s) for tc, g, s in events]
                       for name, events in self._events.items()}
        #: The changes to each program's states at 0, by (program, states before):
        #: a program nearly always comes back from the same states.
        self._zero_steps: dict[tuple[str, tuple[int, ...]], list[tuple[int, int, int]]] = {}

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
        steps = [e for e in self._steps[prog.name] if e[0] > cs + _TOL_S]
        # The body of _set, inlined: this loop runs at every signal change.
        observe, group_state, on_change = self.monitor.observe, self.group_state, self.on_change
        timeout, request, jid, start_clock = env.timeout, self.request, jn.id, self.start_clock_s
        now = env.now
        while True:
            for tc, g, gg, s in steps:
                wait = cycle_start + tc - now
                if wait > 0:
                    yield timeout(wait)
                    now = env.now
                observe(now, g, s)
                group_state[gg] = s
                on_change(now, gg, s)
            wait = cycle_start + prog.cycle_s - now
            if wait > 0:
                yield timeout(wait)
                now = env.now
            for g, gg, s in self._zero_changes(prog.name):
                observe(now, g, s)
                group_state[gg] = s
                on_change(now, gg, s)
            clock = start_clock + now
            wanted = request(jid, clock)
            if wanted != prog.name:
                new = jn.program(wanted)
                hold = (new.offset_s - clock) % new.cycle_s
                if hold > new.cycle_s - _TOL_S:
                    hold = 0.0
                self.switches.append(ProgramSwitch(t_s=now, junction=jid,
                                                   from_program=prog.name, to_program=new.name,
                                                   hold_s=hold))
                if hold > 0:
                    yield timeout(hold)
                    now = env.now
                prog = new
                self.current = prog.name
                self._to_zero(now, prog.name)
            cycle_start = now
            steps = self._steps[prog.name]

    def _zero_changes(self, program: str) -> list[tuple[int, int, int]]:
        """Return the changes to cycle second 0 of ``program``: ``(group, global group, state)``.

        From the current states, in order: leaving green first, then the rest,
        as at any instant.
        """
        n = len(self.junction.groups)
        before = tuple(self.group_state[self.group_base:self.group_base + n].tolist())
        key = (program, before)
        changes = self._zero_steps.get(key)
        if changes is None:
            zero = self._zero[program]
            changed = [g for g in range(n) if before[g] != zero[g]]
            changes = [(g, self.group_base + g, zero[g])
                       for g in sorted(changed, key=lambda k: (zero[k] == GREEN, k))]
            self._zero_steps[key] = changes
        return changes

    def _to_zero(self, t: float, program: str) -> None:
        """Set the states of cycle second 0 of ``program``."""
        for g, _, s in self._zero_changes(program):
            self._set(t, g, s)
