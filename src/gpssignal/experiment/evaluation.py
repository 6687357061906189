"""Paired evaluation: every plan of a junction, side by side, over N simulated days.

Each replication is one weekday (one seed: its day type, demand level, peak
timing and arrivals). Every arm runs every day with the same demand
realisation (common random numbers, :func:`gpssignal.sim.engine.day_streams`),
so KPIs are compared day by day.

The arms, by default:

* every program of the junction fixed all period (``fixed:normal``,
  ``fixed:peak``, ...);
* the time-of-day plan (``tod``), when the scenario has a schedule;
* the GPS controller (``gps``), when a model is given;
* the hindsight bound (``oracle``, :mod:`gpssignal.experiment.oracle`).

The GPS controller is compared against the scenario's declared **existing
plan** (what the junction runs today, the baseline of the annual savings),
against the **best fixed program** (the program with the least time loss on
*selection days*, the model's training days, never the evaluation days) and
against time of day; the **capture ratio** (existing − GPS) ÷ (existing −
oracle) says how much of what plan selection could give the controller gets.

The runs are independent tasks on :func:`~gpssignal.experiment.parallel.map_runs`;
results are put back in task order, so they do not depend on the backend.
One day (the *showcase*, the first replication) also keeps the detail the
report plots: trajectories on the monitored stretch, signal states, queues.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
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
    replication_record,
)
from gpssignal.evaluate.statistics import (
    capture_ratio,
    mean_ci,
    needs_more_days,
    paired_difference,
    relative_change,
    verdict,
)
from gpssignal.experiment.oracle import ORACLE, search_plan
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.run import ControllerSpec, RunSpec, make_controller, run_one
from gpssignal.model.io import format_clock, scenario_hash
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.sim.engine import SimResult
from gpssignal.sim.network import CompiledNetwork, compile_network

__all__ = ["Evaluation", "Replication", "Showcase", "StopRule", "check_model", "default_arms",
           "evaluate_controllers", "select_best_fixed", "showcase_window",
           "train_for_evaluation"]

#: The day type of a scenario without a mix.
ORDINARY = "ordinary"
#: KPIs whose capture ratio is reported.
CAPTURE_KPIS = ("total_time_loss_veh_h", "co2_kg")
CAPTURE_COLUMNS = ["controller", "baseline", "kpi", "capture_ratio", "ci95_low", "ci95_high",
                   "bounded", "note", "n"]
#: KPIs reported per day type.
TYPE_KPIS = ("mean_time_loss_s", "total_time_loss_veh_h", "stretch_speed_peak_kmh", "co2_kg")
#: The most days ``until_ci`` may run (each day is one simulation per arm).
MAX_UNTIL_CI_DAYS = 1_000

#: KPIs that are annualised (per-period saving × working days per year), with
#: the unit of the annual figure and the factor from the per-period unit.
ANNUAL = {
    "total_time_loss_veh_h": ("veh·h/year", 1.0),
    "co2_kg": ("t CO2/year", 1e-3),
    "fuel_l": ("L/year", 1.0),
    "total_time_loss_person_h": ("person·h/year", 1.0),
}


#: Length of the showcase window: the minutes of the showcase day that the
#: time–space diagram shows, centred on the peak hour [min].
SHOWCASE_WINDOW_MIN = 15.0


def showcase_window(scenario: Scenario, minutes: float = SHOWCASE_WINDOW_MIN
                    ) -> tuple[float, float]:
    """Return a window of ``minutes`` at the middle of the peak hour [simulation s]."""
    if scenario.peak_clock_s is not None:
        mid = (scenario.peak_clock_s[0] + scenario.peak_clock_s[1]) / 2 - scenario.start_clock_s
    else:
        mid = scenario.duration_s / 2
    return mid - minutes * 30, mid + minutes * 30


@dataclass
class Showcase:
    """Detail of one day under one controller, for the report's plots.

    ``trajectories``: t_s, vid, link, pos_m, speed_mps of the trajectory
    rows the report draws, in recorded order: on the monitored stretch's
    links within :func:`showcase_window`, and each vehicle's first row on
    the stretch's last link (the monitored approach); ``signals``: t_s,
    junction, group, state (0 red, 1 red-amber, 2 green, 3 amber) of every
    signal group; ``queue``: t_s and queue_m of the monitored approach (1 s
    samples); ``desired_speed_mps`` per vehicle id on the monitored approach.
    """

    trajectories: pd.DataFrame
    signals: pd.DataFrame
    queue: pd.DataFrame
    desired_speed_mps: dict[int, float]


@dataclass
class Replication:
    """One arm on one day: its KPIs and small per-run tables.

    ``day_type`` is the day's type (``ordinary`` without a mix); ``plan``
    the oracle's schedule of the day (one program per slot), else empty.
    """

    controller: str
    seed: int
    kpis: dict[str, float]
    intervals: pd.DataFrame
    approaches: pd.DataFrame
    switches: pd.DataFrame
    wall_s: float
    day_type: str = ORDINARY
    plan: tuple[str, ...] = ()
    showcase: Showcase | None = None
    #: Per approach and movement: vehicles, HCM control delay and LOS (run's
    #: ``movements`` table); None for replications made before it was kept.
    movements: pd.DataFrame | None = None


@dataclass
class Evaluation:
    """All replications of an evaluation, with the statistics derived from them.

    ``baseline`` is the existing plan's label; ``best_fixed`` the fixed
    program chosen on the selection days (``selection``: the days and each
    program's mean time loss there), or None when fixed programs were not
    evaluated.
    """

    scenario: Scenario
    controllers: list[str]
    seeds: list[int]
    baseline: str
    replications: list[Replication]
    workers: int
    wall_s: float
    model_info: dict[str, Any] = field(default_factory=dict)
    best_fixed: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    stop_rule: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> pd.DataFrame:
        """One row per (controller, seed) with its day type and every KPI."""
        return pd.DataFrame([{"controller": r.controller, "seed": r.seed,
                              "day_type": r.day_type, **r.kpis,
                              "plan": " ".join(r.plan)} for r in self.replications])

    def values(self, controller: str, kpi: str, day_type: str | None = None) -> np.ndarray:
        """Return a KPI of one arm, in seed order (only days of ``day_type`` if given)."""
        by_seed = {r.seed: r.kpis.get(kpi, np.nan) for r in self.replications
                   if r.controller == controller}
        seeds = self.seeds if day_type is None else self.seeds_of(day_type)
        return np.array([by_seed[s] for s in seeds], dtype=float)

    def day_types(self) -> dict[int, str]:
        """Each evaluation day's type, by seed."""
        return {r.seed: r.day_type for r in self.replications}

    def seeds_of(self, day_type: str) -> list[int]:
        """Return the evaluation days of one type, in seed order."""
        types = self.day_types()
        return [s for s in self.seeds if types.get(s) == day_type]

    def comparison_bases(self) -> list[str]:
        """Return the bases of comparison: existing plan, best fixed program, time of day."""
        bases = [self.baseline]
        for b in (self.best_fixed, "tod"):
            if b is not None and b in self.controllers and b not in bases:
                bases.append(b)
        return bases

    def kpi_table(self, day_type: str | None = None) -> pd.DataFrame:
        """Per arm and KPI: mean and 95 % CI over the days (of ``day_type`` if given)."""
        rows = []
        for key, unit, definition, _ in EVAL_KPIS:
            for c in self.controllers:
                iv = mean_ci(self.values(c, key, day_type))
                rows.append({"kpi": key, "unit": unit, "controller": c, "mean": iv.mean,
                             "ci95_low": iv.low, "ci95_high": iv.high, "n": iv.n,
                             "definition": definition})
        return pd.DataFrame(rows)

    def difference_table(self, day_type: str | None = None) -> pd.DataFrame:
        """Paired differences of every arm against each comparison base.

        ``relative_pct`` is mean(arm − base) ÷ mean(base) with Fieller's
        interval (``rel_ci95_low``/``rel_ci95_high``), which accounts for the
        base's own uncertainty; ``verdict`` is saves / no detectable
        difference / costs (gains / loses for higher-is-better KPIs) at 95 %.
        """
        rows = []
        for base in self.comparison_bases():
            for c in self.controllers:
                if c == base:
                    continue
                for key, unit, definition, better in EVAL_KPIS:
                    rows.append(_difference_row(self.values(c, key, day_type),
                                                self.values(base, key, day_type),
                                                key, unit, c, base, better, definition))
        return pd.DataFrame(rows)

    def capture_table(self, day_type: str | None = None) -> pd.DataFrame:
        """Capture ratio of each arm: (existing − arm) ÷ (existing − oracle), Fieller CI.

        Only when the oracle was evaluated; for the time loss and CO₂ KPIs.
        """
        if ORACLE not in self.controllers:
            return pd.DataFrame(columns=CAPTURE_COLUMNS)
        rows = []
        for c in self.controllers:
            if c in (self.baseline, ORACLE):
                continue
            for key in CAPTURE_KPIS:
                iv = capture_ratio(self.values(self.baseline, key, day_type),
                                   self.values(c, key, day_type),
                                   self.values(ORACLE, key, day_type))
                rows.append({"controller": c, "baseline": self.baseline, "kpi": key,
                             "capture_ratio": iv.mean, "ci95_low": iv.low,
                             "ci95_high": iv.high, "bounded": iv.bounded,
                             "note": iv.reason, "n": iv.n})
        return pd.DataFrame(rows, columns=CAPTURE_COLUMNS)

    def day_type_table(self) -> pd.DataFrame:
        """Per day type seen: days, each arm's mean time loss, and GPS vs bases."""
        rows = []
        for t in sorted(set(self.day_types().values())):
            n = len(self.seeds_of(t))
            for c in self.controllers:
                for key, unit, _, better in EVAL_KPIS:
                    if key not in TYPE_KPIS:
                        continue
                    iv = mean_ci(self.values(c, key, t))
                    row = {"day_type": t, "days": n, "controller": c, "kpi": key,
                           "unit": unit, "mean": iv.mean, "ci95_low": iv.low,
                           "ci95_high": iv.high}
                    if c != self.baseline:
                        d, _ = paired_difference(self.values(c, key, t),
                                                 self.values(self.baseline, key, t))
                        row.update({"vs_existing": d.mean, "vs_existing_ci95_low": d.low,
                                    "vs_existing_ci95_high": d.high,
                                    "verdict": verdict(d, better)})
                    rows.append(row)
        return pd.DataFrame(rows)

    def annual_table(self) -> pd.DataFrame:
        """Annualised savings against each comparison base: per-period saving × working days.

        Saving = base − arm (positive = better), per day, then the paired
        mean and CI × ``working_days_per_year``.
        """
        sc = self.scenario
        days = sc.working_days_per_year
        period = (f"{format_clock(sc.start_clock_s)}-"
                  f"{format_clock(sc.start_clock_s + sc.duration_s)} on {days} working days; "
                  "all vehicles arriving in the period, all approaches and directions, "
                  "until they leave the network")
        rows = []
        for base in self.comparison_bases():
            for c in self.controllers:
                if c == base:
                    continue
                for key, (unit, factor) in ANNUAL.items():
                    iv, _ = paired_difference(self.values(base, key), self.values(c, key))
                    rows.append({"controller": c, "baseline": base, "quantity": key,
                                 "saving_per_year": iv.mean * days * factor,
                                 "ci95_low": iv.low * days * factor,
                                 "ci95_high": iv.high * days * factor, "unit": unit,
                                 "verdict": verdict(iv, "higher", words=("saves", "costs")),
                                 "working_days_per_year": days, "counted": period})
        return pd.DataFrame(rows)

    def interval_means(self) -> pd.DataFrame:
        """Per controller and 15-min interval: the mean over replications of each column."""
        reps = self.replications
        allr = _stacked([r.intervals for r in reps], {"controller": [r.controller for r in reps],
                                                      "seed": [r.seed for r in reps]})
        num = [c for c in allr.columns if c not in ("controller", "seed", "interval_start")
               and pd.api.types.is_numeric_dtype(allr[c])]
        g = allr.groupby(["controller", "t0_s", "interval_start"], sort=False)[num]
        out = g.mean().drop(columns=["t0_s"], errors="ignore").reset_index()
        return out

    def approach_means(self) -> pd.DataFrame:
        """Per controller and approach: the mean over replications."""
        reps = self.replications
        allr = _stacked([r.approaches for r in reps], {"controller": [r.controller for r in reps]})
        num = [c for c in allr.columns if pd.api.types.is_numeric_dtype(allr[c])]
        return allr.groupby(["controller", "junction", "approach_link"],
                            sort=False)[num].mean().reset_index()

    def movement_means(self) -> pd.DataFrame:
        """Per controller, approach and movement: vehicles and control delay, means over days.

        The delay is the mean of the per-day control delays of the days on
        which the movement had vehicles (a day without any has no delay).
        """
        reps = [r for r in self.replications if r.movements is not None and len(r.movements)]
        cols = ["controller", "junction", "approach_link", "movement", "vehicles",
                "control_delay_s"]
        if not reps:
            return pd.DataFrame(columns=cols)
        allr = _stacked([r.movements for r in reps if r.movements is not None],
                        {"controller": [r.controller for r in reps]}, first=False)
        return allr.groupby(["controller", "junction", "approach_link", "movement"],
                            sort=False)[["vehicles", "control_delay_s"]].mean().reset_index()

    def switches(self) -> pd.DataFrame:
        """Every program switch of every replication."""
        reps = [r for r in self.replications if len(r.switches)]
        cols = ["controller", "seed", "t_s", "clock", "junction", "from_program",
                "to_program", "hold_s"]
        if not reps:
            return pd.DataFrame(columns=cols)
        return _stacked([r.switches for r in reps], {"controller": [r.controller for r in reps],
                                                     "seed": [r.seed for r in reps]},
                        first=False)[cols]

    def showcase(self, controller: str) -> Showcase | None:
        """Return the showcase run of ``controller``, if one was recorded."""
        for r in self.replications:
            if r.controller == controller and r.showcase is not None:
                return r.showcase
        return None

    def meta(self) -> dict[str, Any]:
        """Return the evaluation's metadata (scenario, seeds, arms, model) for meta.json."""
        sc = self.scenario
        return {"scenario": sc.name, "scenario_hash": scenario_hash(sc), "version": __version__,
                "seeds": self.seeds, "controllers": self.controllers,
                "baseline": self.baseline, "replications": len(self.seeds),
                "showcase_seed": self.seeds[0], "model": self.model_info,
                "working_days_per_year": sc.working_days_per_year,
                "existing_plan": self.baseline, "best_fixed": self.best_fixed,
                "best_fixed_selection": self.selection, "until_ci": self.stop_rule,
                "day_types": {str(s): t for s, t in self.day_types().items()},
                "day_type_mix": {d.name: d.frequency for d in sc.day_types}}


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
            "training_days": prov.get("training_days", []), "version": prov.get("version"),
            "method": (prov.get("method") or {}).get("name", "same-seed")}


