"""Signal runtime (programs driven by SimPy events) and the conflict monitor.

The runtime plays each junction's current program as a list of state-change
events, or hands each cycle's changes to the engine's compiled steps
(:class:`SignalPlayer`) and wakes only at cycle second 0. It changes program
only at the program's cycle second 0, the
synchronisation point (see :mod:`gpssignal.model.signals`), and may hold the
synchronisation state there so that the new program's cycle starts at its own
offset. The conflict monitor is independent of the runtime: it is told every
state change and checks it against the junction's conflict matrix, intergreen
matrix, minimum green, amber and red-amber (a group never turns green while a
conflicting one is green or amber), raising :class:`SafetyViolation` at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from gpssignal._compiled import Resolved
from gpssignal.model.scenario import Junction, Program
from gpssignal.model.signals import (
    AMBER,
    GREEN,
    RED,
    RED_AMBER,
    STATE_NAMES,
    program_events,
    state_at,
)
from gpssignal.sim.kernel import (
    ML_AMBER,
    ML_MIN_GREEN,
    ML_RED_AMBER,
    SL_N,
    SP_CYCLE,
    SP_CYCLE_START,
    SP_LO,
    SP_NEXT,
    SP_NOW,
    SP_PTR,
    SP_STOP,
    SP_UNTIL,
    SP_ZBASE,
    SP_ZN,
    check_changes,
)

if TYPE_CHECKING:
    from gpssignal.sim.records import SignalState

__all__ = ["ConflictMonitor", "JunctionSignals", "ProgramSwitch", "SafetyViolation",
           "SignalPlayer", "exact_delay", "no_player"]

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
        self._checks = 0
        # With a SignalPlayer, the compiled check (sim.kernel.check_changes)
        # keeps this junction's state in the player's arrays too: views of
        # them (state, since, last green end, checks and this junction's
        # index), and which copy is newer.
        self._shared: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int] | None = None
        self._arrays_newer = False
        self._lists_newer = False
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

    @property
    def checks(self) -> int:
        """Changes checked so far (here and by the compiled check)."""
        if self._shared is None:
            return self._checks
        return self._checks + int(self._shared[3][self._shared[4]])

    def share(self, state: np.ndarray, since: np.ndarray, green_end: np.ndarray,
              checks: np.ndarray, j: int) -> None:
        """Keep the state in these arrays too (this junction's groups), for the compiled check.

        :meth:`push` copies this monitor's state into them when it changed
        here; after the compiled check changed them, :meth:`mark_checked`
        makes the next :meth:`observe` read them back first.
        """
        self._shared = (state, since, green_end, checks, j)
        self._lists_newer = True

    def push(self) -> None:
        """Copy the state into the shared arrays if it changed here since."""
        if self._lists_newer and self._shared is not None:
            state, since, green_end, _, _ = self._shared
            state[:] = self.state
            since[:] = self.since
            green_end[:] = self.last_green_end
            self._lists_newer = False

    def mark_checked(self) -> None:
        """Note that the compiled check changed the arrays: read them before the next change."""
        self._arrays_newer = True

    def _pull(self) -> None:
        assert self._shared is not None
        state, since, green_end, _, _ = self._shared
        self.state = state.tolist()
        self.since = since.tolist()
        self.last_green_end = green_end.tolist()
        self._arrays_newer = False

    def start(self, t: float, states: np.ndarray) -> None:
        """Accept the initial states (history before ``t`` is unknown)."""
        self._arrays_newer = False
        self._lists_newer = True
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
        self._checks += 1
        if self._shared is not None:
            if self._arrays_newer:
                self._pull()
            self._lists_newer = True
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

    With a :class:`SignalPlayer` (:meth:`play`), the changes within each cycle
    are played by the engine's compiled steps and the process wakes only at
    the synchronisation points; otherwise it wakes at every change.
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
    #: The controller's answer depends on the clock only (``clock_only``
    #: of :class:`~gpssignal.sim.controller.Controller`): with a player, the
    #: cycle ends that keep the program are played by the compiled steps.
    clock_only: bool = False
    #: The run ends by then [s]: no cycle end after it is handed to the player.
    horizon_s: float = math.inf
    #: The player of the changes within each cycle, if any (:meth:`play`), and
    #: this junction's index in it.
    _player: SignalPlayer | None = field(default=None, init=False, repr=False)
    _index: int = field(default=-1, init=False, repr=False)

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

    def play(self, player: SignalPlayer, index: int) -> None:
        """Let ``player`` play this junction's changes within each cycle (junction ``index``)."""
        self._player, self._index = player, index

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Run the signals as a SimPy process: start mid-cycle at time 0, then cycle forever."""
        if self._player is not None:
            return (yield from self._process_played(env))
        prog, cs = self._start(env)
        cycle_start = env.now - cs
        steps = [e for e in self._steps[prog.name] if e[0] > cs + _TOL_S]
        # The body of _set, inlined: this loop runs at every signal change.
        observe, group_state, on_change = self.monitor.observe, self.group_state, self.on_change
        timeout = env.timeout
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
            prog = yield from self._synchronise(env, prog)
            now = cycle_start = env.now
            steps = self._steps[prog.name]

    def _process_played(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """:meth:`process` with the changes within each cycle played by the compiled steps.

        The same changes at the same times (:meth:`SignalPlayer.start_cycle`
        works them out as :meth:`process` reaches them); this process wakes
        at each cycle's end, the synchronisation point, at the very time
        :meth:`process` would, and there does what :meth:`process` does.
        """
        player, j = self._player, self._index
        assert player is not None
        prog, cs = self._start(env)
        cycle_start = env.now - cs
        # The cycle's changes from this one on (the first cycle starts mid-way).
        first = sum(1 for e in self._steps[prog.name] if e[0] <= cs + _TOL_S)
        now = env.now
        while True:
            lo, hi = player.events[j][prog.name]
            last = player.start_cycle(j, lo + first, hi, cycle_start, now)
            wait = cycle_start + prog.cycle_s - last
            end = last + wait if wait > 0 else last
            if first == 0 and self.clock_only:
                end = self._repeat(env, player, j, prog, lo, hi, end)
            delay = exact_delay(now, end)
            if delay is not None:
                yield env.timeout(delay)
            else:   # wake at each change as process does; the player plays them all the same
                yield from self._walk(env, prog, cycle_start, first)
            player.check_played(j, env.now)
            prog = yield from self._synchronise(env, prog)
            now = cycle_start = env.now
            first = 0

    def _repeat(self, env: simpy.Environment, player: SignalPlayer, j: int, prog: Program,
                lo: int, hi: int, end: float) -> float:
        """Hand the player the synchronisation points that keep ``prog``; return the next other.

        With a controller whose answer depends on the clock only, the
        program asked for at each coming cycle end is known now. The cycle
        started at the clock's time (from the states of cycle second 0)
        ends at ``end``; each cycle end after it comes from the same states,
        so the changes there are the same (:meth:`_zero_changes`). The
        player plays those where ``prog`` is asked for again; the process
        wakes at the first where another program is asked for, or at the
        first at or after the run's horizon, and goes on from there as
        before. Returns ``end`` itself when the clock cannot reach that
        point in one wait (:func:`exact_delay`): then nothing is handed over.
        """
        if not math.isfinite(self.horizon_s):
            return end
        n = len(self.junction.groups)
        states = self.group_state[self.group_base:self.group_base + n].tolist()
        for p in range(lo, hi):   # the states at the cycle's end
            _, g, _, s = self._steps[prog.name][p - lo]
            states[g] = s
        ends = [end]
        jid, clock0, name = self.junction.id, self.start_clock_s, prog.name
        while ends[-1] < self.horizon_s and self.request(jid, clock0 + ends[-1]) == name:
            ends.append(player.cycle_end(lo, hi, ends[-1], prog.cycle_s))
        until = ends[-1]
        if len(ends) == 1 or exact_delay(env.now, until) is None:
            return end
        player.repeat(j, lo, prog.cycle_s, until, end,
                      self._zero_changes(name, tuple(states)))
        return until

    def _start(self, env: simpy.Environment) -> tuple[Program, float]:
        """Set the states at time 0 of the program asked for; return it and its cycle second."""
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
        return prog, cs

    def _synchronise(self, env: simpy.Environment, prog: Program
                     ) -> Generator[Any, Any, Program]:
        """At cycle second 0 of ``prog``: its states there, then the program asked for.

        Switches to another program after the hold that starts its cycle at
        its offset. Returns the program of the next cycle, which starts at the
        clock's time on return.
        """
        jn = self.junction
        now = env.now
        for g, _, s in self._zero_changes(prog.name):
            self._set(now, g, s)
        clock = self.start_clock_s + now
        wanted = self.request(jn.id, clock)
        if wanted == prog.name:
            return prog
        new = jn.program(wanted)
        hold = (new.offset_s - clock) % new.cycle_s
        if hold > new.cycle_s - _TOL_S:
            hold = 0.0
        self.switches.append(ProgramSwitch(t_s=now, junction=jn.id, from_program=prog.name,
                                           to_program=new.name, hold_s=hold))
        if hold > 0:
            yield env.timeout(hold)
        self.current = new.name
        self._to_zero(env.now, new.name)
        return new

    def _walk(self, env: simpy.Environment, prog: Program, cycle_start: float, first: int
              ) -> Generator[Any, Any, None]:
        """Wait from change to change of ``prog``'s cycle from ``cycle_start``, then to its end.

        The waits of :meth:`process` from its ``first`` change on, so the
        clock reaches the cycle's end at the very time :meth:`process` does.
        """
        now = env.now
        for tc, _, _, _ in self._steps[prog.name][first:]:
            wait = cycle_start + tc - now
            if wait > 0:
                yield env.timeout(wait)
                now = env.now
        wait = cycle_start + prog.cycle_s - now
        if wait > 0:
            yield env.timeout(wait)

    def _zero_changes(self, program: str, before: tuple[int, ...] | None = None
                      ) -> list[tuple[int, int, int]]:
        """Return the changes to cycle second 0 of ``program``: ``(group, global group, state)``.

        From the states ``before`` (default: the current states), in order:
        leaving green first, then the rest, as at any instant.
        """
        n = len(self.junction.groups)
        if before is None:
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


def no_player() -> tuple[Any, ...]:
    """Return the signal player argument that plays nothing (:attr:`SignalPlayer.tables`)."""
    i0 = np.zeros(0, dtype=np.int64)
    return (np.full(1, np.inf), np.zeros((5, 0)), np.zeros((5, 0), dtype=np.int64), np.zeros(0),
            i0, i0, np.zeros(1, dtype=np.int64), i0, np.zeros(0), np.zeros((3, 0), dtype=np.int64),
            np.zeros(2, dtype=np.int64), i0, i0)


def exact_delay(now: float, at: float) -> float | None:
    """Return a wait that brings the event clock from ``now`` to exactly ``at`` [s], or None.

    The clock adds a wait to the time it is scheduled at, which rounds: the
    plain difference can land a rounding step off ``at``, and some times
    no wait reaches at all (the sums step over them).
    """
    d = at - now
    for _ in range(4):
        if now + d < at:
            d = math.nextafter(d, math.inf)
        elif now + d > at:
            d = math.nextafter(d, -math.inf)
        else:
            return d
    return None


class SignalPlayer:
    """The signal changes within each cycle, played by the engine's compiled steps.

    Each junction's runtime (:meth:`JunctionSignals.play`) hands the player
    its cycle at every synchronisation point (:meth:`start_cycle`); the
    compiled steps apply the changes due by each step before it
    (:func:`~gpssignal.sim.kernel.play_signal_changes`), set the groups' and
    their lanes' states, and log each change with its sequence number in
    :class:`~gpssignal.sim.records.SignalState`'s order. The engine hands
    the logged changes to the conflict monitors after each call
    (:meth:`observe_played`).

    Parameters
    ----------
    runtimes : list of JunctionSignals
    signals : SignalState
        The groups' and lanes' states and the log the changes go to.
    """

    #: First size of the compiled steps' log of changes (it doubles when full).
    LOG_CAPACITY = 4096

    def __init__(self, runtimes: list[JunctionSignals], signals: SignalState) -> None:
        tc: list[float] = []
        group: list[int] = []
        state: list[int] = []
        #: Per junction, per program: the slice of its events in the tables.
        self.events: list[dict[str, tuple[int, int]]] = []
        for rt in runtimes:
            slices = {}
            for name, steps in rt._steps.items():
                lo = len(tc)
                for t, _, gg, st in steps:
                    tc.append(t)
                    group.append(gg)
                    state.append(st)
                slices[name] = (lo, len(tc))
            self.events.append(slices)
        self._tc = tc
        self.runtimes = runtimes
        self.signals = signals
        n = len(runtimes)
        self.next_min = np.full(1, np.inf)
        self.f = np.full((5, n), np.inf)
        self.f[SP_UNTIL] = -np.inf
        self.i = np.zeros((5, n), dtype=np.int64)
        # Each junction's changes at a synchronisation point the compiled steps
        # play (repeat) go in its own groups' slots.
        self.z_group = np.zeros(len(signals.group_state), dtype=np.int64)
        self.z_state = np.zeros(len(signals.group_state), dtype=np.int64)
        for j, rt in enumerate(runtimes):
            self.i[SP_ZBASE, j] = rt.group_base
        self._tables = (np.array(tc, dtype=float), np.array(group, dtype=np.int64),
                        np.array(state, dtype=np.int64), signals.group_lane_ptr,
                        signals.group_lanes)
        self.log_t = np.empty(self.LOG_CAPACITY)
        self.log_i = np.empty((3, self.LOG_CAPACITY), dtype=np.int64)
        self._observed = 0
        signals.played = self
        # Group -> (monitor, its index in the junction), for observe_played.
        self._group_monitor: list[tuple[ConflictMonitor, int]] = [
            (runtimes[0].monitor, -1)] * len(signals.group_state) if runtimes else []
        for rt in runtimes:
            for g in range(len(rt.junction.groups)):
                self._group_monitor[rt.group_base + g] = (rt.monitor, g)
        self._monitor_tables(runtimes, len(signals.group_state))
        self._check = Resolved(check_changes)

    def _monitor_tables(self, runtimes: list[JunctionSignals], n_groups: int) -> None:
        """Make the conflict monitors' rules and state arrays, for :func:`check_changes`."""
        self.m_state = np.zeros(n_groups, dtype=np.int64)
        self.m_since = np.full(n_groups, -np.inf)
        self.m_green_end = np.full(n_groups, -np.inf)
        self.m_junction = np.zeros(n_groups, dtype=np.int64)
        self.m_checks = np.zeros(len(runtimes), dtype=np.int64)
        self.j_next = np.zeros((len(runtimes), 4), dtype=np.int64)
        self.j_limits = np.zeros((len(runtimes), 3))
        ptr = [0]
        other: list[int] = []
        limit: list[float] = []
        for j, rt in enumerate(runtimes):
            m, base = rt.monitor, rt.group_base
            n = len(m.groups)
            self.m_junction[base:base + n] = j
            for old, new in m._expected.items():
                self.j_next[j, old] = new
            self.j_limits[j, ML_MIN_GREEN] = m._min_green_tol
            self.j_limits[j, ML_AMBER] = m._amber_s
            self.j_limits[j, ML_RED_AMBER] = m._red_amber_s
            for g in range(n):
                for k, _, lim in m._conflicts[g]:
                    other.append(base + k)
                    limit.append(lim)
                ptr.append(len(other))
            s = slice(base, base + n)
            m.share(self.m_state[s], self.m_since[s], self.m_green_end[s], self.m_checks, j)
        self.c_ptr = np.array(ptr, dtype=np.int64)
        self.c_other = np.array(other, dtype=np.int64)
        self.c_limit = np.array(limit, dtype=float)

    @staticmethod
    def fits(runtimes: list[JunctionSignals], dt: float) -> bool:
        """Whether the compiled steps play these junctions' changes as their processes would.

        A change due at the very time of a vehicle step comes before the
        step when its event was scheduled before the step's, a step
        earlier. The compiled steps assume so; it holds when a junction's
        changes and cycle ends are more than a step apart in every program.
        """
        for rt in runtimes:
            for p in rt.junction.programs:
                times = [0.0, *sorted({e[0] for e in rt._events[p.name]}), p.cycle_s]
                if any(b - a <= dt + _TOL_S for a, b in itertools.pairwise(times)):
                    return False
        return True

    @property
    def tables(self) -> tuple[Any, ...]:
        """The argument of :func:`~gpssignal.sim.kernel.play_signal_changes`."""
        return (self.next_min, self.f, self.i, *self._tables, self.log_t, self.log_i,
                self.signals.log_n, self.z_group, self.z_state)

    def start_cycle(self, j: int, lo: int, hi: int, cycle_start: float, now: float) -> float:
        """Give junction ``j`` its events ``lo``..``hi`` of the cycle from ``cycle_start``.

        Returns the time of the last change (``now`` if none), reached as
        :meth:`JunctionSignals.process` reaches it: each wait added to the
        time of the change before.
        """
        tc = self._tc
        t = now
        first = math.inf
        for p in range(lo, hi):
            wait = cycle_start + tc[p] - t
            if wait > 0:
                t = t + wait
            if p == lo:
                first = t
        f, i = self.f, self.i
        f[SP_CYCLE_START, j] = cycle_start
        f[SP_NOW, j] = now
        f[SP_NEXT, j] = first
        f[SP_UNTIL, j] = -math.inf   # the process takes the cycle's end (see repeat)
        i[SP_PTR, j] = lo
        i[SP_STOP, j] = hi
        if first < self.next_min[0]:
            self.next_min[0] = first
        return t

    def cycle_end(self, lo: int, hi: int, cycle_start: float, cycle_s: float) -> float:
        """Return the end of a whole cycle of events ``lo``..``hi`` from ``cycle_start``.

        Reached as :meth:`JunctionSignals.process` reaches it, and as the
        compiled steps do: each wait added to the time of the change before.
        """
        tc = self._tc
        t = cycle_start
        for p in range(lo, hi):
            wait = cycle_start + tc[p] - t
            if wait > 0:
                t = t + wait
        wait = cycle_start + cycle_s - t
        return t + wait if wait > 0 else t

    def repeat(self, j: int, lo: int, cycle_s: float, until: float, end: float,
               zero: list[tuple[int, int, int]]) -> None:
        """Let junction ``j``'s compiled steps play its synchronisation points before ``until``.

        The cycle given by :meth:`start_cycle` ends at ``end``; there, and at
        the end of each following cycle before ``until``, the compiled steps
        make the changes ``zero`` (``(group, global group, state)``: to the
        states of cycle second 0) and start the next cycle of the events
        from ``lo``, as the junction's process would with its program
        unchanged. The process wakes at ``until``, a cycle's end.
        """
        f, i = self.f, self.i
        f[SP_CYCLE, j] = cycle_s
        f[SP_UNTIL, j] = until
        i[SP_LO, j] = lo
        base = int(i[SP_ZBASE, j])
        for k, (_, gg, st) in enumerate(zero):
            self.z_group[base + k] = gg
            self.z_state[base + k] = st
        i[SP_ZN, j] = len(zero)
        if i[SP_PTR, j] >= i[SP_STOP, j]:   # a cycle without changes: its end comes next
            f[SP_NEXT, j] = end
            if end < self.next_min[0]:
                self.next_min[0] = end

    def check_played(self, j: int, now: float) -> None:
        """Fail unless junction ``j``'s changes of the cycle ending ``now`` were all played."""
        if self.i[SP_PTR, j] != self.i[SP_STOP, j]:
            raise RuntimeError(f"junction {self.runtimes[j].junction.id}: the compiled steps "
                               f"did not play every change before the cycle end at {now} s")

    def grow_log(self) -> None:
        """Double the compiled steps' log of changes (it is full)."""
        n = int(self.signals.log_n[SL_N])
        t = np.empty(2 * self.log_t.shape[0])
        i = np.empty((3, 2 * self.log_t.shape[0]), dtype=np.int64)
        t[:n] = self.log_t[:n]
        i[:, :n] = self.log_i[:, :n]
        self.log_t, self.log_i = t, i
        self._check.forget()

    def observe_played(self) -> None:
        """Check the changes played since the last call, in order, against the conflict monitors.

        In compiled code (:func:`~gpssignal.sim.kernel.check_changes`), on
        the monitors' state in arrays: each monitor's state goes there first
        if it changed in Python, and is read back before its next change in
        Python. A change that breaks a rule is handed to its monitor, which
        raises :class:`SafetyViolation` saying why.
        """
        n = int(self.signals.log_n[SL_N])
        k0 = self._observed
        if n == k0:
            return
        for rt in self.runtimes:
            rt.monitor.push()
        bad = int(self._check(self.log_t, self.log_i, k0, n, self.m_state, self.m_since,
                              self.m_green_end, self.m_junction, self.j_next, self.j_limits,
                              self.c_ptr, self.c_other, self.c_limit, self.m_checks))
        for j in np.unique(self.m_junction[self.log_i[0, k0:bad]]).tolist():
            self.runtimes[j].monitor.mark_checked()
        self._observed = bad
        if bad < n:
            g = int(self.log_i[0, bad])
            monitor, local = self._group_monitor[g]
            monitor.observe(float(self.log_t[bad]), local, int(self.log_i[1, bad]))
            raise RuntimeError(f"junction {monitor.junction_id}: the compiled conflict check "
                               f"refused the change of group {monitor.groups[local]} at "
                               f"t={self.log_t[bad]:.2f} s, the monitor did not")

    def played(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return the changes the compiled steps played: time, group, state, sequence number."""
        n = int(self.signals.log_n[SL_N])
        return self.log_t[:n], self.log_i[0, :n], self.log_i[1, :n], self.log_i[2, :n]
