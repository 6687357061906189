"""Parameter sweeps of the GPS controller, paired against fixed timing.

A sweep evaluates *points*: settings of controller parameters (thresholds,
hysteresis, window, dwell, ...), probe-feed parameters (penetration, period,
latency, noise) and demand scaling. Each point runs the GPS controller on N
days (seeds). The baselines run once per (demand scale, day) and serve every
point with that demand: the scenario's existing plan (the paired baseline
of every saving), every program fixed all period, and the hindsight bound
(:mod:`gpssignal.experiment.oracle`), so each point's saving stands beside
what the best fixed program and the best plan of each day achieve.

Every run is a task with a key (its parameters, controller, seed, the
scenario's hash and the package version). Results go into a DuckDB file
(:class:`ResultStore`) the moment each run finishes, one committed row per
run, so a sweep killed at any moment loses no finished run; started again,
it skips the keys already stored and repeats none.

The tasks run through :func:`gpssignal.experiment.parallel.map_runs` on
a local process pool or ``dask.distributed``. A run's result depends only on its task, so the stored
results are identical whatever the backend and the number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal import __version__
from gpssignal.control.gps import GpsModel
from gpssignal.errors import GpssignalError, SweepSpecError
from gpssignal.evaluate.metrics import EVAL_KPIS, replication_kpis, run_tables
from gpssignal.evaluate.statistics import capture_ratio, paired_difference, verdict
from gpssignal.experiment.oracle import ORACLE, search_plan
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.days import MAX_DEMAND_FACTOR
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import (
    DEFAULT_LIMITS,
    Demand,
    ProbeSettings,
    Scenario,
    ScenarioLimits,
    check_limits,
)

__all__ = [
    "CONTROLLER_PARAMS",
    "DEMAND_PARAMS",
    "MAX_POINTS",
    "OBJECTIVES",
    "PARAM_RANGES",
    "PROBE_PARAMS",
    "TIMING_COLUMNS",
    "ResultStore",
    "Task",
    "baseline_arms",
    "check_value",
    "grid_points",
    "model_identity",
    "parse_grid",
    "parse_range",
    "plan_tasks",
    "point_summary",
    "random_points",
    "run_sweep",
    "run_task",
]

#: Controller parameters a sweep may set (GpsModel fields or threshold setters).
#: ``threshold_low_kmh`` sets every stretch's low threshold in km/h (high =
#: low + hysteresis); ``low_fraction`` sets it as a fraction of free-flow speed.
CONTROLLER_PARAMS = {"threshold_low_kmh", "low_fraction", "hysteresis_kmh", "window_s",
                     "min_dwell_s", "min_points", "stale_after_s", "decision_interval_s"}
#: Probe-feed parameters (``[probes]`` fields).
PROBE_PARAMS = {"penetration", "period_s", "latency_fixed_s", "latency_jitter_s",
                "position_sigma_m", "speed_sigma_kmh", "heading_sigma_deg", "dropout"}
#: ``demand_scale`` multiplies every demand flow.
DEMAND_PARAMS = {"demand_scale"}
log = logging.getLogger(__name__)

ALL_PARAMS = CONTROLLER_PARAMS | PROBE_PARAMS | DEMAND_PARAMS
INT_PARAMS = {"min_points"}

#: Most points one sweep may have (grid product or random draws). Every point
#: runs the GPS controller on every day, so 10,000 points × 5 days is already
#: 50,000 runs (days of CPU time); a spec beyond it is a typo (a step of
#: 0.001 for 1), not a plan. An engineering bound: pass ``max_points`` to go on.
MAX_POINTS = 10_000
#: The physical range of each parameter: ``(low, high, low_included)``.
#: Shares are in [0, 1]; ``demand_scale`` is bounded like a day type's demand
#: factor (:data:`~gpssignal.model.days.MAX_DEMAND_FACTOR`, beyond it a run
#: only exhausts memory); speeds by the fastest road (130 km/h); times by an
#: hour (a controller window or a probe delay of more than an hour is no
#: control at all).
PARAM_RANGES: dict[str, tuple[float, float, bool]] = {
    "demand_scale": (0.0, MAX_DEMAND_FACTOR, False),
    "penetration": (0.0, 1.0, True), "dropout": (0.0, 1.0, True),
    "low_fraction": (0.0, 1.0, False),
    "threshold_low_kmh": (0.0, 130.0, False), "hysteresis_kmh": (0.0, 130.0, True),
    "speed_sigma_kmh": (0.0, 130.0, True),
    "window_s": (0.0, 3600.0, False), "min_dwell_s": (0.0, 3600.0, True),
    "stale_after_s": (0.0, 3600.0, False), "decision_interval_s": (0.0, 3600.0, False),
    "period_s": (0.0, 3600.0, False), "latency_fixed_s": (0.0, 3600.0, True),
    "latency_jitter_s": (0.0, 3600.0, True),
    "position_sigma_m": (0.0, 1000.0, True), "heading_sigma_deg": (0.0, 180.0, True),
    "min_points": (1.0, 10_000.0, True),
}


def check_value(name: str, value: float, option: str, spec: str) -> None:
    """Refuse a value of parameter ``name`` outside :data:`PARAM_RANGES`.

    Raises
    ------
    SweepSpecError
        Naming the option, the value and the range.
    """
    lo, hi, lo_in = PARAM_RANGES[name]
    if not ((value >= lo if lo_in else value > lo) and value <= hi):
        raise SweepSpecError(f"{option} = {spec!r}: {name} = {value:g} is outside its range "
                             f"{'[' if lo_in else '('}{lo:g}, {hi:g}]")


def _check_count(n: float, option: str, spec: str, max_points: int) -> None:
    if n > max_points:
        raise SweepSpecError(f"{option} = {spec!r}: {n:,.0f} points, above the limit of "
                             f"{max_points:,} (max_points)")


def _check_name(name: str, option: str, spec: str) -> None:
    if name not in ALL_PARAMS:
        raise SweepSpecError(f"{option} = {spec!r}: unknown parameter {name!r} (one of "
                            f"{', '.join(sorted(ALL_PARAMS))})")


def _number(text: str, option: str, spec: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise SweepSpecError(f"{option} = {spec!r}: {text!r} is not a number") from None
    if not np.isfinite(x):
        raise SweepSpecError(f"{option} = {spec!r}: {text!r} is not finite")
    return x


def parse_grid(spec: str, max_points: int = MAX_POINTS) -> tuple[str, list[float]]:
    """``name=start:stop:step`` (stop included) or ``name=v1,v2,...``.

    Raises
    ------
    SweepSpecError
        For a malformed spec, a value outside :data:`PARAM_RANGES` or more
        than ``max_points`` values (counted before any is made).
    """
    name, sep, rhs = spec.partition("=")
    name = name.strip()
    if not sep or not rhs:
        raise SweepSpecError(f"grid = {spec!r}: expected NAME=START:STOP:STEP or NAME=V1,V2")
    _check_name(name, "grid", spec)
    if ":" in rhs:
        parts = rhs.split(":")
        if len(parts) != 3:
            raise SweepSpecError(f"grid = {spec!r}: expected START:STOP:STEP")
        a, b, step = (_number(p, "grid", spec) for p in parts)
        if step <= 0 or b < a:
            raise SweepSpecError(f"grid = {spec!r}: needs STEP > 0 and STOP >= START")
        n = float(np.floor((b - a) / step + 1e-9)) + 1
        _check_count(n, "grid", spec, max_points)
        values = [round(a + k * step, 10) for k in range(int(n))]
    else:
        values = [_number(v, "grid", spec) for v in rhs.split(",") if v.strip()]
        _check_count(len(values), "grid", spec, max_points)
    for v in values:
        check_value(name, v, "grid", spec)
    if not values:
        raise SweepSpecError(f"grid = {spec!r}: no values")
    if len(set(values)) != len(values):
        raise SweepSpecError(f"grid = {spec!r}: values repeat")
    if name in INT_PARAMS:
        values = [float(int(v)) for v in values]
    return name, values


def parse_range(spec: str) -> tuple[str, float, float]:
    """``name=low:high`` for random search."""
    name, sep, rhs = spec.partition("=")
    name = name.strip()
    parts = rhs.split(":")
    if not sep or len(parts) != 2:
        raise SweepSpecError(f"range = {spec!r}: expected NAME=LOW:HIGH")
    _check_name(name, "range", spec)
    lo, hi = (_number(p, "range", spec) for p in parts)
    if hi <= lo:
        raise SweepSpecError(f"range = {spec!r}: needs HIGH > LOW")
    check_value(name, lo, "range", spec)
    check_value(name, hi, "range", spec)
    return name, lo, hi


def grid_points(grids: list[tuple[str, list[float]]], max_points: int = MAX_POINTS
                ) -> list[dict[str, float]]:
    """Return the Cartesian product of the grids, in a stable order.

    Raises
    ------
    SweepSpecError
        If a parameter repeats or the product has more than ``max_points`` points.
    """
    names = [g[0] for g in grids]
    if len(set(names)) != len(names):
        raise SweepSpecError(f"grid: a parameter is given twice ({', '.join(names)})")
    _check_count(math.prod(len(g[1]) for g in grids), "grid",
                 " ".join(f"{n}({len(v)} values)" for n, v in grids), max_points)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*[g[1] for g in grids])]


def random_points(ranges: list[tuple[str, float, float]], n: int, seed: int,
                  max_points: int = MAX_POINTS) -> list[dict[str, float]]:
    """``n`` points drawn uniformly in the ranges (seeded); at most ``max_points``."""
    _check_count(n, "samples", str(n), max_points)
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(n):
        p = {}
        for name, lo, hi in ranges:
            x = float(rng.uniform(lo, hi))
            p[name] = float(int(round(x))) if name in INT_PARAMS else round(x, 6)
        pts.append(p)
    return pts


@dataclasses.dataclass(frozen=True)
class Task:
    """One run: a controller on one day with some parameters."""

    controller: str          # "gps", an arm label ("tod", "fixed:PROGRAM") or "oracle"
    seed: int
    params: tuple[tuple[str, float], ...]

    @property
    def key(self) -> str:
        """Return the task's key in the result store (controller, seed, parameters)."""
        return json.dumps([self.controller, self.seed, list(self.params)])

    def param_dict(self) -> dict[str, float]:
        """Return the parameters as a dict."""
        return dict(self.params)


