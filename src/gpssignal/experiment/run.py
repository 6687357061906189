"""The one run path: a :class:`RunSpec` in, a :class:`RunOutput` out.

Everything that simulates a day (``gpssignal run``, histories, training,
evaluation, sweeps, the estimator, the SUMO cross-check) describes it as a
frozen :class:`RunSpec` (scenario, controller, seed, probe feed, outputs
wanted) and calls :func:`run_one`. Many runs go through
:func:`gpssignal.experiment.parallel.map_runs`.
"""

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

__all__ = ["CONTROLLERS", "ControllerSpec", "RunMeta", "RunOutput", "RunSpec",
           "make_controller", "run_one", "run_scenario"]

#: Controller kinds a user names (``gps`` needs a model).
CONTROLLERS = ("fixed", "tod", "gps")
#: Every kind a spec can hold: also ``plan``, a given plan of the day (the
#: hindsight bound's schedules).
_KINDS = (*CONTROLLERS, "plan")


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSpec:
    """Which controller a run uses, as data (picklable, comparable).

    Parameters
    ----------
    kind : str
        One of :data:`CONTROLLERS`.
    program : str, optional
        With ``fixed``: the program every junction runs (default: each
        junction's ``default_program``).
    model : GpsModel, optional
        With ``gps``: the trained model (required).
    plan : tuple of (clock_s, program), optional
        With ``plan``: the programs of the day by clock time [s after midnight].
    name : str, optional
        The label in outputs instead of the kind (e.g. ``oracle``).
    """

    kind: str
    program: str | None = None
    model: GpsModel | None = None
    plan: tuple[tuple[float, str], ...] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        """Check the spec; raise :class:`~gpssignal.errors.ScenarioError` if bad."""
        if self.kind not in _KINDS:
            raise ScenarioError(f"controller = {self.kind!r}: must be one of "
                                f"{', '.join(CONTROLLERS)}")
        if self.kind == "gps" and self.model is None:
            raise ScenarioError("controller = 'gps': needs a model")
        if self.program is not None and self.kind != "fixed":
            raise ScenarioError(f"program = {self.program!r}: only for controller 'fixed'")
        if (self.plan is not None) != (self.kind == "plan"):
            raise ScenarioError(f"plan = {self.plan!r}: given with controller 'plan', "
                                "and only with it")

    @classmethod
    def parse(cls, text: str, model: GpsModel | None = None) -> ControllerSpec:
        """From a name: ``fixed``, ``fixed:PROGRAM``, ``tod`` or ``gps``."""
        kind, _, program = text.partition(":")
        return cls(kind=kind, program=program or None,
                   model=model if kind == "gps" else None)

    @property
    def label(self) -> str:
        """The name used in outputs (``fixed``, ``fixed:peak``, ``tod``, ``gps``, ...)."""
        if self.name:
            return self.name
        return f"{self.kind}:{self.program}" if self.program else self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """One controller on one day of one scenario, and the outputs wanted.

    Parameters
    ----------
    scenario : Scenario
    controller : ControllerSpec
    seed : int
        The day (demand level, peak timing, arrivals; common to every
        controller run with the same seed).
    probes : ProbeSettings, optional
        The GPS feed (default: the scenario's ``[probes]``). Sampled when the
        controller needs it (``gps``) or ``sample_probes`` is set.
    sample_probes : bool
        Keep the probe stream in the output.
    record_trajectories : bool
        Keep the ground-truth trajectories in the result.
    day_type : str, optional
        Run the day as this type of the scenario's mix instead of the type
        its seed draws (the rest of the day, its arrivals included, still
        comes from the seed).
    """

    scenario: Scenario
    controller: ControllerSpec
    seed: int
    probes: ProbeSettings | None = None
    sample_probes: bool = False
    record_trajectories: bool = False
    day_type: str | None = None

    def __post_init__(self) -> None:
        """Check the day type; raise :class:`~gpssignal.errors.ScenarioError` if unknown."""
        names = [d.name for d in self.scenario.day_types]
        if self.day_type is not None and self.day_type not in names:
            raise ScenarioError(f"day_type = {self.day_type!r}: the scenario's day types are "
                                f"{', '.join(names) or 'none'}")

    @property
    def probe_settings(self) -> ProbeSettings:
        """The feed this run samples (the scenario's unless given)."""
        return self.scenario.probes if self.probes is None else self.probes


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
    day_type: str
    step_s: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (for JSON and Parquet metadata)."""
        return {f: getattr(self, f) for f in self.__slots__}


@dataclass(frozen=True, slots=True)
class RunOutput:
    """What :func:`run_one` returns.

    ``probes`` is the sampled stream when the run sampled one, else ``None``;
    ``controller`` is the controller object after the run (the GPS
    controller keeps its decision log).
    """

    result: SimResult
    meta: RunMeta
    controller: Controller
    probes: ProbeStream | None = None


def make_controller(spec: ControllerSpec | str, scenario: Scenario,
                    feed: ProbeFeed | None = None) -> Controller:
    """Build the controller a spec (or a name) describes.

    Raises
    ------
    ScenarioError
        For an unknown name, a program the scenario lacks, or ``gps`` without
        a model or a feed.
    """
    if isinstance(spec, str):
        spec = ControllerSpec.parse(spec)
    if spec.kind == "fixed":
        return FixedTimeController(scenario, spec.program)
    if spec.kind == "tod":
        return TimeOfDayController(scenario)
    if spec.kind == "plan":
        return TimeOfDayController(scenario, spec.plan, name=spec.label)
    assert spec.model is not None  # ControllerSpec checks it
    if feed is None:
        raise ScenarioError("controller = 'gps': needs a probe feed")
    return GpsController(spec.model, scenario, feed)


def run_one(spec: RunSpec, progress: Callable[[float], None] | None = None,
            trajectory_sink: Callable[[dict[str, np.ndarray]], None] | None = None
            ) -> RunOutput:
    """Simulate the day a :class:`RunSpec` describes.

    The probe vehicles and their noise come from the seed's ``probes``
    stream, apart from the demand, so the vehicles are the same whether or
    not probes are sampled.

    Parameters
    ----------
    spec : RunSpec
    progress : callable, optional
        Called with the fraction of the period simulated [-].
    trajectory_sink : callable, optional
        With ``spec.record_trajectories``: called during the run with the
        trajectories block by block, in step order (the columns of
        ``SimResult.trajectories``, ``link`` indexing ``scenario.links``),
        which are then not kept: the result's trajectories have no rows.
        A run that writes them to a file thus holds one block at a time.
    """
    sc = spec.scenario
    needs_feed = spec.controller.kind == "gps"
    settings = spec.probe_settings
    feed = ProbeFeed(probe_columns(settings)) if needs_feed else None
    ctrl = make_controller(spec.controller, sc, feed)
    sim = Simulation(sc, ctrl, seed=spec.seed, record_trajectories=spec.record_trajectories,
                     day_type=spec.day_type)
    if trajectory_sink is not None:
        if sim.trajectories is None:
            raise ValueError("run_one: a trajectory_sink needs spec.record_trajectories")
        sim.trajectories.stream(trajectory_sink, sim.dt, sim.net.lane_link)
    sampler = None
    if needs_feed or spec.sample_probes:
        sampler = ProbeSampler(sc, settings, sim.arrivals, link_geometry(sc),
                               np.random.default_rng(sim.streams["probes"]), feed=feed)
        sampler.attach(sim)
    result = sim.run(progress=progress)
    meta = RunMeta(scenario=sc.name, scenario_hash=scenario_hash(sc), seed=spec.seed,
                   controller=ctrl.name, version=__version__,
                   demand_level=result.day.demand_level, peak_shift_s=result.day.peak_shift_s,
                   day_type=result.day.day_type, step_s=sc.step_s, wall_s=result.wall_s)
    stream = sampler.stream() if sampler is not None and spec.sample_probes else None
    return RunOutput(result=result, meta=meta, controller=ctrl, probes=stream)


def run_scenario(scenario: Scenario, controller: ControllerSpec | str = "fixed",
                 seed: int | None = None, record_trajectories: bool = True,
                 progress: Callable[[float], None] | None = None) -> tuple[SimResult, RunMeta]:
    """Simulate one day of ``scenario`` (a shorthand of :func:`run_one`).

    Parameters
    ----------
    scenario : Scenario
    controller : ControllerSpec or str
        A spec, or a name (``fixed``, ``fixed:PROGRAM``, ``tod``).
    seed : int, optional
        The day; defaults to the scenario's seed.
    record_trajectories : bool
        Keep the ground-truth trajectories in the result.
    progress : callable, optional
        Called with the fraction done [-].
    """
    spec = controller if isinstance(controller, ControllerSpec) \
        else ControllerSpec.parse(controller)
    out = run_one(RunSpec(scenario=scenario, controller=spec,
                          seed=scenario.seed if seed is None else seed,
                          record_trajectories=record_trajectories), progress=progress)
    return out.result, out.meta
