"""Signal programs as data: state timelines, safety rules and their checks.

Signal group states (integer codes shared with the simulator):
``RED = 0``, ``RED_AMBER = 1``, ``GREEN = 2``, ``AMBER = 3``.

A program gives one green window per group; red-amber precedes it and amber
follows it. The rules checked here are the ones the runtime conflict monitor
(:mod:`gpssignal.sim.signals`) enforces while a simulation runs:

* conflicting groups are never green at the same time;
* green of ``j`` starts at least ``intergreen_s[(i, j)]`` after green of a
  conflicting ``i`` ended;
* every intergreen is at least the amber (:func:`check_intergreen_covers_amber`):
  a group never turns green while a conflicting one shows amber;
* a green lasts at least ``min_green_s``;
* between two greens of one group there is room for amber and red-amber.

Program switching is a documented transition procedure: a program change
happens only at the current program's cycle second 0 (the *synchronisation
point*), where every program of a junction has the same set of green groups
and no group is in amber or red-amber. The state at the synchronisation point
may be held for a while (to reach the new program's offset), which only
lengthens greens and reds. Every ordered pair of programs (including a program
with itself) is checked at load time by unrolling the two cycles around the
switch, so no switch at run time can break a rule.

References
----------
Bekendtgørelse om vejafmærkning §238 (Danish amber / red-amber / minimum green).
Vejdirektoratet, Vejregler for signalanlæg: the intergreen (mellemtid) between
two conflicting groups is measured from the end of green of the group losing
right of way, so it includes that group's amber.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpssignal.model.scenario import Junction, Program

__all__ = [
    "AMBER",
    "GREEN",
    "RED",
    "RED_AMBER",
    "STATE_NAMES",
    "check_green_intervals",
    "check_intergreen_covers_amber",
    "green_pieces",
    "greens_at_zero",
    "program_events",
    "state_at",
    "unrolled_greens",
    "validate_junction_programs",
]

RED, RED_AMBER, GREEN, AMBER = 0, 1, 2, 3
STATE_NAMES = ("red", "red-amber", "green", "amber")
_EPS = 1e-9


def green_pieces(program: Program, group: str) -> list[tuple[float, float]]:
    """Green window(s) of ``group`` within one cycle ``[0, cycle_s)``.

    A window that wraps over the cycle end is split in two pieces.
    """
    c = program.cycle_s
    if program.is_permanent(group):
        return [(0.0, c)]
    start, end = program.greens[group]
    start, end = start % c, end % c
    if start < end:
        return [(start, end)]
    pieces = [(start, c)]
    if end > 0:
        pieces.insert(0, (0.0, end))
    return pieces


def _in_window(x: float, start: float, length: float, cycle: float) -> bool:
    return (x - start) % cycle < length - _EPS


def state_at(program: Program, group: str, cycle_second: float, amber_s: float,
             red_amber_s: float) -> int:
    """State code of ``group`` at ``cycle_second`` of ``program``."""
    c = program.cycle_s
    if program.is_permanent(group):
        return GREEN
    start, end = program.greens[group]
    dur = program.green_duration_s(group)
    x = cycle_second % c
    if _in_window(x, start, dur, c):
        return GREEN
    if _in_window(x, end, amber_s, c):
        return AMBER
    if red_amber_s > 0 and _in_window(x, start - red_amber_s, red_amber_s, c):
        return RED_AMBER
    return RED


def greens_at_zero(program: Program) -> frozenset[str]:
    """Return the groups that are green at cycle second 0."""
    return frozenset(
        g for g in program.greens
        if program.is_permanent(g) or _in_window(0.0, program.greens[g][0],
                                                 program.green_duration_s(g), program.cycle_s))


def program_events(program: Program, groups: Iterable[str], amber_s: float,
                   red_amber_s: float) -> list[tuple[float, int, int]]:
    """State changes within one cycle: sorted ``(cycle_second, group_index, state)``.

    Only changes in ``(0, cycle_s)`` are listed; the state at second 0 is given
    by :func:`state_at`. Ties are ordered so that groups leave green before
    others enter it.
    """
    c = program.cycle_s
    events = []
    order = {AMBER: 0, RED: 1, RED_AMBER: 2, GREEN: 3}
    for gi, g in enumerate(groups):
        if program.is_permanent(g):
            continue
        start, end = program.greens[g]
        for t, s in ((start - red_amber_s, RED_AMBER), (start, GREEN), (end, AMBER),
                     (end + amber_s, RED)):
            if s == RED_AMBER and red_amber_s <= 0:
                continue
            tc = t % c
            if tc > _EPS:
                events.append((tc, gi, s))
    events.sort(key=lambda e: (e[0], order[e[2]], e[1]))
    return events


def unrolled_greens(sequence: list[tuple[Program, float]],
                    t0: float) -> dict[str, list[tuple[float, float]]]:
    """Green intervals per group over a sequence of program cycles.

    ``sequence`` lists ``(program, hold_s)`` cycles run one after the other from
    time ``t0``; ``hold_s`` holds the state of cycle second 0 before the cycle
    runs. Touching pieces of one group are merged, as the runtime does.
    """
    out: dict[str, list[tuple[float, float]]] = {}
    t = t0
    for program, hold_s in sequence:
        if hold_s > 0:
            for g in greens_at_zero(program):
                out.setdefault(g, []).append((t, t + hold_s))
            t += hold_s
        for g in program.greens:
            for a, b in green_pieces(program, g):
                out.setdefault(g, []).append((t + a, t + b))
        t += program.cycle_s
    merged: dict[str, list[tuple[float, float]]] = {}
    for g, ivs in out.items():
        ivs.sort()
        m: list[list[float]] = []
        for a, b in ivs:
            if m and a <= m[-1][1] + _EPS:
                m[-1][1] = max(m[-1][1], b)
            else:
                m.append([a, b])
        merged[g] = [(a, b) for a, b in m]
    return merged


def check_green_intervals(greens: Mapping[str, list[tuple[float, float]]],
                          intergreen_s: Mapping[tuple[str, str], float], min_green_s: float,
                          amber_s: float, red_amber_s: float,
                          horizon: tuple[float, float]) -> list[str]:
    """Check green intervals against the safety rules; return the violations.

    Intervals touching the horizon's ends are clipped by it, so their length is
    not checked against the minimum green.
    """
    problems = []
    lo, hi = horizon
    for g, ivs in greens.items():
        for a, b in ivs:
            if a > lo + _EPS and b < hi - _EPS and b - a < min_green_s - _EPS:
                problems.append(f"group {g} green {b - a:g} s at t={a:g} < min green "
                                f"{min_green_s:g} s")
        for (_, b1), (a2, _) in itertools.pairwise(ivs):
            if a2 - b1 < amber_s + red_amber_s - _EPS:
                problems.append(f"group {g} red between greens {a2 - b1:g} s at t={b1:g} "
                                f"< amber + red-amber {amber_s + red_amber_s:g} s")
    for (i, j), ig in intergreen_s.items():
        for aj, bj in greens.get(j, []):
            for ai, bi in greens.get(i, []):
                if ai < bj - _EPS and aj < bi - _EPS:
                    problems.append(f"conflicting groups {i} and {j} both green at t="
                                    f"{max(ai, aj):g}")
                elif bi <= aj + _EPS and aj - bi < ig - _EPS:
                    problems.append(f"intergreen {i}->{j} {aj - bi:g} s at t={aj:g} < "
                                    f"{ig:g} s")
    return problems


def check_intergreen_covers_amber(junction: Junction) -> None:
    """Refuse an intergreen shorter than the amber.

    The intergreen ``intergreen_s[(i, j)]`` is measured from the end of
    green of ``i``, the group losing right of way, so it includes the amber of
    ``i`` (Vejdirektoratet, Vejregler for signalanlæg: the intergreen covers
    the amber and the clearance after it). A shorter one would let ``j`` turn
    green while ``i`` still shows amber.

    Raises
    ------
    ScenarioError
        Naming the junction, both groups and the two times.
    """
    from gpssignal.errors import ScenarioError

    amber = junction.timing.amber_s
    for (i, j), ig in junction.intergreen_s.items():
        if ig < amber - _EPS:
            raise ScenarioError(
                f"junction[{junction.id}].intergreen_s.{i}.{j} = {ig:g}: intergreen "
                f"{i}->{j} {ig:g} s is shorter than amber_s = {amber:g} s; it is measured "
                f"from the end of green of {i} and must cover its amber")


def validate_junction_programs(junction: Junction) -> None:
    """Check every program of ``junction`` and every switch between two of them.

    Raises
    ------
    ScenarioError
        Naming the program and the first rule broken.
    """
    from gpssignal.errors import ScenarioError

    check_intergreen_covers_amber(junction)
    tm = junction.timing
    p = f"junction[{junction.id}]"
    for pr in junction.programs:
        for g in junction.groups:
            if pr.is_permanent(g):
                if any(a == g for a, _ in junction.intergreen_s):
                    raise ScenarioError(
                        f"{p}.program[{pr.name}].greens.{g} = {list(pr.greens[g])}: permanent "
                        "green is only allowed for a group without conflicts")
                continue
            dur = pr.green_duration_s(g)
            if dur < tm.min_green_s - _EPS:
                raise ScenarioError(
                    f"{p}.program[{pr.name}].greens.{g} = {list(pr.greens[g])}: green "
                    f"{dur:g} s is shorter than min green {tm.min_green_s:g} s")
            if dur + tm.amber_s + tm.red_amber_s > pr.cycle_s + _EPS:
                raise ScenarioError(
                    f"{p}.program[{pr.name}].cycle_s = {pr.cycle_s:g}: shorter than green of "
                    f"{g} ({dur:g} s) plus amber and red-amber")
            start, end = pr.greens[g]
            if (_in_window(0.0, end, tm.amber_s, pr.cycle_s)
                    or (tm.red_amber_s > 0
                        and _in_window(0.0, start - tm.red_amber_s, tm.red_amber_s,
                                       pr.cycle_s))):
                raise ScenarioError(
                    f"{p}.program[{pr.name}].greens.{g} = {list(pr.greens[g])}: amber or "
                    "red-amber spans cycle second 0, the synchronisation point where "
                    "programs switch; shift the windows")
        one = unrolled_greens([(pr, 0.0)] * 3, 0.0)
        problems = check_green_intervals(one, junction.intergreen_s, tm.min_green_s,
                                         tm.amber_s, tm.red_amber_s, (0.0, 3 * pr.cycle_s))
        if problems:
            raise ScenarioError(f"{p}.program[{pr.name}] = cycle {pr.cycle_s:g} s: "
                                f"{problems[0]}")
    base = greens_at_zero(junction.programs[0])
    for pr in junction.programs[1:]:
        if greens_at_zero(pr) != base:
            raise ScenarioError(
                f"{p}.program[{pr.name}] greens at cycle second 0 = {sorted(greens_at_zero(pr))}:"
                f" must equal those of program {junction.programs[0].name} "
                f"{sorted(base)} (the synchronisation point)")
    for a in junction.programs:
        for b in junction.programs:
            seq = [(a, 0.0), (a, 0.0), (b, 0.0), (b, 0.0)]
            greens = unrolled_greens(seq, 0.0)
            total = 2 * a.cycle_s + 2 * b.cycle_s
            problems = check_green_intervals(greens, junction.intergreen_s, tm.min_green_s,
                                             tm.amber_s, tm.red_amber_s, (0.0, total))
            if problems:
                raise ScenarioError(f"{p}.program[{a.name}] -> program[{b.name}] switch: "
                                    f"{problems[0]}")
