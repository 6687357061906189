"""Training orchestration: simulate candidate settings on the training days.

The data side (speeds from the history, free-flow speeds, the candidates)
is :mod:`gpssignal.control.training`, the data-driven rule
:mod:`gpssignal.control.datadriven`, the day reconstruction
:mod:`gpssignal.experiment.reconstruct`. This module runs the simulations
and assembles the model. See those modules for the methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal.control.datadriven import data_driven_model
from gpssignal.control.gps import GpsModel, model_from_scenario
from gpssignal.control.training import (
    METHODS,
    TrainingData,
    candidate_settings,
    history_manifest,
    load_history_speeds,
    load_probe_history,
    measured_model,
    provenance,
    read_program_log,
    require_probe_source,
    sanity_notes,
    search_record,
)
from gpssignal.errors import ScenarioError
from gpssignal.evaluate.definitions import (
    entry_wait_s,
    space_mean_speed_kmh,
    time_loss_s,
    travel_time_s,
)
from gpssignal.evaluate.metrics import stretch_length_m
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.reconstruct import (
    RECONSTRUCTION_SEEDS_FROM,
    SEARCH_SEED_OFFSET,
    DayFit,
    build_library,
    day_prior,
    default_grid,
    fit_days,
    reconstructed_scenario,
)
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["HELD_OUT_SEEDS_FROM", "DayOutcome", "existing_plan_time_loss", "run_day",
           "simulate_days", "train"]

@dataclass(frozen=True, slots=True)
class DayOutcome:
    """One simulated day, summarised for training.

    ``time_loss_s``: total time loss of the vehicles that finished [s];
    ``vehicles``: how many finished; ``stretch_speed_kmh``: space-mean speed on
    the first monitored stretch of vehicles entering it in the peak hour (the
    whole period without one) [km/h]; ``switches``: program switches.
    """

    time_loss_s: float
    vehicles: int
    stretch_speed_kmh: float
    switches: int


def _outcome(result: SimResult) -> DayOutcome:
    arr, sc = result.arrivals, result.scenario
    done = ~np.isnan(result.exit_s)
    tl = time_loss_s(travel_time_s(result.depart_s, result.exit_s), arr.free_flow_time_s,
                     entry_wait_s(arr.t_s, result.depart_s))
    speed = np.nan
    if sc.stretches:
        enter = result.stretch_enter_s[:, 0]
        a, b = ((sc.peak_clock_s[0] - sc.start_clock_s, sc.peak_clock_s[1] - sc.start_clock_s)
                if sc.peak_clock_s else (0.0, sc.duration_s))
        sel = (enter >= a) & (enter < b)
        speed = space_mean_speed_kmh(stretch_length_m(result, 0),
                                     (result.stretch_exit_s[:, 0] - enter)[sel])
    return DayOutcome(float(np.nansum(tl[done])), int(done.sum()), speed,
                      len(result.switches))


def run_day(spec: RunSpec) -> DayOutcome:
    """Simulate one day and summarise it (a picklable task for :func:`map_runs`)."""
    return _outcome(run_one(spec).result)


def simulate_days(scenario: Scenario, jobs: list[ControllerSpec], seeds: list[int],
                  probes: ProbeSettings, backend: LocalBackend | DaskBackend | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Simulate every (controller, seed) pair; summarise per controller.

    Each summary has the mean time loss per vehicle over all days (vehicles
    weighted equally), per-day values, the stretch speed and the program
    switches per day. The result does not depend on the backend.
    """
    tasks = [RunSpec(scenario=scenario, controller=c, seed=seed, probes=probes)
             for c in jobs for seed in seeds]
    results = map_runs(run_day, tasks, backend, progress)
    out = []
    n = len(seeds)
    for j, c in enumerate(jobs):
        chunk = results[j * n:(j + 1) * n]
        veh = sum(r.vehicles for r in chunk)
        out.append({
            "controller": c.label, "seeds": list(seeds),
            "mean_time_loss_s": sum(r.time_loss_s for r in chunk) / max(veh, 1),
            "per_day_time_loss_s": [r.time_loss_s / max(r.vehicles, 1) for r in chunk],
            "stretch_speed_kmh": float(np.nanmean([r.stretch_speed_kmh for r in chunk]))
            if chunk else np.nan,
            "per_day_speed_kmh": [r.stretch_speed_kmh for r in chunk],
            "switches_per_day": [r.switches for r in chunk], "vehicles": veh})
    return out