def _showcase(result: SimResult, rows: _ShowcaseRows | None = None) -> Showcase:
    """Return the showcase of a run.

    ``rows``: the trajectory rows kept during the run (its trajectory sink),
    else they are taken from the result's trajectories.
    """
    sc, net = result.scenario, result.network
    assert result.trajectories is not None
    if rows is None:
        rows = _ShowcaseRows(sc, net)
        rows(result.trajectories)
    traj = pd.DataFrame(rows.columns(result.trajectories))
    # The links' names, taken from the few names as text (not one Python string per row).
    traj["link"] = pd.array(net.link_ids, dtype="str").take(traj["link"].to_numpy())
    groups = [f"{j.id}.{g}" for j in sc.junctions for g in j.groups]
    log = result.signal_log
    signals = pd.DataFrame({"t_s": log["t_s"],
                            "group": pd.array(groups, dtype="str").take(log["group"]),
                            "state": log["state"]})
    app = monitored_approach(result)
    if app is not None:
        cols = np.flatnonzero(net.lane_link[result.queue_lanes] == app)
        q = result.queue_m[:, cols].max(axis=1)
    else:
        q = np.zeros(len(result.queue_t_s))
    queue = pd.DataFrame({"t_s": result.queue_t_s, "queue_m": q})
    desired = {}
    if app is not None:
        vids = np.unique(traj["vid"].to_numpy())
        vmax = float(net.link_vmax_mps[app])
        desired = dict(zip(vids.tolist(), (vmax * result.arrivals.speed_factor[vids]).tolist(),
                           strict=True))
    return Showcase(trajectories=traj, signals=signals, queue=queue, desired_speed_mps=desired)


