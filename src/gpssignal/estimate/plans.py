"""A junction's existing signal plan from a program file, and the programs built from it.

A row of the junction list may name a **program file** (column
``program_file``, a path relative to the list's folder) instead of giving
``green_ns_s``/``green_ew_s``. Two forms are read (docs/estimate.md):

* a plan file::

      cycle_s = 80            # the existing plan's cycle [s]
      [greens]                # green window of each arm's signal group, cycle seconds
      N = [0, 42]             # [start_s, end_s]; start > end wraps over the cycle end
      S = [0, 36]
      E = [48, 74]
      W = [48, 74]

* a gpssignal scenario (e.g. an estimate's own ``scenarios/<id>.toml``,
  edited): the default program of its first junction, whose groups must be
  named by the arms ``N``, ``E``, ``S``, ``W``.

The generated scenario runs the plan as its ``normal`` program. Groups of
the same axis (N and S, E and W) may be green together; groups of different
axes are the conflicts, and the plan's own clearance between them (end of one
green to the start of the other) becomes their intergreen, which must lie in
:data:`gpssignal.estimate.junctions.PLAN_INTERGREEN_S`. The relief program
``peak`` gives the monitored arm's axis the template's ``relief_shift_s`` more:
its greens end that much later and the other axis's start that much later
(never below the minimum green), so every clearance is kept. Both programs
are turned so that cycle second 0 (the switching point) falls in a second
where the same groups are green in both and none is in amber or red-amber.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from gpssignal._files import FileRefusedError, read_regular_bytes
from gpssignal.errors import ScenarioError
from gpssignal.model.scenario import Program

__all__ = ["AXES", "FilePlan", "plan_programs", "read_program_file"]

#: The two axes of the generated junction; groups of one axis never conflict.
AXES = (("N", "S"), ("E", "W"))
#: Largest program file read [bytes]: a plan is a few hundred bytes, a scenario
#: a few tens of kB; anything far larger is not a program file.
MAX_PROGRAM_FILE_BYTES = 2_000_000

FilePlan = tuple[float, dict[str, tuple[float, float]]]


def _shown(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _axis(arm: str) -> int:
    return 0 if arm in AXES[0] else 1


def read_program_file(path: Path) -> FilePlan:
    """Return the cycle [s] and the green window per arm [cycle s] of a program file.

    Raises
    ------
    ScenarioError
        With the reason (the caller names the row, column and value).
    """
    try:
        # A regular file within the limit: /dev/zero or a FIFO is refused unread.
        data = read_regular_bytes(path, MAX_PROGRAM_FILE_BYTES)
        raw = tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise ScenarioError(f"no such file ({path})") from None
    except FileRefusedError as exc:
        raise ScenarioError(f"{exc} ({path}): not a program file") from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"TOML syntax: {exc}") from None
    except RecursionError:
        raise ScenarioError("TOML arrays or tables nested too deep to read (a plan needs "
                            "two levels)") from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise ScenarioError(f"TOML: {str(exc).splitlines()[0][:120]}") from None
    if "junction" in raw:
        return _scenario_plan(raw)
    unknown = sorted(set(raw) - {"cycle_s", "greens"})
    if unknown or "cycle_s" not in raw or not isinstance(raw.get("greens"), dict):
        raise ScenarioError("expected cycle_s = ... and a [greens] table (or a gpssignal "
                            "scenario)" + (f"; unknown key(s) {', '.join(map(_shown, unknown[:5]))}"
                                           if unknown else ""))
    return _checked(raw["cycle_s"], raw["greens"], "greens")


def _scenario_plan(raw: dict[str, Any]) -> FilePlan:
    """Return the default program of a scenario's first junction."""
    js = raw["junction"]
    if not isinstance(js, list) or not js or not isinstance(js[0], dict):
        raise ScenarioError("junction: expected [[junction]] tables")
    j = js[0]
    programs = j.get("program", [])
    if not isinstance(programs, list) or not programs:
        raise ScenarioError("junction[0].program: no program")
    name = j.get("default_program", programs[0].get("name") if isinstance(programs[0], dict)
                 else None)
    pr = next((p for p in programs if isinstance(p, dict) and p.get("name") == name), None)
    if pr is None:
        raise ScenarioError(f"junction[0].default_program = {_shown(name)}: no such program")
    where = f"junction[0].program[{_shown(name)}]"
    if pr.get("offset_s", 0) not in (0, 0.0):
        raise ScenarioError(f"{where}.offset_s = {_shown(pr['offset_s'])}: a single junction's "
                            "plan has no offset (0)")
    return _checked(pr.get("cycle_s"), pr.get("greens"), f"{where}.greens")


def _checked(cycle: Any, greens: Any, where: str) -> FilePlan:
    """Return the plan if its cycle and windows are valid, keyed by arm."""
    if not (isinstance(cycle, int | float) and not isinstance(cycle, bool)
            and 30 <= cycle <= 200):
        raise ScenarioError(f"cycle_s = {_shown(cycle)}: must be between 30 and 200")
    if not isinstance(greens, dict) or not greens:
        raise ScenarioError(f"{where}: no green windows")
    bad = sorted(g for g in greens if g not in ("N", "E", "S", "W"))
    if bad:
        raise ScenarioError(f"{where}.{bad[0] if bad[0].isidentifier() else _shown(bad[0])}: "
                            "groups must be named by the arm they serve (N, E, S, W)")
    windows: dict[str, tuple[float, float]] = {}
    for g, w in greens.items():
        if not (isinstance(w, list) and len(w) == 2 and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in w)):
            raise ScenarioError(f"{where}.{g} = {_shown(w)}: must be [start_s, end_s]")
        try:
            windows[g] = (float(w[0]), float(w[1]))
        except OverflowError:  # an integer of hundreds of digits
            raise ScenarioError(f"{where}.{g} = {_shown(w)}: times must be in [0, cycle_s]") \
                from None
    try:
        pr = Program(name="existing", cycle_s=float(cycle), greens=windows)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return float(cycle), dict(pr.greens)