def existing_plan_time_loss(history_dir: Path, dates: list[str]) -> float:
    """Mean time loss per vehicle in a history's ground truth (the existing plan)."""
    total, n = 0.0, 0
    for day in dates:
        df = pd.read_parquet(history_dir / "truth" / f"date={day}" / "vehicles.parquet")
        d = df[df["exit_s"].notna()]
        loss = time_loss_s(travel_time_s(d["depart_s"], d["exit_s"]), d["free_flow_time_s"],
                           entry_wait_s(d["arrival_s"], d["depart_s"]))
        total += float(np.sum(loss))
        n += len(d)
    return total / max(n, 1)


#: First seed of the held-out days of ``test_days`` for the methods that do not
#: know the history's seeds (``evaluate``'s default first day).
HELD_OUT_SEEDS_FROM = 1001


def _days_plans(scenario: Scenario, data: TrainingData, program_log: str | Path | None
                ) -> list[ControllerSpec]:
    """Return the plan that ran on each history day: the log's, else the existing plan."""
    if program_log is None:
        spec = ControllerSpec.parse(scenario.baseline_plan)
        return [spec] * len(data.dates)
    plans = read_program_log(program_log, scenario, data.dates)
    return [ControllerSpec(kind="plan", plan=plans[d], name="logged plan") for d in data.dates]


def _search(tasks: list[tuple[Scenario, int]], models: list[GpsModel], plans: list[ControllerSpec],
            probes: ProbeSettings, backend: LocalBackend | DaskBackend | None,
            progress: Callable[[int, int], None] | None) -> tuple[list[dict[str, Any]], float]:
    """Run every candidate and the history's plans on the given (scenario, seed) days.

    Returns one summary per candidate and the plans' mean time loss per vehicle.
    """
    specs = [RunSpec(scenario=sc, controller=ControllerSpec(kind="gps", model=m), seed=seed,
                     probes=probes) for m in models for sc, seed in tasks]
    specs += [RunSpec(scenario=sc, controller=plan, seed=seed, probes=probes)
              for (sc, seed), plan in zip(tasks, plans, strict=True)]
    res = map_runs(run_day, specs, backend, progress)
    n = len(tasks)
    out = []
    for k in range(len(models)):
        chunk = res[k * n:(k + 1) * n]
        veh = sum(r.vehicles for r in chunk)
        out.append({"mean_time_loss_s": sum(r.time_loss_s for r in chunk) / max(veh, 1),
                    "stretch_speed_kmh": float(np.nanmean([r.stretch_speed_kmh
                                                           for r in chunk])),
                    "switches_per_day": float(np.mean([r.switches for r in chunk]))})
    base = res[len(models) * n:]
    return out, sum(r.time_loss_s for r in base) / max(sum(r.vehicles for r in base), 1)


