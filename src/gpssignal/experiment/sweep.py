"""Parameter sweeps of the GPS controller, paired against fixed timing.

A sweep evaluates *points*: settings of controller parameters (thresholds,
hysteresis, window, dwell, ...), probe-feed parameters (penetration, period,
latency, noise) and demand scaling. Each point runs the GPS controller on N
days (seeds); fixed timing runs once per (demand scale, day) and serves
every point with that demand as its paired baseline.

Every run is a task with a key (its parameters, controller, seed, the
scenario's hash and the package version). Results go into a DuckDB file
(:class:`ResultStore`) the moment each run finishes, one committed row per
run, so a sweep killed at any moment loses no finished run; started again,
it skips the keys already stored and repeats none.

Backends run the tasks (:class:`LocalBackend`: a process pool;
:class:`DaskBackend`: ``dask.distributed``, a ``LocalCluster`` or an
existing scheduler). A run's result depends only on its task, so the stored
results are identical whatever the backend and the number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal import __version__
from gpssignal.control.gps import GpsModel
from gpssignal.errors import SweepSpecError
from gpssignal.evaluate.metrics import EVAL_KPIS, replication_kpis, run_tables
from gpssignal.evaluate.statistics import paired_difference
from gpssignal.experiment.run import run_gps, run_scenario
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import Demand, ProbeSettings, Scenario

__all__ = ["CONTROLLER_PARAMS", "PROBE_PARAMS", "DEMAND_PARAMS", "parse_grid", "parse_range",
           "grid_points", "random_points", "Task", "plan_tasks", "run_task", "ResultStore",
           "LocalBackend", "DaskBackend", "run_sweep", "point_summary", "model_identity"]

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


def parse_grid(spec: str) -> tuple[str, list[float]]:
    """``name=start:stop:step`` (stop included) or ``name=v1,v2,...``."""
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
        n = int(np.floor((b - a) / step + 1e-9)) + 1
        values = [round(a + k * step, 10) for k in range(n)]
    else:
        values = [_number(v, "grid", spec) for v in rhs.split(",") if v.strip()]
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
    return name, lo, hi


def grid_points(grids: list[tuple[str, list[float]]]) -> list[dict[str, float]]:
    """The Cartesian product of the grids, in a stable order."""
    names = [g[0] for g in grids]
    if len(set(names)) != len(names):
        raise SweepSpecError(f"grid: a parameter is given twice ({', '.join(names)})")
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*[g[1] for g in grids])]


def random_points(ranges: list[tuple[str, float, float]], n: int, seed: int
                  ) -> list[dict[str, float]]:
    """``n`` points drawn uniformly in the ranges (seeded)."""
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

    controller: str          # "gps" or "fixed"
    seed: int
    params: tuple[tuple[str, float], ...]

    @property
    def key(self) -> str:
        return json.dumps([self.controller, self.seed, list(self.params)])

    def param_dict(self) -> dict[str, float]:
        return dict(self.params)


def _baseline_params(point: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """What a fixed-timing run depends on: only the demand."""
    return tuple(sorted((k, v) for k, v in point.items() if k in DEMAND_PARAMS))


def plan_tasks(points: list[dict[str, float]], seeds: list[int]) -> list[Task]:
    """Every GPS run of every point and the distinct fixed-timing baselines."""
    tasks: dict[str, Task] = {}
    for p in points:
        for s in seeds:
            base = Task("fixed", s, _baseline_params(p))
            tasks.setdefault(base.key, base)
            t = Task("gps", s, tuple(sorted(p.items())))
            tasks.setdefault(t.key, t)
    return list(tasks.values())


def _apply(scenario: Scenario, model: GpsModel, params: dict[str, float]
           ) -> tuple[Scenario, GpsModel, ProbeSettings]:
    sc = scenario
    scale = params.get("demand_scale")
    if scale is not None:
        if scale <= 0:
            raise SweepSpecError(f"demand_scale = {scale}: must be > 0")
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
    if task.controller == "gps":
        result, _, _, _ = run_gps(sc, m, seed=task.seed, probes=probes)
    else:
        result, _ = run_scenario(sc, "fixed", seed=task.seed, record_trajectories=False)
    kpis = replication_kpis(result, run_tables(result))
    return {**kpis, "wall_s": time.perf_counter() - t0}


def _run_task_packed(args: tuple[Scenario, GpsModel, Task]) -> tuple[str, dict[str, Any]]:
    scenario, model, task = args
    return task.key, run_task(scenario, model, task)


KPI_COLUMNS = [k for k, _, _, _ in EVAL_KPIS]


class ResultStore:
    """Finished runs in a DuckDB file: one committed row per run.

    Columns: ``key`` (primary key), ``controller``, ``seed``, ``params``
    (JSON), one column per swept parameter name, ``scenario_hash``,
    ``version``, the KPIs of :data:`~gpssignal.evaluate.metrics.EVAL_KPIS`,
    ``wall_s`` and ``finished_at``.
    """

    def __init__(self, path: str | Path, scenario: Scenario, model_id: str) -> None:
        import duckdb

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scenario_hash = scenario_hash(scenario)
        self.model_id = model_id
        self.con = duckdb.connect(str(self.path))
        kpis = ", ".join(f'"{k}" DOUBLE' for k in KPI_COLUMNS)
        self.con.execute(f"""CREATE TABLE IF NOT EXISTS runs (
            key VARCHAR PRIMARY KEY, controller VARCHAR, seed BIGINT, params VARCHAR,
            scenario_hash VARCHAR, model VARCHAR, version VARCHAR, {kpis}, wall_s DOUBLE,
            finished_at DOUBLE)""")
        self.con.execute("CREATE TABLE IF NOT EXISTS sweep (name VARCHAR PRIMARY KEY, "
                         "value VARCHAR)")
        row = self.con.execute("SELECT value FROM sweep WHERE name = 'identity'").fetchone()
        ident = json.dumps({"scenario_hash": self.scenario_hash, "model": model_id})
        if row is None:
            self.con.execute("INSERT INTO sweep VALUES ('identity', ?)", [ident])
        elif row[0] != ident:
            raise SweepSpecError(f"out: {self.path} holds a sweep of another scenario or "
                                f"model ({row[0]}); use another folder")

    def done_keys(self) -> set[str]:
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
        self.con.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(cols))})",
                         vals)

    def frame(self) -> pd.DataFrame:
        """All stored runs, one row each, with the parameters as columns."""
        df = self.con.execute("SELECT * FROM runs ORDER BY key").fetchdf()
        params = pd.DataFrame([json.loads(p) for p in df["params"]], index=df.index)
        return pd.concat([df, params], axis=1)

    def close(self) -> None:
        self.con.close()


class LocalBackend:
    """A pool of local processes (``workers`` = 1 runs in this process)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        if self.workers <= 1:
            for it in items:
                yield fn(it)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(fn, it) for it in items]
            for f in as_completed(futures):
                yield f.result()

    def close(self) -> None:
        pass


