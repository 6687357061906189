"""Wiring of one run: scenario + controller + seed -> simulation result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpssignal import __version__
from gpssignal.control.fixed import FixedTimeController, TimeOfDayController
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import Scenario, ScenarioError
from gpssignal.sim.controller import Controller
from gpssignal.sim.engine import SimResult, Simulation

__all__ = ["CONTROLLERS", "RunMeta", "make_controller", "run_scenario"]

#: Controllers the command line offers, by name.
CONTROLLERS = ("fixed", "tod")


def make_controller(name: str, scenario: Scenario, program: str | None = None) -> Controller:
    """Build a controller by name (``fixed`` or ``tod``).

    Raises
    ------
    ScenarioError
        For an unknown name or a program the scenario lacks.
    """
    if name == "fixed":
        return FixedTimeController(scenario, program)
    if name == "tod":
        return TimeOfDayController(scenario)
    raise ScenarioError(f"--controller = {name!r}: must be one of {', '.join(CONTROLLERS)}")


@dataclass(frozen=True, slots=True)
class RunMeta:
    """What identifies a run's outputs: recorded in every output folder."""

    scenario: str
    scenario_hash: str
    seed: int
    controller: str
    version: str
    demand_level: float
    peak_shift_s: float
    step_s: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def run_scenario(scenario: Scenario, controller: Controller | str = "fixed",
                 seed: int | None = None, record_trajectories: bool = True,
                 progress: Callable[[float], None] | None = None) -> tuple[SimResult, RunMeta]:
    """Simulate one day of ``scenario`` under ``controller``.

    Parameters
    ----------
    scenario : Scenario
    controller : Controller or str
        A controller, or its name (see :data:`CONTROLLERS`).
    seed : int, optional
        The day; defaults to the scenario's seed.
    record_trajectories : bool
        Keep the ground-truth trajectories in the result.
    progress : callable, optional
        Called with the fraction done.
    """
    ctrl = make_controller(controller, scenario) if isinstance(controller, str) else controller
    seed = scenario.seed if seed is None else seed
    sim = Simulation(scenario, ctrl, seed=seed, record_trajectories=record_trajectories)
    result = sim.run(progress=progress)
    meta = RunMeta(scenario=scenario.name, scenario_hash=scenario_hash(scenario), seed=seed,
                   controller=ctrl.name, version=__version__,
                   demand_level=result.day.demand_level, peak_shift_s=result.day.peak_shift_s,
                   step_s=scenario.step_s, wall_s=result.wall_s)
    return result, meta