def train(scenario: Scenario, history_dir: str | Path, *, method: str = "same-seed",
          candidates: int = 16, search_seed: int = 0,
          backend: LocalBackend | DaskBackend | None = None, test_days: int = 0,
          base_params: dict[str, Any] | None = None,
          progress: Callable[[str, int, int], None] | None = None,
          program_log: str | Path | None = None, timezone: str = "UTC",
          grid: tuple[int, int] = (6, 5)) -> GpsModel:
    """Train a GPS controller model for ``scenario`` on a probe history.

    Parameters
    ----------
    scenario : Scenario
        The junction(s): geometry, programs, base demand (from counts).
    history_dir : path
        The probe history: a ``gpssignal history`` folder, or (methods
        ``reconstruct`` and ``data-driven``) any probe file (CSV or Parquet)
        or folder of Parquet files, e.g. from ``import-fcd`` or
        ``check-probes``. Never a simulator result.
    method : str
        One of :data:`~gpssignal.control.training.METHODS`:
        ``reconstruct`` (fit each day's demand level and peak shift to its
        probe speeds, search on reconstructed days with fresh seeds),
        ``data-driven`` (thresholds from the speed distribution, no
        simulation), or ``same-seed`` (search on the history days' own seeds:
        an upper bound no operator can reproduce; needs a ``gpssignal
        history`` of this scenario).
    candidates : int
        Random-search candidates, each simulated on every training day.
    search_seed : int
        Seed of the random search.
    backend : LocalBackend or DaskBackend, optional
        Where the simulations run (default: this process).
    test_days : int
        Held-out days on which fixed time, time of day and the trained model
        are compared (seeds after the history's for ``same-seed``, else from
        :data:`HELD_OUT_SEEDS_FROM`); 0 skips.
    base_params : dict, optional
        Other model parameters (``min_points``, ``stale_after_s``,
        ``decision_interval_s``, ``max_distance_m``, ``max_heading_diff_deg``).
    progress : callable, optional
        ``progress(stage, done, total)``.
    program_log : path, optional
        CSV of which program ran when (:func:`~gpssignal.control.training.read_program_log`);
        default: the scenario's existing plan ran every day.
    timezone : str
        Time zone of CSV timestamps without an offset.
    grid : (int, int)
        Levels and shifts of the reconstruction library.

    Raises
    ------
    ScenarioError
        An unknown method, a history that is not probe points, or (same-seed)
        a history that is missing, empty, or from another scenario.
    ProbeFileError
        A probe file that cannot be read, or without a point in the period.
    """
    if method not in METHODS:
        raise ScenarioError(f"method = {method!r}: must be one of {', '.join(METHODS)}")
    root = require_probe_source(history_dir)
    if method == "same-seed":
        return _train_same_seed(scenario, root, candidates=candidates, search_seed=search_seed,
                                backend=backend, test_days=test_days, base_params=base_params,
                                progress=progress)
    t0 = time.perf_counter()

    def stage(name: str) -> Callable[[int, int], None] | None:
        return (lambda d, n: progress(name, d, n)) if progress else None

    base = model_from_scenario(scenario, **(base_params or {}))
    data = load_probe_history(root, base, scenario, timezone=timezone)
    settings = scenario.probes
    if method == "data-driven":
        model, rule, notes = data_driven_model(scenario, data, base_params)
        prov = provenance(scenario, root, data, method)
        prov["rule"] = rule
        prov["notes"] = notes
    else:
        plans = _days_plans(scenario, data, program_log)
        lib_grid = default_grid(scenario, *grid)
        fits: list[DayFit] = [None] * len(data.dates)  # type: ignore[list-item]
        libraries = []
        distinct = list(dict.fromkeys(plans))
        n_grid = len(lib_grid.levels) * len(lib_grid.shifts_s)
        prior = day_prior(scenario)
        for g, plan in enumerate(distinct):
            lib = build_library(scenario, plan, lib_grid, settings,
                                first_seed=RECONSTRUCTION_SEEDS_FROM + g * n_grid,
                                backend=backend, progress=stage("reconstruct"))
            days = [d for d, p in enumerate(plans) if p == plan]
            for d, f in zip(days, fit_days(data, lib, days, prior), strict=True):
                fits[d] = f
            libraries.append({"plan": lib.plan, "seeds": [int(lib.seeds.min()),
                                                          int(lib.seeds.max())]})
        first = RECONSTRUCTION_SEEDS_FROM + SEARCH_SEED_OFFSET
        tasks = [(reconstructed_scenario(scenario, f.demand_level, f.peak_shift_s), first + d)
                 for d, f in enumerate(fits)]
        model0 = measured_model(scenario, data, base_params)
        cands = candidate_settings(candidates, search_seed)
        models = [model0.with_params(**c) for c in cands]
        res, existing = _search(tasks, models, plans, settings, backend, stage("search"))
        table = [{**c, **r} for c, r in zip(cands, res, strict=True)]
        best = int(np.argmin([r["mean_time_loss_s"] for r in res]))
        model = models[best]
        prov = provenance(scenario, root, data, method, search_record(
            search_seed, "mean time loss per vehicle over the reconstructed days (each history "
            "day's fitted demand level and peak shift, fresh seeds)", table, best))
        prov["search"]["notes"] = sanity_notes(model, cands[best])
        prov["reconstruction"] = {
            "grid": {"levels": list(lib_grid.levels), "shifts_s": list(lib_grid.shifts_s)},
            "libraries": libraries, "fits": [f.as_dict() for f in fits],
            "search_seeds": [first, first + len(fits) - 1],
            "prior": dict(zip(("level_mean", "level_sd", "shift_mean_s", "shift_sd_s"), prior,
                              strict=True)),
            "fit": "posterior mode: least squares of the slot mean probe speeds (weighted by "
                   "points) with the scenario's day-to-day variability as a normal prior; "
                   "library of simulated days under the plan that ran"}
        prov["existing_plan"] = {
            "controller": ", ".join(sorted({p.label for p in plans})),
            "mean_time_loss_s": existing,
            "on": "the reconstructed days (simulated, fresh seeds)"}
    prov["probe_settings"] = {k: getattr(settings, k) for k in settings.__slots__}
    if test_days > 0:
        seeds = list(range(HELD_OUT_SEEDS_FROM, HELD_OUT_SEEDS_FROM + test_days))
        prov["held_out"] = _held_out(scenario, model, seeds, settings, backend,
                                     stage("held-out"))
    prov["train_wall_s"] = round(time.perf_counter() - t0, 1)
    return model.with_params(provenance=prov)


