"""The protocol every signal controller implements.

The simulator asks the controller which program each junction should run at
every synchronisation point (cycle second 0 of the running program). A
controller that needs to watch the simulation (for instance a probe feed) does
so from ``attach``, where it can register SimPy processes or step hooks on the
engine; it never reads ground truth unless it was designed to (fixed and
time-of-day controllers read only the clock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gpssignal.sim.engine import Simulation

__all__ = ["Controller"]


@runtime_checkable
class Controller(Protocol):
    """A signal controller: chooses a program per junction over time."""

    #: Short name used in outputs, e.g. ``fixed``, ``tod``, ``gps``.
    name: str

    def attach(self, sim: Simulation) -> None:
        """Prepare for the run: called once before it starts; may register processes or hooks."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        """Program the junction should run from now on [clock_s: s after midnight]."""
        ...
