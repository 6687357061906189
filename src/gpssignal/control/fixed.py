"""Clock-driven controllers: fixed time (one program) and time of day (a schedule)."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from gpssignal.errors import ScenarioError
from gpssignal.model.scenario import Scenario

if TYPE_CHECKING:
    from gpssignal.sim.engine import Simulation

__all__ = ["FixedTimeController", "TimeOfDayController"]


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
        return self._program[junction_id]


class TimeOfDayController:
    """Programs by clock time, from the scenario's ``[[schedule]]``.

    Before the first schedule entry a junction runs its default program. A
    change takes effect at the next synchronisation point after its clock
    time, like a real controller's time plan.
    """

    name = "tod"

    def __init__(self, scenario: Scenario) -> None:
        if not scenario.schedule:
            raise ScenarioError("schedule = []: the time-of-day controller needs a "
                                "[[schedule]] in the scenario")
        self._at = [e.at_clock_s for e in scenario.schedule]
        self._program = [e.program for e in scenario.schedule]
        self._default = {j.id: j.default_program for j in scenario.junctions}

    def attach(self, sim: Simulation) -> None:
        """Nothing to watch: only the clock matters."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        k = bisect_right(self._at, clock_s + 1e-9) - 1
        return self._program[k] if k >= 0 else self._default[junction_id]