def _held_out(scenario: Scenario, model: GpsModel, seeds: list[int], settings: ProbeSettings,
              backend: LocalBackend | DaskBackend | None,
              progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    jobs = [ControllerSpec(kind="fixed"), ControllerSpec(kind="tod"),
            ControllerSpec(kind="gps", model=model)]
    ev = simulate_days(scenario, jobs, seeds, settings, backend=backend, progress=progress)
    return {"seeds": seeds, "results": ev}


def _train_same_seed(scenario: Scenario, root: Path, *, candidates: int, search_seed: int,
                     backend: LocalBackend | DaskBackend | None, test_days: int,
                     base_params: dict[str, Any] | None,
                     progress: Callable[[str, int, int], None] | None) -> GpsModel:
    """Train with the same-seed search: an upper bound (see :func:`train`)."""
    t0 = time.perf_counter()
    history_manifest(root, scenario)  # fail fast, before any matching
    base = model_from_scenario(scenario, **(base_params or {}))
    data = load_history_speeds(root, base, scenario)
    model0 = measured_model(scenario, data, base_params)
    settings = ProbeSettings(**data.probe_settings) if data.probe_settings \
        else scenario.probes
    cands = candidate_settings(candidates, search_seed)
    models = [model0.with_params(**c) for c in cands]

    def stage(name: str) -> Callable[[int, int], None] | None:
        return (lambda d, n: progress(name, d, n)) if progress else None

    res = simulate_days(scenario, [ControllerSpec(kind="gps", model=m) for m in models],
                        data.seeds, settings, backend=backend, progress=stage("search"))
    table = [{**c, "mean_time_loss_s": r["mean_time_loss_s"],
              "stretch_speed_kmh": r["stretch_speed_kmh"],
              "switches_per_day": float(np.mean(r["switches_per_day"]))}
             for c, r in zip(cands, res, strict=True)]
    best = int(np.argmin([r["mean_time_loss_s"] for r in res]))
    prov = provenance(scenario, root, data, "same-seed", search_record(
        search_seed, "mean time loss per vehicle over the training days (simulated with the "
        "history days' own seeds: an upper bound)", table, best))
    prov["search"]["notes"] = sanity_notes(models[best], cands[best])
    prov["existing_plan"] = {"controller": data.manifest.get("controller"),
                             "mean_time_loss_s": existing_plan_time_loss(root, data.dates),
                             "on": "the history days (their ground truth)"}
    prov["probe_settings"] = {k: getattr(settings, k) for k in settings.__slots__}
    model = models[best]
    if test_days > 0:
        first = max(data.seeds) + 1
        seeds = list(range(first, first + test_days))
        prov["held_out"] = _held_out(scenario, model, seeds, settings, backend,
                                     stage("held-out"))
    prov["train_wall_s"] = round(time.perf_counter() - t0, 1)
    return model.with_params(provenance=prov)
