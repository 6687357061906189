"""Training orchestration: simulate candidate settings on the training days.

The data side (speeds from the history, free-flow speeds, the candidates)
is :mod:`gpssignal.control.training`. This module runs the simulations and
assembles the model. See that module for the method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
)
from gpssignal.errors import ScenarioError
from gpssignal.evaluate.definitions import (
    entry_wait_s,
    space_mean_speed_kmh,
    time_loss_s,
    travel_time_s,
)
from gpssignal.evaluate.metrics import stretch_length_m
from gpssignal.experiment.run import run_gps, run_scenario
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["DayOutcome", "run_day", "simulate_days", "existing_plan_time_loss", "train"]

#: One simulated day: total time loss [s], completed vehicles, speed on the
#: first monitored stretch [km/h] (entering in the peak hour, or the whole
#: period without one), program switches.
DayOutcome = tuple[float, int, float, int]


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
    return float(np.nansum(tl[done])), int(done.sum()), speed, len(result.switches)


def run_day(task: tuple[Scenario, str, GpsModel | None, int, ProbeSettings]) -> DayOutcome:
    """Simulate one day (a picklable task for the process pool)."""
    scenario, kind, model, seed, probes = task
    if kind == "gps":
        if model is None:
            raise ScenarioError("controller 'gps' needs a model")
        result, _, _, _ = run_gps(scenario, model, seed=seed, probes=probes)
    else:
        result, _ = run_scenario(scenario, kind, seed=seed, record_trajectories=False)
    return _outcome(result)


def simulate_days(scenario: Scenario, jobs: list[tuple[str, GpsModel | None]],
                  seeds: list[int], probes: ProbeSettings, workers: int = 2,
                  progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Simulate every (controller, seed) pair; summarise per job.

    ``jobs`` are ``(kind, model)`` with kind ``gps`` (model given), ``fixed``
    or ``tod``. Each summary has the mean time loss per vehicle over all days
    (vehicles weighted equally), per-day values, the stretch speed and the
    program switches per day. The result does not depend on ``workers``.
    """
    tasks = [(scenario, kind, model, seed, probes) for kind, model in jobs for seed in seeds]
    results: list[DayOutcome] = []
    if workers <= 1 or len(tasks) <= 1:
        for k, t in enumerate(tasks):
            results.append(run_day(t))
            if progress:
                progress(k + 1, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for k, r in enumerate(pool.map(run_day, tasks)):
                results.append(r)
                if progress:
                    progress(k + 1, len(tasks))
    out = []
    n = len(seeds)
    for j, (kind, _) in enumerate(jobs):
        chunk = results[j * n:(j + 1) * n]
        veh = sum(r[1] for r in chunk)
        out.append({
            "controller": kind, "seeds": list(seeds),
            "mean_time_loss_s": sum(r[0] for r in chunk) / max(veh, 1),
            "per_day_time_loss_s": [r[0] / max(r[1], 1) for r in chunk],
            "stretch_speed_kmh": float(np.nanmean([r[2] for r in chunk])) if chunk else np.nan,
            "per_day_speed_kmh": [r[2] for r in chunk],
            "switches_per_day": [r[3] for r in chunk], "vehicles": veh})
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
          search_seed: int = 0, workers: int = 2, test_days: int = 0,
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
    workers : int
        Processes for the simulations.
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

    res = simulate_days(scenario, [("gps", m) for m in models], data.seeds, settings,
                        workers=workers, progress=stage("search"))
    table = [{**c, "mean_time_loss_s": r["mean_time_loss_s"],
              "stretch_speed_kmh": r["stretch_speed_kmh"],
              "switches_per_day": float(np.mean(r["switches_per_day"]))}
             for c, r in zip(cands, res, strict=True)]
    best = int(np.argmin([r["mean_time_loss_s"] for r in res]))
    prov = provenance(scenario, root, data, search_seed, table, best)
    prov["existing_plan"] = {"controller": data.manifest.get("controller"),
                             "mean_time_loss_s": existing_plan_time_loss(root, data.dates)}
    prov["probe_settings"] = {k: getattr(settings, k) for k in settings.__slots__}
    model = models[best]
    if test_days > 0:
        first = max(data.seeds) + 1
        seeds = list(range(first, first + test_days))
        ev = simulate_days(scenario, [("fixed", None), ("tod", None), ("gps", model)], seeds,
                           settings, workers=workers, progress=stage("held-out"))
        prov["held_out"] = {"seeds": seeds, "results": ev}
    prov["train_wall_s"] = round(time.perf_counter() - t0, 1)
    return model.with_params(provenance=prov)

