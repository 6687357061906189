"""Training orchestration: simulate candidate settings on the training days.

The data side (speeds from the history, free-flow speeds, the candidates)
is :mod:`gpssignal.control.training`. This module runs the simulations and
assembles the model. See that module for the method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal.control.gps import GpsModel, model_from_scenario
from gpssignal.control.training import (
    candidate_settings,
    history_manifest,
    load_history_speeds,
    measured_model,
    provenance,
    sanity_notes,
)
from gpssignal.evaluate.definitions import (
    entry_wait_s,
    space_mean_speed_kmh,
    time_loss_s,
    travel_time_s,
)
from gpssignal.evaluate.metrics import stretch_length_m
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["DayOutcome", "existing_plan_time_loss", "run_day", "simulate_days", "train"]

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


def train(scenario: Scenario, history_dir: str | Path, *, candidates: int = 16,
          search_seed: int = 0, backend: LocalBackend | DaskBackend | None = None,
          test_days: int = 0,
          base_params: dict[str, Any] | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> GpsModel:
    """Train a GPS controller model for ``scenario`` on a probe history.

    Parameters
    ----------
    scenario : Scenario
        The scenario the history was simulated from (its hash is checked).
    history_dir : path
        Output of ``gpssignal history``.
    candidates : int
        Random-search candidates, each simulated on every training day.
    search_seed : int
        Seed of the random search.
    backend : LocalBackend or DaskBackend, optional
        Where the simulations run (default: this process).
    test_days : int
        Held-out days (seeds after the history's) on which fixed time, time of
        day and the trained model are compared; 0 skips.
    base_params : dict, optional
        Other model parameters (``min_points``, ``stale_after_s``,
        ``decision_interval_s``, ``max_distance_m``, ``max_heading_diff_deg``).
    progress : callable, optional
        ``progress(stage, done, total)``.

    Raises
    ------
    ScenarioError
        If the history is missing, empty, or from another scenario.
    """
    t0 = time.perf_counter()
    root = Path(history_dir)
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
    prov = provenance(scenario, root, data, search_seed, table, best)
    prov["search"]["notes"] = sanity_notes(models[best], cands[best])
    prov["existing_plan"] = {"controller": data.manifest.get("controller"),
                             "mean_time_loss_s": existing_plan_time_loss(root, data.dates)}
    prov["probe_settings"] = {k: getattr(settings, k) for k in settings.__slots__}
    model = models[best]
    if test_days > 0:
        first = max(data.seeds) + 1
        seeds = list(range(first, first + test_days))
        jobs = [ControllerSpec(kind="fixed"), ControllerSpec(kind="tod"),
                ControllerSpec(kind="gps", model=model)]
        ev = simulate_days(scenario, jobs, seeds, settings, backend=backend,
                           progress=stage("held-out"))
        prov["held_out"] = {"seeds": seeds, "results": ev}
    prov["train_wall_s"] = round(time.perf_counter() - t0, 1)
    return model.with_params(provenance=prov)

