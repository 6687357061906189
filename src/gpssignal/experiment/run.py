"""Wiring of one run: scenario + controller + seed -> simulation result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpssignal import __version__
from gpssignal.control.fixed import FixedTimeController, TimeOfDayController
from gpssignal.control.gps import GpsController, GpsModel
from gpssignal.errors import ScenarioError
from gpssignal.model.geo import link_geometry
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.probes.sampler import ProbeFeed, ProbeSampler, ProbeStream, probe_columns
from gpssignal.sim.controller import Controller
from gpssignal.sim.engine import SimResult, Simulation

__all__ = ["CONTROLLERS", "RunMeta", "make_controller", "run_scenario", "run_with_probes",
           "run_gps"]

#: Controllers the command line offers, by name (``gps`` needs a model).
CONTROLLERS = ("fixed", "tod", "gps")


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
    if name == "gps":
        raise ScenarioError("controller = 'gps': needs a model")
    raise ScenarioError(f"controller = {name!r}: must be one of {', '.join(CONTROLLERS)}")


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


def _run(scenario: Scenario, controller: Controller | str, seed: int | None,
         record_trajectories: bool, progress: Callable[[float], None] | None,
         probes: ProbeSettings | None, feed: ProbeFeed | None = None
         ) -> tuple[SimResult, ProbeSampler | None, RunMeta]:
    ctrl = make_controller(controller, scenario) if isinstance(controller, str) else controller
    seed = scenario.seed if seed is None else seed
    sim = Simulation(scenario, ctrl, seed=seed, record_trajectories=record_trajectories)
    sampler = None
    if probes is not None:
        sampler = ProbeSampler(scenario, probes, sim.arrivals, link_geometry(scenario),
                               np.random.default_rng(sim.streams["probes"]), feed=feed)
        sampler.attach(sim)
    result = sim.run(progress=progress)
    meta = RunMeta(scenario=scenario.name, scenario_hash=scenario_hash(scenario), seed=seed,
                   controller=ctrl.name, version=__version__,
                   demand_level=result.day.demand_level, peak_shift_s=result.day.peak_shift_s,
                   step_s=scenario.step_s, wall_s=result.wall_s)
    return result, sampler, meta


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
    result, _, meta = _run(scenario, controller, seed, record_trajectories, progress, None)
    return result, meta


def run_with_probes(scenario: Scenario, controller: Controller | str = "fixed",
                    seed: int | None = None, probes: ProbeSettings | None = None,
                    record_trajectories: bool = False,
                    progress: Callable[[float], None] | None = None
                    ) -> tuple[SimResult, ProbeStream, RunMeta]:
    """Simulate one day and sample its GPS probe stream while it runs.

    ``probes`` defaults to the scenario's ``[probes]`` settings. The probe
    vehicles and their noise come from the seed's ``probes`` stream, apart
    from the demand, so the vehicles are the same as in :func:`run_scenario`.
    """
    settings = scenario.probes if probes is None else probes
    result, sampler, meta = _run(scenario, controller, seed, record_trajectories, progress,
                                 settings)
    assert sampler is not None
    return result, sampler.stream(), meta


def run_gps(scenario: Scenario, model: GpsModel, seed: int | None = None,
            probes: ProbeSettings | None = None, record_trajectories: bool = False,
            progress: Callable[[float], None] | None = None
            ) -> tuple[SimResult, ProbeStream, GpsController, RunMeta]:
    """Simulate one day under the GPS controller, fed by the simulated probe stream.

    The controller sees only the feed (``probes``, default the scenario's),
    which is sampled from the run as it goes.
    """
    settings = scenario.probes if probes is None else probes
    feed = ProbeFeed(probe_columns(settings))
    ctrl = GpsController(model, scenario, feed)
    result, sampler, meta = _run(scenario, ctrl, seed, record_trajectories, progress, settings,
                                 feed)
    assert sampler is not None
    return result, sampler.stream(), ctrl, meta