def _duration(w: tuple[float, float], cycle: float) -> float:
    return (w[1] - w[0]) % cycle


def _clearance(end: float, start: float, cycle: float) -> float:
    """Seconds from one green's end to another's start, round the cycle."""
    return (start - end) % cycle


def plan_programs(plan: FilePlan, present: list[str], monitored: str, shift_s: float,
                  min_green_s: float, amber_s: float, red_amber_s: float,
                  intergreen_range_s: tuple[float, float]
                  ) -> tuple[dict[str, list[float]], dict[str, list[float]],
                             dict[str, dict[str, float]], float]:
    """Return the ``normal`` and ``peak`` greens, the intergreens and the relief shift [s].

    ``present``: the arms with an approach (each needs a window, no other arm
    may have one). See the module docstring for how the relief program and
    the switching point are chosen.

    Raises
    ------
    ScenarioError
        If the plan does not fit the junction (a missing or extra window, a
        green below the minimum, a clearance out of ``intergreen_range_s``,
        conflicting greens, or no usable switching point).
    """
    cycle, greens = plan
    missing = [a for a in present if a not in greens]
    extra = sorted(a for a in greens if a not in present)
    if missing:
        raise ScenarioError(f"greens.{missing[0]}: missing (arm {missing[0]} has an approach)")
    if extra:
        raise ScenarioError(f"greens.{extra[0]}: arm {extra[0]} has no approach in the list")
    for a in present:
        if greens[a] == (0.0, cycle):
            raise ScenarioError(f"greens.{a} = [0, {cycle:g}]: a permanent green conflicts "
                                "with the other axis")
        if _duration(greens[a], cycle) < min_green_s:
            raise ScenarioError(f"greens.{a} = {list(greens[a])}: shorter than the minimum "
                                f"green ({min_green_s:g} s)")
    intergreen: dict[str, dict[str, float]] = {a: {} for a in present}
    lo, hi = intergreen_range_s
    for a in present:
        for b in present:
            if _axis(a) == _axis(b):
                continue
            gap = _clearance(greens[a][1], greens[b][0], cycle)
            # Overlapping windows: b starts inside a's green (the gap runs round
            # almost the whole cycle and exceeds the rest of the cycle).
            if gap + _duration(greens[b], cycle) > cycle - _duration(greens[a], cycle) + 1e-9:
                raise ScenarioError(f"greens.{a} = {list(greens[a])} and greens.{b} = "
                                    f"{list(greens[b])}: conflicting groups green together")
            if not lo <= gap <= hi:
                raise ScenarioError(f"greens.{a}/greens.{b}: {gap:g} s from the end of {a}'s "
                                    f"green to the start of {b}'s; it must be {lo:g}-{hi:g} s "
                                    "(amber included)")
            intergreen[a][b] = gap
    mon_axis = _axis(monitored)
    others = [a for a in present if _axis(a) != mon_axis]
    shift = max(0.0, min(shift_s, *(_duration(greens[a], cycle) - min_green_s
                                    for a in others)))
    peak = {a: ((w[0], (w[1] + shift) % cycle) if _axis(a) == mon_axis
                else ((w[0] + shift) % cycle, w[1])) for a, w in greens.items()}
    t0 = _switch_point(greens, peak, cycle, amber_s, red_amber_s)

    def turned(g: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
        return {a: [_wrap(w[0] - t0, cycle), _wrap(w[1] - t0, cycle)] for a, w in g.items()}

    return turned(greens), turned(peak), intergreen, shift


def _wrap(x: float, cycle: float) -> float:
    """Cycle second of ``x``, with an end at 0 written as the cycle's end."""
    y = round(x % cycle, 6)
    return cycle if y == 0 else y


def _state(w: tuple[float, float], t: float, cycle: float, amber_s: float,
           red_amber_s: float) -> str:
    """Return the state of a group with window ``w`` at cycle second ``t``."""
    def within(x: float, start: float, length: float) -> bool:
        return (x - start) % cycle < length - 1e-9

    if within(t, w[0], _duration(w, cycle)):
        return "green"
    if within(t, w[1], amber_s) or within(t, w[0] - red_amber_s, red_amber_s):
        return "changing"
    return "red"


def _switch_point(a: dict[str, tuple[float, float]], b: dict[str, tuple[float, float]],
                  cycle: float, amber_s: float, red_amber_s: float) -> float:
    """Return a whole second where both programs show the same greens and no change.

    Preferably one where every green group has been green for at least 3 s
    (as in the generated Webster plans, whose cycle second 0 lies 3 s into
    phase A's green), else the first usable second in cycle order.
    """
    usable = []
    for k in range(int(math.floor(cycle))):
        t = float(k)
        sa = {g: _state(w, t, cycle, amber_s, red_amber_s) for g, w in a.items()}
        sb = {g: _state(w, t, cycle, amber_s, red_amber_s) for g, w in b.items()}
        if sa == sb and "changing" not in sa.values() and "green" in sa.values():
            usable.append(t)
            if all((t - a[g][0]) % cycle >= min(3.0, _duration(a[g], cycle) / 2)
                   for g, s in sa.items() if s == "green"):
                return t
    if usable:
        return usable[0]
    raise ScenarioError("no second of the cycle shows the same greens in the plan and its "
                        "relief program (needed to switch between them safely)")
