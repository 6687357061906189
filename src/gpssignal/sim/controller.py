"""The protocol every signal controller implements.

The simulator asks the controller which program each junction should run at
every synchronisation point (cycle second 0 of the running program). A
controller that needs to watch the simulation (for instance a probe feed) does
so from ``attach``, where it can register SimPy processes or step hooks on the
engine; it never reads ground truth unless it was designed to (fixed and
time-of-day controllers read only the clock).

A controller's own process waits with :func:`decision_timeout`: its
decisions at an instant come before everything else the engine does at that
instant, the synchronisation points included, whatever the order the events
were scheduled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import simpy
from simpy.events import URGENT

if TYPE_CHECKING:
    from gpssignal.sim.engine import Simulation

__all__ = ["Controller", "decision_timeout"]


class _DecisionTimeout(simpy.Event):
    """A timeout of the event clock's urgent class (see :func:`decision_timeout`)."""

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        super().__init__(env)
        # As simpy.Timeout does, with the urgent priority instead of the normal one.
        self._ok = True
        self._value = None
        env.schedule(self, URGENT, delay)


def decision_timeout(env: simpy.Environment, delay: float) -> simpy.Event:
    """Return an event ``delay`` seconds on that comes first among the events at its time.

    A controller process waits with it, so that its decision at an instant
    is made before the signals' synchronisation points and the vehicle
    step at that instant ask for it or act on it.
    """
    return _DecisionTimeout(env, delay)


@runtime_checkable
class Controller(Protocol):
    """A signal controller: chooses a program per junction over time."""

    #: Short name used in outputs, e.g. ``fixed``, ``tod``, ``gps``.
    name: str
    # Optional: a class attribute ``clock_only = True`` says that
    # ``requested_program`` depends on its arguments only (no state, no
    # side effect), so the engine may ask it ahead for the coming
    # synchronisation points and leave those that keep the program to its
    # compiled steps (:meth:`~gpssignal.sim.signals.JunctionSignals.process`).

    def attach(self, sim: Simulation) -> None:
        """Prepare for the run: called once before it starts; may register processes or hooks."""

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        """Program the junction should run from now on [clock_s: s after midnight]."""
        ...
