"""Paired evaluation: controllers against fixed timing over N simulated days.

Each replication is one weekday (one seed: its demand level, peak timing and
arrivals). Every controller runs every day with the same demand realisation
(common random numbers, :func:`gpssignal.sim.engine.day_streams`), so KPIs are
compared day by day (:func:`gpssignal.evaluate.statistics.paired_difference`).

The runs are independent tasks on a process pool; results are put back in
task order, so they do not depend on the number of workers. One day (the
*showcase*, the first replication) also keeps the detail the report plots:
trajectories on the monitored stretch, signal states, queue samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal import __version__
from gpssignal.control.gps import GpsModel
from gpssignal.errors import ScenarioError
from gpssignal.evaluate.metrics import (
    EVAL_KPIS,
    monitored_approach,
    replication_kpis,
    run_tables,
)
from gpssignal.evaluate.statistics import mean_ci, paired_difference
from gpssignal.experiment.run import make_controller, run_gps, run_scenario
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["Showcase", "Replication", "Evaluation", "evaluate_controllers", "check_model",
           "train_for_evaluation"]

#: KPIs that are annualised (per-period saving × working days per year), with
#: the unit of the annual figure and the factor from the per-period unit.
ANNUAL = {
    "total_time_loss_veh_h": ("veh·h/year", 1.0),
    "co2_kg": ("t CO2/year", 1e-3),
    "fuel_l": ("L/year", 1.0),
}


@dataclass
class Showcase:
    """Detail of one day under one controller, for the report's plots.

    ``trajectories``: t_s, vid, link, pos_m, speed_mps of vehicles on the
    monitored stretch's links; ``signals``: t_s, junction, group, state
    (0 red, 1 red-amber, 2 green, 3 amber) of every signal group;
    ``queue``: t_s and queue_m of the monitored approach (1 s samples);
    ``desired_speed_mps`` per vehicle id on the monitored approach.
    """

    trajectories: pd.DataFrame
    signals: pd.DataFrame
    queue: pd.DataFrame
    desired_speed_mps: dict[int, float]


@dataclass
class Replication:
    """One controller on one day: its KPIs and small per-run tables."""

    controller: str
    seed: int
    kpis: dict[str, float]
    intervals: pd.DataFrame
    approaches: pd.DataFrame
    switches: pd.DataFrame
    wall_s: float
    showcase: Showcase | None = None


@dataclass
class Evaluation:
    """All replications of an evaluation, with the statistics derived from them."""

    scenario: Scenario
    controllers: list[str]
    seeds: list[int]
    baseline: str
    replications: list[Replication]
    workers: int
    wall_s: float
    model_info: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> pd.DataFrame:
        """One row per (controller, seed) with every KPI."""
        return pd.DataFrame([{"controller": r.controller, "seed": r.seed, **r.kpis,
                              "wall_s": r.wall_s} for r in self.replications])

    def values(self, controller: str, kpi: str) -> np.ndarray:
        """A KPI of one controller, in seed order."""
        by_seed = {r.seed: r.kpis.get(kpi, np.nan) for r in self.replications
                   if r.controller == controller}
        return np.array([by_seed[s] for s in self.seeds], dtype=float)

    def kpi_table(self) -> pd.DataFrame:
        """Per controller and KPI: mean and 95 % CI over the replications."""
        rows = []
        for key, unit, definition, _ in EVAL_KPIS:
            for c in self.controllers:
                iv = mean_ci(self.values(c, key))
                rows.append({"kpi": key, "unit": unit, "controller": c, "mean": iv.mean,
                             "ci95_low": iv.low, "ci95_high": iv.high, "n": iv.n,
                             "definition": definition})
        return pd.DataFrame(rows)

    def difference_table(self) -> pd.DataFrame:
        """Paired differences of each controller against each baseline (fixed, tod)."""
        rows = []
        bases = [b for b in ("fixed", "tod") if b in self.controllers]
        for base in bases:
            for c in self.controllers:
                if c == base:
                    continue
                for key, unit, definition, better in EVAL_KPIS:
                    iv, rel = paired_difference(self.values(c, key), self.values(base, key))
                    rows.append({"kpi": key, "unit": unit, "controller": c, "baseline": base,
                                 "difference": iv.mean, "ci95_low": iv.low,
                                 "ci95_high": iv.high, "relative_pct": 100 * rel, "n": iv.n,
                                 "better": better, "definition": definition})
        return pd.DataFrame(rows)

    def annual_table(self) -> pd.DataFrame:
        """Annualised savings against each baseline: per-period saving × working days.

        Saving = baseline − controller (positive = better), per day, then the
        paired mean and CI × ``working_days_per_year``.
        """
        sc = self.scenario
        days = sc.working_days_per_year
        from gpssignal.model.io import format_clock
        period = (f"{format_clock(sc.start_clock_s)}-"
                  f"{format_clock(sc.start_clock_s + sc.duration_s)} on {days} working days; "
                  "all vehicles arriving in the period, all approaches and directions, "
                  "until they leave the network")
        rows = []
        for base in [b for b in ("fixed", "tod") if b in self.controllers]:
            for c in self.controllers:
                if c == base:
                    continue
                for key, (unit, factor) in ANNUAL.items():
                    iv, _ = paired_difference(self.values(base, key), self.values(c, key))
                    rows.append({"controller": c, "baseline": base, "quantity": key,
                                 "saving_per_year": iv.mean * days * factor,
                                 "ci95_low": iv.low * days * factor,
                                 "ci95_high": iv.high * days * factor, "unit": unit,
                                 "working_days_per_year": days, "counted": period})
        return pd.DataFrame(rows)

    def interval_means(self) -> pd.DataFrame:
        """Per controller and 15-min interval: the mean over replications of each column."""
        frames = []
        for r in self.replications:
            df = r.intervals.copy()
            df.insert(0, "controller", r.controller)
            df.insert(1, "seed", r.seed)
            frames.append(df)
        allr = pd.concat(frames, ignore_index=True)
        num = [c for c in allr.columns if c not in ("controller", "seed", "interval_start")
               and pd.api.types.is_numeric_dtype(allr[c])]
        g = allr.groupby(["controller", "t0_s", "interval_start"], sort=False)[num]
        out = g.mean().drop(columns=["t0_s"], errors="ignore").reset_index()
        return out

    def approach_means(self) -> pd.DataFrame:
        """Per controller and approach: the mean over replications."""
        frames = []
        for r in self.replications:
            df = r.approaches.copy()
            df.insert(0, "controller", r.controller)
            frames.append(df)
        allr = pd.concat(frames, ignore_index=True)
        num = [c for c in allr.columns if pd.api.types.is_numeric_dtype(allr[c])]
        return allr.groupby(["controller", "junction", "approach_link"],
                            sort=False)[num].mean().reset_index()

    def switches(self) -> pd.DataFrame:
        """Every program switch of every replication."""
        frames = [r.switches.assign(controller=r.controller, seed=r.seed)
                  for r in self.replications if len(r.switches)]
        cols = ["controller", "seed", "t_s", "clock", "junction", "from_program",
                "to_program", "hold_s"]
        if not frames:
            return pd.DataFrame(columns=cols)
        return pd.concat(frames, ignore_index=True)[cols]

    def showcase(self, controller: str) -> Showcase | None:
        for r in self.replications:
            if r.controller == controller and r.showcase is not None:
                return r.showcase
        return None

    def meta(self) -> dict[str, Any]:
        sc = self.scenario
        return {"scenario": sc.name, "scenario_hash": scenario_hash(sc), "version": __version__,
                "seeds": self.seeds, "controllers": self.controllers,
                "baseline": self.baseline, "replications": len(self.seeds),
                "workers": self.workers, "wall_s": round(self.wall_s, 1),
                "showcase_seed": self.seeds[0], "model": self.model_info,
                "working_days_per_year": sc.working_days_per_year}


def check_model(scenario: Scenario, model: GpsModel, seeds: list[int]) -> dict[str, Any]:
    """Refuse a model trained for another scenario or on the evaluation days.

    Returns the model's identity for the output's metadata.
    """
    prov = model.provenance or {}
    h = scenario_hash(scenario)
    trained_for = prov.get("scenario_hash")
    if trained_for is not None and trained_for != h:
        raise ScenarioError(f"model: trained for scenario hash {trained_for}, this scenario "
                            f"is {h}; retrain it (gpssignal train)")
    overlap = sorted(set(prov.get("training_seeds", [])) & set(seeds))
    if overlap:
        raise ScenarioError(f"first_seed: evaluation days {overlap} were training days of "
                            "the model; choose seeds the model has not seen")
    return {"scenario_hash": trained_for, "training_seeds": prov.get("training_seeds", []),
            "training_days": prov.get("training_days", []), "version": prov.get("version")}


def _showcase(result: SimResult) -> Showcase:
    sc, net = result.scenario, result.network
    assert result.trajectories is not None
    tr = result.trajectories
    links = set()
    for st in sc.stretches[:1]:
        links |= {net.link_index(x) for x in st.links}
    app = monitored_approach(result)
    if app is not None:
        links.add(app)
    keep = np.isin(tr["link"], sorted(links))
    traj = pd.DataFrame({k: tr[k][keep] for k in ("t_s", "vid", "link", "pos_m", "speed_mps")})
    traj["link"] = np.array(net.link_ids, dtype=object)[traj["link"].to_numpy()]
    groups = [f"{j.id}.{g}" for j in sc.junctions for g in j.groups]
    log = result.signal_log
    signals = pd.DataFrame({"t_s": log["t_s"],
                            "group": np.array(groups, dtype=object)[log["group"]],
                            "state": log["state"]})
    if app is not None:
        cols = np.flatnonzero(net.lane_link[result.queue_lanes] == app)
        q = result.queue_m[:, cols].max(axis=1)
    else:
        q = np.zeros(len(result.queue_t_s))
    queue = pd.DataFrame({"t_s": result.queue_t_s, "queue_m": q})
    vids = np.unique(traj["vid"].to_numpy())
    arr = result.arrivals
    desired = {}
    if app is not None:
        vmax = float(net.link_vmax_mps[app])
        desired = {int(v): float(vmax * arr.speed_factor[v]) for v in vids}
    return Showcase(trajectories=traj, signals=signals, queue=queue, desired_speed_mps=desired)


def _replicate(task: tuple[Scenario, str, GpsModel | None, int, ProbeSettings | None, bool]
               ) -> Replication:
    """One controller on one day (a picklable task for the process pool)."""
    scenario, kind, model, seed, probes, showcase = task
    t0 = time.perf_counter()
    if kind == "gps":
        if model is None:
            raise ScenarioError("controller 'gps' needs a model")
        result, _, _, _ = run_gps(scenario, model, seed=seed, probes=probes,
                                  record_trajectories=showcase)
    else:
        result, _ = run_scenario(scenario, make_controller(kind, scenario), seed=seed,
                                 record_trajectories=showcase)
    tables = run_tables(result)
    kpis = replication_kpis(result, tables)
    return Replication(controller=kind, seed=seed, kpis=kpis, intervals=tables["intervals"],
                       approaches=tables["approaches"], switches=tables["switches"],
                       wall_s=time.perf_counter() - t0,
                       showcase=_showcase(result) if showcase else None)


def evaluate_controllers(scenario: Scenario, controllers: list[str], seeds: list[int],
                         model: GpsModel | None = None, probes: ProbeSettings | None = None,
                         workers: int = 2,
                         progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Run every controller on every seed (day) and collect the replications.

    Parameters
    ----------
    scenario : Scenario
    controllers : list of str
        Names among ``fixed``, ``tod``, ``gps``; the first of ``fixed``/``tod``
        present is the baseline.
    seeds : list of int
        One seed per day; the first day is the showcase kept in detail.
    model : GpsModel, optional
        Needed when ``gps`` is evaluated.
    probes : ProbeSettings, optional
        The GPS feed (default: the scenario's).
    workers : int
        Processes; results do not depend on it.
    progress : callable, optional
        ``progress(done, total)`` after each finished run.
    """
    if not controllers:
        raise ScenarioError("controllers = '': name at least one controller")
    if len(set(controllers)) != len(controllers):
        raise ScenarioError(f"controllers = {','.join(controllers)!r}: names repeat")
    for c in controllers:
        if c == "gps" and model is None:
            raise ScenarioError("controllers includes 'gps': needs a model")
        if c != "gps":
            make_controller(c, scenario)  # raises for unknown names
    if not seeds:
        raise ScenarioError("replications = 0: must be at least 1")
    info = check_model(scenario, model, seeds) if model is not None else {}
    t0 = time.perf_counter()
    tasks = [(scenario, c, model if c == "gps" else None, s, probes, k == 0)
             for k, s in enumerate(seeds) for c in controllers]
    reps: list[Replication] = []
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            reps.append(_replicate(t))
            if progress:
                progress(len(reps), len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for r in pool.map(_replicate, tasks):
                reps.append(r)
                if progress:
                    progress(len(reps), len(tasks))
    baseline = next((b for b in ("fixed", "tod") if b in controllers), controllers[0])
    return Evaluation(scenario=scenario, controllers=list(controllers), seeds=list(seeds),
                      baseline=baseline, replications=reps, workers=workers,
                      wall_s=time.perf_counter() - t0, model_info=info)


def train_for_evaluation(scenario: Scenario, work_dir: str | Path, days: int,
                         eval_seeds: list[int], candidates: int = 16, workers: int = 2,
                         progress: Callable[[str, int, int], None] | None = None
                         ) -> tuple[GpsModel, list[int]]:
    """Simulate ``days`` history days and train a GPS model on them.

    The history uses seeds ``scenario.seed, scenario.seed + 1, ...``, which
    must not overlap the evaluation seeds (raises :class:`ScenarioError`).
    The history is written to ``work_dir/history``. Returns the model and the
    history seeds.
    """
    from gpssignal.experiment.history import simulate_history
    from gpssignal.experiment.training import train

    seeds = list(range(scenario.seed, scenario.seed + days))
    overlap = sorted(set(seeds) & set(eval_seeds))
    if overlap:
        raise ScenarioError(f"first_seed: evaluation days {overlap} would also be training "
                            f"days (history seeds {seeds[0]}..{seeds[-1]}); choose another")
    hist = Path(work_dir) / "history"
    simulate_history(scenario, days, hist, first_seed=scenario.seed,
                     progress=(lambda d, n: progress("history", d, n)) if progress else None)
    model = train(scenario, hist, candidates=candidates, workers=workers, progress=progress)
    return model, seeds
