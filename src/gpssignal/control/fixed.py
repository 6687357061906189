"""Clock-driven controllers: fixed time (one program) and time of day (a schedule)."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from gpssignal.errors import ScenarioError
from gpssignal.model.scenario import Scenario

if TYPE_CHECKING:
    from gpssignal.sim.engine import Simulation

__all__ = ["FixedTimeController", "TimeOfDayController"]

#: A schedule entry at exactly the clock time asked for applies (float times
#: of a synchronisation point may fall a hair before the entry's second).
_CLOCK_EPS_S = 1e-9


class FixedTimeController:
    """Every junction runs one program all day.

    Parameters
    ----------
    scenario : Scenario
    program : str or None
        Program name every junction runs; ``None`` means each junction's
        ``default_program``.
    """

    name = "fixed"
    #: Its answer depends on the clock only (here not even on that).
    clock_only = True

    def __init__(self, scenario: Scenario, program: str | None = None) -> None:
        self._program = {}
        for j in scenario.junctions:
            name = program or j.default_program
            if name not in [p.name for p in j.programs]:
                raise ScenarioError(f"program = {name!r}: junction {j.id} has no such program")
            self._program[j.id] = name

    def attach(self, sim: Simulation) -> None:
        """Nothing to watch: the program never changes."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        """Return the junction's fixed program, whatever the time."""
        return self._program[junction_id]


class TimeOfDayController:
    """Programs by clock time: the scenario's ``[[schedule]]``, or a given plan.

    Before the first entry a junction runs its default program. A change
    takes effect at the next synchronisation point after its clock time, like
    a real controller's time plan.

    Parameters
    ----------
    scenario : Scenario
    entries : tuple of (clock_s, program), optional
        A plan of the day instead of the scenario's schedule (clock times in
        s after midnight, increasing); used by the hindsight bound.
    name : str
        The controller's name in outputs.
    """

    #: Its answer depends on the clock only.
    clock_only = True

    def __init__(self, scenario: Scenario,
                 entries: tuple[tuple[float, str], ...] | None = None,
                 name: str = "tod") -> None:
        plan = entries if entries is not None else tuple(
            (e.at_clock_s, e.program) for e in scenario.schedule)
        if not plan:
            raise ScenarioError("schedule = []: the time-of-day controller needs a "
                                "[[schedule]] in the scenario")
        at = [float(t) for t, _ in plan]
        if at != sorted(at):
            raise ScenarioError(f"schedule = {list(plan)!r}: clock times must increase")
        for _, program in plan:
            for j in scenario.junctions:
                if program not in [pr.name for pr in j.programs]:
                    raise ScenarioError(f"program = {program!r}: junction {j.id} has no "
                                        "such program")
        self.name = name
        self._at = at
        self._program = [pr for _, pr in plan]
        self._default = {j.id: j.default_program for j in scenario.junctions}

    def attach(self, sim: Simulation) -> None:
        """Nothing to watch: only the clock matters."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        """Return the program of the last entry at or before ``clock_s``."""
        k = bisect_right(self._at, clock_s + _CLOCK_EPS_S) - 1
        return self._program[k] if k >= 0 else self._default[junction_id]