class _ShowcaseRows:
    """Keeps the trajectory rows the showcase figures draw, block by block.

    Only those (a day's rows are some 0.5 M per arm): the rows on the first
    stretch's links (the monitored approach, its last link, among them)
    within :func:`showcase_window`, for the time–space diagram, and each
    vehicle's first row on that last link (its projected arrival in the
    Purdue diagram), in recorded order. Called with a run's trajectories
    as blocks of consecutive steps (a trajectory sink of
    :func:`~gpssignal.experiment.run.run_one`), or with the whole day's as
    one block: the same rows.
    """

    _COLUMNS = ("t_s", "vid", "link", "pos_m", "speed_mps")

    def __init__(self, scenario: Scenario, network: CompiledNetwork) -> None:
        self.shown = np.zeros(network.n_links, dtype=bool)
        self.last: int | None = None
        if scenario.stretches:
            links = scenario.stretches[0].links
            self.shown[[network.link_index(x) for x in links]] = True
            self.last = network.link_index(links[-1])
        self.t0, self.t1 = showcase_window(scenario)
        #: Per vehicle id: whether its first row on the last link was seen.
        self.seen = np.zeros(0, dtype=bool)
        self.parts: list[dict[str, np.ndarray]] = []

    def __call__(self, block: dict[str, np.ndarray]) -> None:
        """Keep the rows of ``block`` (trajectory columns, steps in order) that are drawn."""
        t, link = block["t_s"], block["link"]
        # The rows come step after step, so those of the window are a slice.
        i0 = int(np.searchsorted(t, self.t0, side="left"))
        i1 = int(np.searchsorted(t, self.t1, side="right"))
        keep = np.zeros(len(t), dtype=bool)
        keep[i0:i1] = self.shown[link[i0:i1]]
        if self.last is not None:
            on_last = np.flatnonzero(link == self.last)
            vid = block["vid"][on_last]
            if vid.size and vid.max() >= len(self.seen):
                self.seen = np.concatenate([self.seen, np.zeros(vid.max() + 1 - len(self.seen),
                                                                dtype=bool)])
            # Each vehicle's first row there in this block: the least row
            # number per vehicle id (an unbuffered minimum per id, much
            # cheaper than sorting the rows); kept if not seen before.
            n = len(on_last)
            least = np.full(len(self.seen), n)
            np.minimum.at(least, vid, np.arange(n))
            first_seen = np.flatnonzero((least < n) & ~self.seen)
            keep[on_last[least[first_seen]]] = True
            self.seen[first_seen] = True
        rows = np.flatnonzero(keep)
        self.parts.append({k: block[k][rows] for k in self._COLUMNS})

    def columns(self, empty: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the rows kept, as columns (``empty``: trajectory columns giving the types)."""
        parts = [*self.parts, {k: empty[k][:0] for k in self._COLUMNS}]
        return {k: np.concatenate([p[k] for p in parts]) for k in self._COLUMNS}


def _stacked(frames: list[pd.DataFrame], labels: dict[str, list[Any]],
             first: bool = True) -> pd.DataFrame:
    """Concatenate per-replication frames with each one's labels as columns.

    ``labels`` holds one value per frame for each new column, put first
    (in order) or, with ``first=False``, last. The same frame as inserting
    the labels into a copy of each frame before concatenating, without the
    copies (an evaluation stacks hundreds of small frames, several times).
    """
    allr = pd.concat(frames, ignore_index=True)
    counts = [len(f) for f in frames]
    for k, (name, values) in enumerate(labels.items()):
        strings = all(isinstance(v, str) for v in values)
        column = np.repeat(np.array(values, dtype=object if strings else None), counts)
        if first:
            allr.insert(k, name, column)
        else:
            allr[name] = column
    return allr


def _difference_row(values: np.ndarray, base: np.ndarray, key: str, unit: str, c: str,
                    b: str, better: str, definition: str) -> dict[str, Any]:
    iv, _ = paired_difference(values, base)
    rel = relative_change(values, base)
    return {"kpi": key, "unit": unit, "controller": c, "baseline": b,
            "difference": iv.mean, "ci95_low": iv.low, "ci95_high": iv.high,
            "relative_pct": 100 * rel.mean, "rel_ci95_low": 100 * rel.low,
            "rel_ci95_high": 100 * rel.high, "n": iv.n, "better": better,
            "verdict": verdict(iv, better) if better in ("lower", "higher") else "",
            "definition": definition}


def _replication(spec_label: str, seed: int, result: SimResult, t0: float, showcase: bool,
                 plan: tuple[str, ...] = (), rows: _ShowcaseRows | None = None) -> Replication:
    kpis, tables = replication_record(result)
    return Replication(controller=spec_label, seed=seed, kpis=kpis,
                       intervals=tables["intervals"], approaches=tables["approaches"],
                       switches=tables["switches"], wall_s=time.perf_counter() - t0,
                       day_type=result.day.day_type, plan=plan,
                       showcase=_showcase(result, rows) if showcase else None,
                       movements=tables["movements"][["junction", "approach_link", "movement",
                                                      "vehicles", "control_delay_s"]])


def _replicate(spec: RunSpec) -> Replication:
    """One arm on one day (a picklable task); the showcase day records trajectories.

    The showcase day keeps only the trajectory rows its figures draw, as the
    run goes (:class:`_ShowcaseRows`), not the whole day's.
    """
    t0 = time.perf_counter()
    label = spec.controller.label
    plan: tuple[str, ...] = ()
    if label == ORACLE:
        found = search_plan(spec.scenario, spec.seed, day_type=spec.day_type)
        plan = found.slots
        if not spec.record_trajectories:
            return _replication(ORACLE, spec.seed, found.result, t0, False, plan)
        # The search keeps no trajectories: rerun the best plan.
        best = ControllerSpec(kind="plan", name=ORACLE, plan=found.entries(spec.scenario))
        spec = RunSpec(scenario=spec.scenario, controller=best, seed=spec.seed,
                       record_trajectories=True, day_type=spec.day_type)
    rows = None
    if spec.record_trajectories:
        rows = _ShowcaseRows(spec.scenario, compile_network(spec.scenario))
    result = run_one(spec, trajectory_sink=rows).result
    return _replication(label, spec.seed, result, t0, spec.record_trajectories, plan, rows)


def default_arms(scenario: Scenario, model: GpsModel | None = None,
                 oracle: bool = True) -> list[str]:
    """Every program fixed, time of day (with a schedule), GPS (with a model), oracle."""
    arms = [f"fixed:{p}" for p in scenario.program_names]
    if scenario.schedule:
        arms.append("tod")
    if model is not None:
        arms.append("gps")
    if oracle and len(scenario.program_names) > 1:
        arms.append(ORACLE)
    return arms


def _normalise(scenario: Scenario, name: str) -> str:
    """Name the default program ``fixed`` stands for, when every junction shares it."""
    defaults = {j.default_program for j in scenario.junctions}
    if name == "fixed" and len(defaults) == 1:
        return f"fixed:{defaults.pop()}"
    return name


def _arm_specs(scenario: Scenario, arms: list[str], model: GpsModel | None
               ) -> list[ControllerSpec]:
    specs = []
    for c in arms:
        if c == ORACLE:
            specs.append(ControllerSpec(kind="plan", plan=((scenario.start_clock_s, scenario
                                                            .junctions[0].default_program),),
                                        name=ORACLE))
            continue
        spec = ControllerSpec.parse(c, model)
        if spec.kind != "gps":
            make_controller(spec, scenario)  # raises for programs the scenario lacks
        specs.append(spec)
    return specs


def _selection_tasks(scenario: Scenario, seeds: list[int]) -> list[RunSpec]:
    """Every program fixed on every selection day, program by program."""
    return [RunSpec(scenario=scenario, controller=ControllerSpec(kind="fixed", program=p),
                    seed=seed, probes=scenario.probes)
            for p in scenario.program_names for seed in seeds]


def _selection_record(scenario: Scenario, seeds: list[int], outcomes: list[Any]
                      ) -> tuple[str, dict[str, Any]]:
    """Pick the best fixed program from the :func:`_selection_tasks` outcomes (in order)."""
    n = len(seeds)
    table = {}
    for j, p in enumerate(scenario.program_names):
        chunk = outcomes[j * n:(j + 1) * n]
        veh = sum(r.vehicles for r in chunk)
        table[f"fixed:{p}"] = sum(r.time_loss_s for r in chunk) / max(veh, 1)
    best = min(table, key=lambda k: table[k])
    return best, {"seeds": list(seeds), "mean_time_loss_s": table, "best_fixed": best,
                  "rule": "least mean time loss per vehicle on the selection days"}


def select_best_fixed(scenario: Scenario, seeds: list[int],
                      backend: LocalBackend | DaskBackend | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> tuple[str, dict[str, Any]]:
    """Return the fixed program with the least mean time loss per vehicle on ``seeds``.

    An engineer would pick the best fixed program from days already seen, so
    ``seeds`` must be days other than the evaluation's (the model's training
    days by default). Returns its label and the selection record.
    """
    from gpssignal.experiment.training import run_day

    outcomes = map_runs(run_day, _selection_tasks(scenario, seeds), backend, progress)
    return _selection_record(scenario, seeds, outcomes)


def _task(task: tuple[str, RunSpec]) -> Any:
    """One run of an evaluation: a selection day (``"select"``) or an arm on a day."""
    kind, spec = task
    if kind == "select":
        from gpssignal.experiment.training import run_day

        return run_day(spec)
    return _replicate(spec)


def _check_arms(scenario: Scenario, arms: list[str], seeds: list[int],
                model: GpsModel | None) -> list[str]:
    if not arms:
        raise ScenarioError("controllers = '': name at least one controller")
    arms = [_normalise(scenario, c) for c in arms]
    if len(set(arms)) != len(arms):
        raise ScenarioError(f"controllers = {','.join(arms)!r}: names repeat")
    if "gps" in arms and model is None:
        raise ScenarioError("controllers includes 'gps': needs a model")
    if not seeds:
        raise ScenarioError("replications = 0: must be at least 1")
    return arms


@dataclass(frozen=True, slots=True)
class _Days:
    """Runs every arm on a batch of days (the evaluation's fixed settings)."""

    scenario: Scenario
    specs: list[ControllerSpec]
    probes: ProbeSettings | None
    showcase_seed: int
    day_type: str | None
    backend: LocalBackend | DaskBackend | None
    progress: Callable[[int, int], None] | None
    #: Called with the showcase day's replications (arm order) as soon as
    #: they are all in, while the other runs go on.
    on_showcase: Callable[[list[Replication]], None] | None = None
    #: Called with every day's replications ((seed, arm) order) as soon as
    #: they are all in, while the selection runs go on.
    on_days: Callable[[list[Replication]], None] | None = None

    def tasks(self, seeds: list[int]) -> list[RunSpec]:
        """Every arm on every seed of ``seeds``, in (seed, arm) order."""
        return [RunSpec(scenario=self.scenario, controller=c, seed=s, probes=self.probes,
                        record_trajectories=s == self.showcase_seed, day_type=self.day_type)
                for s in seeds for c in self.specs]

    def run(self, seeds: list[int], selection: list[RunSpec] | None = None
            ) -> tuple[list[Replication], list[Any]]:
        """Every arm on every seed of ``seeds``, and the ``selection`` runs, in one batch.

        One batch keeps one pool of workers busy to the end (two batches
        would start the workers twice and leave one idle at the end of the
        first). Returns the replications in (seed, arm) order and the
        selection outcomes in task order.
        """
        days = self.tasks(seeds)
        extra = selection or []
        shown = {k for k, t in enumerate(days) if t.record_trajectories}
        got: dict[int, Replication] = {}
        day_results: dict[int, Replication] = {}

        def arrived(index: int, result: Any) -> None:
            if index in shown and self.on_showcase is not None:
                got[index] = result
                if len(got) == len(shown):
                    self.on_showcase([got[k] for k in sorted(got)])
            if index < len(days) and self.on_days is not None:
                day_results[index] = result
                if len(day_results) == len(days):
                    self.on_days([day_results[k] for k in range(len(days))])

        out = map_runs(_task, [("day", t) for t in days] + [("select", t) for t in extra],
                       self.backend, self.progress, on_result=arrived)
        return out[:len(days)], out[len(days):]


def evaluate_controllers(scenario: Scenario, controllers: list[str] | None, seeds: list[int],
                         model: GpsModel | None = None, probes: ProbeSettings | None = None,
                         backend: LocalBackend | DaskBackend | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         selection_seeds: list[int] | None = None,
                         until_ci: StopRule | None = None,
                         day_type: str | None = None,
                         on_showcase: Callable[[Evaluation], None] | None = None,
                         on_days: Callable[[Evaluation], None] | None = None
                         ) -> Evaluation:
    """Run every arm on every seed (day) and collect the replications.

    Parameters
    ----------
    scenario : Scenario
    controllers : list of str, optional
        Arms among ``fixed`` (the default program), ``fixed:PROGRAM``,
        ``tod``, ``gps``, ``oracle``; None: :func:`default_arms`. The
        scenario's existing plan is always added (it is the baseline).
    seeds : list of int
        One seed per day; the first day is the showcase kept in detail.
    model : GpsModel, optional
        Needed when ``gps`` is evaluated.
    probes : ProbeSettings, optional
        The GPS feed (default: the scenario's).
    backend : LocalBackend or DaskBackend, optional
        Where the runs go (default: this process); results do not depend on it.
    progress : callable, optional
        ``progress(done, total)`` after each finished run.
    selection_seeds : list of int, optional
        Days on which the best fixed program is chosen (default: the model's
        training days, else the ``len(seeds)`` days before the first seed).
    until_ci : StopRule, optional
        Keep adding days until the paired difference it names is precise
        enough, or its cap is reached.
    day_type : str, optional
        Run every day as this type of the scenario's mix (default: each day
        draws its type).
    on_showcase : callable, optional
        Called once, as soon as every arm's showcase day is in and while the
        other runs go on, with an :class:`Evaluation` of those runs only
        (``replications``: the showcase day of each arm; ``seeds``: the
        evaluation days asked for), e.g. to draw the showcase figures early.
    on_days : callable, optional
        Called once, as soon as every arm has run on every day of ``seeds``
        and while the selection runs of the best fixed program go on, with
        an :class:`Evaluation` of those runs (no ``best_fixed`` yet; the days
        ``until_ci`` adds come later).
    """
    arms = _check_arms(scenario, controllers if controllers is not None
                       else default_arms(scenario, model), seeds, model)
    baseline = scenario.baseline_plan
    if baseline not in arms:
        arms.insert(0, baseline)
    specs = _arm_specs(scenario, arms, model)
    info = check_model(scenario, model, seeds) if model is not None else {}
    t0 = time.perf_counter()
    best: str | None = None
    selection: dict[str, Any] = {}
    fixed = [a for a in arms if a.startswith("fixed:")]
    sel: list[int] | None = None  # None: no selection of the best fixed program
    if len(fixed) > 1 and set(fixed) >= {f"fixed:{p}" for p in scenario.program_names}:
        sel = selection_seeds or info.get("training_seeds") or list(
            range(max(0, seeds[0] - len(seeds)), seeds[0]))
        if set(sel) & set(seeds):
            raise ScenarioError(f"selection_seeds = {sel}: overlap the evaluation days")
    asked = list(seeds)

    def so_far(callback: Callable[[Evaluation], None] | None
               ) -> Callable[[list[Replication]], None] | None:
        """Hand ``callback`` an Evaluation of the replications in so far."""
        if callback is None:
            return None
        return lambda reps: callback(Evaluation(
            scenario=scenario, controllers=arms, seeds=list(asked), baseline=baseline,
            replications=reps, workers=backend.workers if backend else 1, wall_s=0.0,
            model_info=info))

    days = _Days(scenario, specs, probes, seeds[0], day_type, backend, progress,
                 so_far(on_showcase), so_far(on_days))
    reps, outcomes = days.run(list(seeds), _selection_tasks(scenario, sel)
                              if sel is not None else None)
    if sel is not None:
        best, selection = _selection_record(scenario, sel, outcomes)
    seeds = list(seeds)
    days = dataclasses.replace(days, on_showcase=None, on_days=None)  # once: the first batch
    while until_ci is not None and until_ci.wants_more(reps, seeds, baseline):
        more = list(range(seeds[-1] + 1, seeds[-1] + 1 + until_ci.batch(len(seeds))))
        reps += days.run(more)[0]
        seeds += more
    return Evaluation(scenario=scenario, controllers=arms, seeds=seeds, baseline=baseline,
                      replications=reps, workers=backend.workers if backend else 1,
                      wall_s=time.perf_counter() - t0, model_info=info, best_fixed=best,
                      selection=selection,
                      stop_rule=until_ci.describe(len(seeds)) if until_ci else {})


@dataclass(frozen=True, slots=True)
class StopRule:
    """``--until-ci``: add days until a paired difference's half-width is small enough.

    Parameters
    ----------
    kpi : str
        A KPI of :data:`EVAL_KPIS`.
    half_width : float
        Target 95 % half-width of (controller − existing plan) [KPI units].
    max_days : int
        Cap on the number of days.
    controller : str
        The arm compared with the existing plan (default ``gps``).
    """

    kpi: str
    half_width: float
    max_days: int
    controller: str = "gps"

    def __post_init__(self) -> None:
        """Check the rule; raise :class:`~gpssignal.errors.ScenarioError` if bad."""
        if self.kpi not in {k for k, _, _, _ in EVAL_KPIS}:
            raise ScenarioError(f"until_ci = {self.kpi!r}: unknown KPI")
        if not (self.half_width > 0 and np.isfinite(self.half_width)):
            raise ScenarioError(f"until_ci = {self.half_width!r}: the half-width must be > 0")
        if not 2 <= self.max_days <= MAX_UNTIL_CI_DAYS:
            raise ScenarioError(f"max_days = {self.max_days}: must be in 2..{MAX_UNTIL_CI_DAYS}")

    def wants_more(self, reps: list[Replication], seeds: list[int], baseline: str) -> bool:
        """Whether another batch of days is needed."""
        def vals(c: str) -> np.ndarray:
            by = {r.seed: r.kpis.get(self.kpi, np.nan) for r in reps if r.controller == c}
            return np.array([by.get(s, np.nan) for s in seeds])

        return needs_more_days(vals(self.controller), vals(baseline), self.half_width,
                               self.max_days)

    def batch(self, done: int) -> int:
        """Days to add next: as many again, at most up to the cap."""
        return max(1, min(done, self.max_days - done))

    def describe(self, days: int) -> dict[str, Any]:
        """Return the rule and where it stopped, for the output's metadata."""
        return {"kpi": self.kpi, "half_width": self.half_width, "max_days": self.max_days,
                "controller": self.controller, "days": days}


def train_for_evaluation(scenario: Scenario, work_dir: str | Path, days: int,
                         eval_seeds: list[int], candidates: int = 16,
                         backend: LocalBackend | DaskBackend | None = None,
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
    simulate_history(scenario, days, hist, first_seed=scenario.seed, backend=backend,
                     progress=(lambda d, n: progress("history", d, n)) if progress else None)
    model = train(scenario, hist, candidates=candidates, backend=backend, progress=progress)
    return model, seeds