class DaskBackend:
    """``dask.distributed``: an existing scheduler, or a ``LocalCluster``.

    On a cluster, start ``dask scheduler`` on one machine and ``dask worker
    tcp://SCHEDULER:8786 --nthreads 1`` on each machine (with gpssignal
    installed, same version), then pass ``--scheduler tcp://SCHEDULER:8786``.
    """

    name = "dask"

    def __init__(self, workers: int, scheduler: str | None = None) -> None:
        import logging

        from dask.distributed import Client, LocalCluster

        # Keep the command's output readable: dask logs its life cycle at INFO.
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {})) or workers

    def run(self, fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        from dask.distributed import as_completed as dask_completed

        if not items:
            return
        futures = [self.client.submit(fn, it, pure=False) for it in items]
        for f in dask_completed(futures):
            yield f.result()
            f.release()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_sweep(scenario: Scenario, model: GpsModel, points: list[dict[str, float]],
              seeds: list[int], store: ResultStore, backend: LocalBackend | DaskBackend,
              progress: Callable[[int, int, int], None] | None = None) -> dict[str, int]:
    """Run every task not yet in ``store``; store each as it finishes.

    ``progress(done, total, done_before)`` after each run. Returns counts of
    tasks: ``total``, ``skipped`` (already stored) and ``run``.
    """
    for p in points:
        _apply(scenario, model, p)  # bad values fail before any run
    tasks = plan_tasks(points, seeds)
    done = store.done_keys()
    todo = [t for t in tasks if t.key not in done]
    by_key = {t.key: t for t in todo}
    before = len(tasks) - len(todo)
    n = before
    if progress:
        progress(n, len(tasks), before)
    for key, row in backend.run(_run_task_packed, [(scenario, model, t) for t in todo]):
        store.add(by_key[key], row)
        n += 1
        log.info("stored run %d/%d: %s", n, len(tasks), key)
        if progress:
            progress(n, len(tasks), before)
    return {"total": len(tasks), "skipped": before, "run": len(todo)}


def point_summary(runs: pd.DataFrame, points: list[dict[str, float]], seeds: list[int]
                  ) -> pd.DataFrame:
    """Per point: the paired saving against fixed timing, mean and 95 % CI.

    Savings are fixed − GPS per day (positive = better): time loss per
    vehicle [s] and [%], CO₂ [kg/day] and [%]; plus the GPS controller's mean
    peak stretch speed and switches per day.
    """
    idx = runs.set_index("key")
    rows = []
    for p in points:
        g, f = [], []
        for s in seeds:
            g.append(Task("gps", s, tuple(sorted(p.items()))).key)
            f.append(Task("fixed", s, _baseline_params(p)).key)
        if not (set(g) | set(f)) <= set(idx.index):
            continue
        gr, fr = idx.loc[g], idx.loc[f]
        row: dict[str, Any] = dict(p)
        for kpi, label in (("mean_time_loss_s", "time_loss"), ("co2_kg", "co2")):
            iv, rel = paired_difference(fr[kpi].to_numpy(float), gr[kpi].to_numpy(float))
            row[f"{label}_saving"] = iv.mean
            row[f"{label}_saving_ci_low"] = iv.low
            row[f"{label}_saving_ci_high"] = iv.high
            # saving relative to the baseline: (fixed - gps) / mean(fixed)
            base = fr[kpi].to_numpy(float).mean()
            row[f"fixed_{kpi}"] = base
            for suffix, x in (("", iv.mean), ("_ci_low", iv.low), ("_ci_high", iv.high)):
                row[f"{label}_saving_pct{suffix}"] = 100 * x / base if base else np.nan
        row["gps_speed_peak_kmh"] = float(gr["stretch_speed_peak_kmh"].mean())
        row["fixed_speed_peak_kmh"] = float(fr["stretch_speed_peak_kmh"].mean())
        row["switches_per_day"] = float(gr["switches"].mean())
        row["days"] = len(seeds)
        rows.append(row)
    return pd.DataFrame(rows)


def model_identity(model: GpsModel) -> str:
    """A short hash of a model's content (what the store records)."""
    blob = json.dumps(dataclasses.asdict(model), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