def _baseline_params(point: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Return what a fixed-timing run depends on: only the demand."""
    return tuple(sorted((k, v) for k, v in point.items() if k in DEMAND_PARAMS))


def baseline_arms(scenario: Scenario, oracle: bool = True) -> list[str]:
    """Return the arms a sweep runs once per demand and day: existing plan, each program, oracle."""
    arms = [scenario.baseline_plan]
    arms += [f"fixed:{p}" for p in scenario.program_names if f"fixed:{p}" not in arms]
    if oracle and len(scenario.program_names) > 1:
        arms.append(ORACLE)
    return arms


def plan_tasks(points: list[dict[str, float]], seeds: list[int],
               baselines: list[str] | None = None) -> list[Task]:
    """Every GPS run of every point and the distinct baseline runs (default: ``fixed``)."""
    tasks: dict[str, Task] = {}
    for p in points:
        for s in seeds:
            for b in baselines or ["fixed"]:
                base = Task(b, s, _baseline_params(p))
                tasks.setdefault(base.key, base)
            t = Task("gps", s, tuple(sorted(p.items())))
            tasks.setdefault(t.key, t)
    return list(tasks.values())


def _apply(scenario: Scenario, model: GpsModel, params: dict[str, float]
           ) -> tuple[Scenario, GpsModel, ProbeSettings]:
    sc = scenario
    scale = params.get("demand_scale")
    for name, value in params.items():
        if name in PARAM_RANGES:
            check_value(name, value, "point", f"{name}={value:g}")
    if scale is not None:
        flows = tuple(dataclasses.replace(f, flow_vph=tuple(q * scale for q in f.flow_vph))
                      for f in sc.demand.flows)
        sc = dataclasses.replace(sc, demand=Demand(interval_s=sc.demand.interval_s,
                                                   flows=flows))
    changes: dict[str, Any] = {k: v for k, v in params.items() if k in PROBE_PARAMS}
    probes = dataclasses.replace(sc.probes, **changes)
    m = model
    ctrl = {k: v for k, v in params.items() if k in CONTROLLER_PARAMS}
    low = ctrl.pop("threshold_low_kmh", None)
    if "min_points" in ctrl:
        ctrl["min_points"] = int(ctrl["min_points"])
    if low is not None:
        hyst = ctrl.pop("hysteresis_kmh", None)
        stretches = [dataclasses.replace(
            s, threshold_low_kmh=low,
            threshold_high_kmh=low + (hyst if hyst is not None
                                      else s.threshold_high_kmh - s.threshold_low_kmh))
            for s in m.stretches]
        m = dataclasses.replace(m, stretches=stretches)
    m = m.with_params(**ctrl)
    return sc, m, probes


def run_task(scenario: Scenario, model: GpsModel, task: Task) -> dict[str, Any]:
    """Run one task; return its stored row (without the key columns)."""
    t0 = time.perf_counter()
    sc, m, probes = _apply(scenario, model, task.param_dict())
    if task.controller == ORACLE:
        result = search_plan(sc, task.seed).result
    else:
        ctrl = ControllerSpec.parse(task.controller, m)
        result = run_one(RunSpec(scenario=sc, controller=ctrl, seed=task.seed,
                                 probes=probes)).result
    kpis = replication_kpis(result, run_tables(result))
    return {**kpis, "wall_s": time.perf_counter() - t0}


def _run_task_packed(args: tuple[Scenario, GpsModel, Task]) -> dict[str, Any]:
    scenario, model, task = args
    return run_task(scenario, model, task)


KPI_COLUMNS = [k for k, _, _, _ in EVAL_KPIS]
#: Columns of the store that differ between two runs of the same task (when and
#: how fast it ran): kept in ``runs.duckdb``, left out of every other output.
TIMING_COLUMNS = ("wall_s", "finished_at")


class ResultStore:
    """Finished runs in a DuckDB file: one committed row per run.

    Columns: ``key`` (primary key), ``controller``, ``seed``, ``params``
    (JSON), one column per swept parameter name, ``scenario_hash``,
    ``version``, the KPIs of :data:`~gpssignal.evaluate.metrics.EVAL_KPIS`,
    ``wall_s`` and ``finished_at`` (:data:`TIMING_COLUMNS`: the run's wall time
    [s] and when it was stored [Unix s]; they differ between two runs of the
    same task, so outputs made from the store leave them out).
    """

    def __init__(self, path: str | Path, scenario: Scenario, model_id: str) -> None:
        import duckdb

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scenario_hash = scenario_hash(scenario)
        self.model_id = model_id
        try:
            self.con = duckdb.connect(str(self.path))
            row = self._open_tables()
        except duckdb.Error as exc:
            raise SweepSpecError(_store_problem(self.path, exc)) from None
        ident = json.dumps({"scenario_hash": self.scenario_hash, "model": model_id})
        if row is None:
            self.con.execute("INSERT INTO sweep VALUES ('identity', ?)", [ident])
        elif row[0] != ident:
            raise SweepSpecError(f"out: {self.path} holds a sweep of another scenario or "
                                f"model ({row[0]}); use another folder")

    def _open_tables(self) -> tuple[Any, ...] | None:
        """Create the tables if new; return the stored identity row, if any."""
        kpis = ", ".join(f'"{k}" DOUBLE' for k in KPI_COLUMNS)
        self.con.execute(f"""CREATE TABLE IF NOT EXISTS runs (
            key VARCHAR PRIMARY KEY, controller VARCHAR, seed BIGINT, params VARCHAR,
            scenario_hash VARCHAR, model VARCHAR, version VARCHAR, {kpis}, wall_s DOUBLE,
            finished_at DOUBLE)""")
        self.con.execute("CREATE TABLE IF NOT EXISTS sweep (name VARCHAR PRIMARY KEY, "
                         "value VARCHAR)")
        return self.con.execute("SELECT value FROM sweep WHERE name = 'identity'").fetchone()

    def done_keys(self) -> set[str]:
        """Return the keys of the runs already stored."""
        return {r[0] for r in self.con.execute("SELECT key FROM runs").fetchall()}

    def add(self, task: Task, row: dict[str, Any]) -> None:
        """Store one finished run (committed at once)."""
        cols = ["key", "controller", "seed", "params", "scenario_hash", "model", "version",
                *KPI_COLUMNS, "wall_s", "finished_at"]
        vals = [task.key, task.controller, task.seed, json.dumps(dict(task.params)),
                self.scenario_hash, self.model_id, __version__,
                *[float(row.get(k, np.nan)) for k in KPI_COLUMNS], float(row["wall_s"]),
                time.time()]
        names = ", ".join(f'"{c}"' for c in cols)
        try:
            self.con.execute(f"INSERT INTO runs ({names}) VALUES "
                             f"({', '.join('?' * len(cols))})", vals)
        except RuntimeError as exc:
            # A Ctrl-C or SIGTERM arriving during the query: DuckDB aborts it
            # (nothing of it is stored) and reports it as a RuntimeError.
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt(str(exc)) from exc
            raise

    def frame(self) -> pd.DataFrame:
        """All stored runs, one row each, with the parameters as columns."""
        df = self.con.execute("SELECT * FROM runs ORDER BY key").fetchdf()
        params = pd.DataFrame([json.loads(p) for p in df["params"]], index=df.index)
        return pd.concat([df, params], axis=1)

    def close(self) -> None:
        """Close the database connection."""
        self.con.close()


def _store_problem(path: Path, exc: Exception) -> str:
    """Return the one-line message for a result store DuckDB cannot open."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "lock" in first.lower():
        return (f"out: {path} is in use by another sweep (DuckDB lock); wait for it to "
                "finish or use another folder")
    return (f"out: {path} cannot be opened as a result store ({first}); it is left as it "
            "is: move it away or use another folder")


def run_sweep(scenario: Scenario, model: GpsModel, points: list[dict[str, float]],
              seeds: list[int], store: ResultStore, backend: LocalBackend | DaskBackend | None,
              progress: Callable[[int, int, int], None] | None = None,
              baselines: list[str] | None = None,
              limits: ScenarioLimits | None = None) -> dict[str, int]:
    """Run every task not yet in ``store``; store each as it finishes.

    ``baselines`` are the arms run once per demand and day (default
    :func:`baseline_arms`); ``limits`` the budget each point's (scaled)
    scenario must stay within (default: that of
    :func:`~gpssignal.model.io.read_scenario`). ``progress(done, total, done_before)`` after each
    run. Returns counts of tasks: ``total``, ``skipped`` (already stored) and
    ``run``.
    """
    for p in points:
        sc, _, _ = _apply(scenario, model, p)  # bad values fail before any run
        try:
            check_limits(sc, limits or DEFAULT_LIMITS)
        except GpssignalError as exc:
            raise SweepSpecError(f"demand_scale = {p.get('demand_scale', 1.0):g}: the scaled "
                                 f"scenario is too large ({exc})") from None
    tasks = plan_tasks(points, seeds, baselines or baseline_arms(scenario))
    done = store.done_keys()
    todo = [t for t in tasks if t.key not in done]
    before = len(tasks) - len(todo)
    if progress:
        progress(before, len(tasks), before)

    def store_one(index: int, row: dict[str, Any]) -> None:
        store.add(todo[index], row)
        log.info("stored run %d: %s", index, todo[index].key)

    map_runs(_run_task_packed, [(scenario, model, t) for t in todo], backend,
             progress=(lambda d, n: progress(before + d, len(tasks), before))
             if progress else None, on_result=store_one)
    return {"total": len(tasks), "skipped": before, "run": len(todo)}


def _keys(point: dict[str, float], seeds: list[int], arm: str) -> list[str]:
    params = tuple(sorted(point.items())) if arm == "gps" else _baseline_params(point)
    return [Task(arm, s, params).key for s in seeds]


#: What a sweep ranks by: the mean time loss per vehicle (motor vehicles) or per
#: person (occupants, bus passengers, cyclists, pedestrians), with the total it
#: sums to and the unit.
OBJECTIVES = {
    "vehicle-hours": ("mean_time_loss_s", "total_time_loss_veh_h", "s/veh"),
    "person-hours": ("mean_time_loss_per_person_s", "total_time_loss_person_h", "s/person"),
}


def point_summary(runs: pd.DataFrame, points: list[dict[str, float]], seeds: list[int],
                  baselines: list[str] | None = None,
                  objective: str = "vehicle-hours") -> pd.DataFrame:
    """Per point: the paired saving against the existing plan, beside the alternatives.

    ``objective`` (:data:`OBJECTIVES`) is the time loss the ``time_loss_*``
    columns, the best fixed program and the capture ratio are about: per
    vehicle or per person (column ``time_loss_unit``).

    ``baselines`` are the sweep's baseline arms, the existing plan first
    (default ``["fixed"]``, the layout of sweeps stored before baselines
    were declared). Savings are existing − GPS per day (positive = better):
    time loss per vehicle [s] and [%], CO₂ [kg/day] and [%], each with its
    95 % t interval and verdict. Beside them: the best fixed program *on
    these days* (a hindsight choice, favourable to the fixed program) and
    GPS − best fixed [s/veh]; the oracle's saving and the capture ratio
    (Fieller interval) when the oracle ran; GPS peak stretch speed and
    switches per day.
    """
    arms = baselines or ["fixed"]
    existing = arms[0]
    idx = runs.set_index("key")
    rows = []
    for p in points:
        keys = {a: _keys(p, seeds, a) for a in [*arms, "gps"]}
        if not set().union(*keys.values()) <= set(idx.index):
            continue
        val = {a: idx.loc[k] for a, k in keys.items()}
        row: dict[str, Any] = dict(p)
        row.update(_savings(val[existing], val["gps"], objective))
        row.update(_alternatives(val, arms, existing, objective))
        row["objective"] = objective
        row["time_loss_unit"] = OBJECTIVES[objective][2]
        row["gps_speed_peak_kmh"] = float(val["gps"]["stretch_speed_peak_kmh"].mean())
        row["existing_speed_peak_kmh"] = float(val[existing]["stretch_speed_peak_kmh"].mean())
        row["switches_per_day"] = float(val["gps"]["switches"].mean())
        row["existing_plan"] = existing
        row["days"] = len(seeds)
        rows.append(row)
    return pd.DataFrame(rows)


def _savings(base: pd.DataFrame, gps: pd.DataFrame, objective: str) -> dict[str, Any]:
    """Existing − GPS per day: mean, CI, relative [%] and the verdict."""
    row: dict[str, Any] = {}
    for kpi, label in ((OBJECTIVES[objective][0], "time_loss"), ("co2_kg", "co2")):
        b = base[kpi].to_numpy(float)
        iv, _ = paired_difference(b, gps[kpi].to_numpy(float))
        row[f"{label}_saving"] = iv.mean
        row[f"{label}_saving_ci_low"] = iv.low
        row[f"{label}_saving_ci_high"] = iv.high
        row[f"{label}_verdict"] = verdict(iv, "higher", words=("saves", "costs"))
        row[f"existing_{label}"] = b.mean()
        for suffix, x in (("", iv.mean), ("_ci_low", iv.low), ("_ci_high", iv.high)):
            row[f"{label}_saving_pct{suffix}"] = 100 * x / b.mean() if b.mean() else np.nan
    return row


def _alternatives(val: dict[str, pd.DataFrame], arms: list[str], existing: str,
                  objective: str) -> dict[str, Any]:
    """Return the best fixed program on these days and the oracle, beside the GPS controller."""
    kpi, tl, _ = OBJECTIVES[objective]
    fixed = [a for a in arms if a.startswith("fixed")]
    row: dict[str, Any] = {}
    if fixed:
        best = min(fixed, key=lambda a: float(val[a][kpi].mean()))
        iv, _ = paired_difference(val["gps"][kpi].to_numpy(float),
                                  val[best][kpi].to_numpy(float))
        row.update({"best_fixed": best, "best_fixed_time_loss_s": float(val[best][kpi].mean()),
                    "gps_vs_best_fixed_s": iv.mean, "gps_vs_best_fixed_ci_low": iv.low,
                    "gps_vs_best_fixed_ci_high": iv.high,
                    "gps_vs_best_fixed_verdict": verdict(iv, "lower")})
    if ORACLE in arms:
        e, g, o = (val[a][tl].to_numpy(float) for a in (existing, "gps", ORACLE))
        cap = capture_ratio(e, g, o)
        row.update({"oracle_time_loss_s": float(val[ORACLE][kpi].mean()),
                    "capture_ratio": cap.mean, "capture_ci_low": cap.low,
                    "capture_ci_high": cap.high})
    return row


def model_identity(model: GpsModel) -> str:
    """Return a short hash of a model's content (what the store records)."""
    blob = json.dumps(dataclasses.asdict(model), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
