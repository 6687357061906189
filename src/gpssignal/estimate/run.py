"""Run the estimator: for each junction, train a GPS model and evaluate it.

Per junction (one generated scenario): simulate ``train_days`` history days
under its existing plan (the scenario has no clock schedule, so that is the
fixed ``normal`` program), train a model on them, and evaluate on
``replications`` other days the existing plan, the GPS controller, every
program fixed (the best chosen on the training days) and, unless switched
off, the hindsight bound (:mod:`gpssignal.experiment.evaluation`). Savings
are paired by day, against the existing plan.

Per municipality the saving of a day is the sum over its junctions of that
day's saving (every junction uses the same day seeds, so a heavy day is heavy
everywhere, as on a real heavy morning); the mean and 95 % t interval of
those day sums, × working days, is the municipality's annual saving.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gpssignal.control.io import write_model
from gpssignal.estimate.capacity import SATURATION_FLOW_VPHPL, CapacityCheck, movement_capacity
from gpssignal.estimate.junctions import JunctionSpec, RowError, Template, build_scenario
from gpssignal.evaluate.definitions import level_of_service
from gpssignal.evaluate.statistics import mean_ci
from gpssignal.experiment.evaluation import (
    Evaluation,
    default_arms,
    evaluate_controllers,
    train_for_evaluation,
)
from gpssignal.experiment.parallel import DaskBackend, LocalBackend

__all__ = [
    "FORMULA_STARTS",
    "JUNCTION_COLUMNS",
    "MOVEMENT_COLUMNS",
    "EstimateRun",
    "JunctionResult",
    "JunctionSummary",
    "csv_safe",
    "estimate_all",
    "estimate_junction",
    "junction_table",
    "movement_rows",
    "movement_table",
    "municipality_table",
]


@dataclass
class JunctionResult:
    """One estimated junction: its row, generated scenario and model, and evaluation."""

    spec: JunctionSpec
    scenario_toml: str
    model_json: bytes
    evaluation: Evaluation
    #: Wall time of the model's training [s] (for the run log: not in the model file).
    train_wall_s: float | None = None
    #: Saturation flow of the v/c per movement [veh/h/lane] (the template's).
    saturation_flow_vphpl: float = SATURATION_FLOW_VPHPL

    def daily_savings(self) -> pd.DataFrame:
        """Per day: existing plan − GPS total time loss [veh·h] and CO₂ [kg]."""
        ev = self.evaluation
        base = ev.baseline
        return pd.DataFrame({
            "seed": ev.seeds,
            "time_loss_veh_h": ev.values(base, "total_time_loss_veh_h")
            - ev.values("gps", "total_time_loss_veh_h"),
            "co2_kg": ev.values(base, "co2_kg") - ev.values("gps", "co2_kg"),
        })

    def summary(self) -> JunctionSummary:
        """Return what the tables need of this junction (see :class:`JunctionSummary`)."""
        d = self.daily_savings()
        return JunctionSummary(
            spec=self.spec, scenario_toml=self.scenario_toml, model_json=self.model_json,
            seeds=tuple(int(s) for s in d["seed"]),
            time_loss_saved_veh_h=tuple(float(x) for x in d["time_loss_veh_h"]),
            co2_saved_kg=tuple(float(x) for x in d["co2_kg"]),
            working_days_per_year=self.evaluation.scenario.working_days_per_year,
            columns=_summary_columns(self.evaluation), train_wall_s=self.train_wall_s,
            movements=tuple(movement_rows(self.evaluation, self.saturation_flow_vphpl)))


@dataclass(frozen=True)
class JunctionSummary:
    """What the estimate's tables and files need of one finished junction.

    Small and plain (numbers, text, the generated files), so that it is what
    the estimate's store keeps (:mod:`gpssignal.estimate.store`) as each
    junction finishes: a resumed estimate builds its tables from stored
    summaries exactly as from fresh ones (the numbers round-trip through JSON
    bit for bit), so its outputs are byte-identical to an uninterrupted run.
    """

    spec: JunctionSpec
    scenario_toml: str
    model_json: bytes
    #: The evaluation days, in order, and the existing plan − GPS saving of
    #: each: total time loss [veh·h] and CO₂ [kg].
    seeds: tuple[int, ...]
    time_loss_saved_veh_h: tuple[float, ...]
    co2_saved_kg: tuple[float, ...]
    working_days_per_year: float
    #: The junction table's values derived from the evaluation (KPI means,
    #: verdicts, best fixed program, oracle), by column.
    columns: dict[str, Any]
    #: Wall time of the model's training [s] (for the run log: not in the model file).
    train_wall_s: float | None = None
    #: Per approach and movement: v/c and simulated delay, LOS and 95 % queue
    #: (:func:`movement_rows`).
    movements: tuple[dict[str, Any], ...] = ()

    def summary(self) -> JunctionSummary:
        """Return itself (a summary and a result can be tabulated alike)."""
        return self


def _summary_columns(ev: Evaluation) -> dict[str, Any]:
    """Return the junction-table values of one evaluation, as plain Python values."""
    kt = ev.kpi_table().set_index(["kpi", "controller"])["mean"]
    values = {
        "time_loss_change_pct": 100 * (kt[("mean_time_loss_s", "gps")]
                                       / kt[("mean_time_loss_s", ev.baseline)] - 1),
        "fixed_stretch_speed_peak_kmh": kt[("stretch_speed_peak_kmh", ev.baseline)],
        **_alternatives(ev),
        "gps_stretch_speed_peak_kmh": kt[("stretch_speed_peak_kmh", "gps")],
        # How often the trained controller switched: 0 means it kept the
        # existing plan's default program, whatever the saving column says.
        "gps_switches_per_day": kt[("switches", "gps")],
    }
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}


def movement_rows(ev: Evaluation, saturation_flow_vphpl: float = SATURATION_FLOW_VPHPL
                  ) -> list[dict[str, Any]]:
    """Per approach and movement: v/c, and the simulated delay, LOS and queue.

    ``vc_existing`` and ``vc_relief``: the movement's lane-group v/c in the
    busiest 15 min under the default and the relief program
    (:func:`gpssignal.estimate.capacity.movement_capacity`);
    ``existing_*`` and ``gps_*``: the movement's HCM control delay [s/veh]
    and its LOS, and its approach's 95th-percentile queue [m] (the longest
    lane's: lanes are shared by movements), means over the evaluation days,
    under the existing plan and the GPS controller.
    """
    sc = ev.scenario
    j = sc.junctions[0]
    am, mm = ev.approach_means(), ev.movement_means()

    def sim(controller: str, approach: str, movement: str) -> dict[str, Any]:
        r = am[(am["controller"] == controller) & (am["approach_link"] == approach)]
        q = float(r["queue_p95_m"].iloc[0]) if len(r) else float("nan")
        m = mm[(mm["controller"] == controller) & (mm["approach_link"] == approach)
               & (mm["movement"] == movement)]
        d = float(m["control_delay_s"].iloc[0]) if len(m) else float("nan")
        los = str(level_of_service(d)[0]) if np.isfinite(d) else ""
        return {"delay_s": d, "los": los, "queue_p95_m": q}

    out = []
    for m in movement_capacity(sc, saturation_flow_vphpl):
        row: dict[str, Any] = {"approach": m["approach"], "movement": m["movement"],
                               "group": m["group"], "lanes": m["lanes"],
                               "flow_vph": m["flow_vph"],
                               "vc_existing": m["x"].get(j.default_program, float("nan")),
                               "vc_relief": m["x"].get(j.relief_program or "", float("nan"))}
        for label, c in (("existing", ev.baseline), ("gps", "gps")):
            row.update({f"{label}_{k}": v
                        for k, v in sim(c, m["approach"], m["movement"]).items()})
        out.append(row)
    return out


def estimate_junction(spec: JunctionSpec, tpl: Template, seeds: list[int], train_days: int,
                      candidates: int, backend: LocalBackend | DaskBackend | None = None,
                      progress: Callable[[str, int, int], None] | None = None,
                      oracle: bool = True) -> JunctionResult:
    """Generate, train and evaluate one junction.

    Raises
    ------
    RowError
        If the row's scenario cannot be built.
    """
    sc, text = build_scenario(spec, tpl)
    with tempfile.TemporaryDirectory(prefix="gpssignal-estimate-") as work:
        model, _ = train_for_evaluation(sc, work, train_days, seeds, candidates=candidates,
                                        backend=backend, progress=progress)
        # Neither the temporary folder's name nor the timing belongs in the model
        # file: the same list and seeds give the same bytes (the timing goes to
        # the run log).
        for key in ("history", "history_source"):   # temporary paths, not kept
            if key in model.provenance or key == "history":
                model.provenance[key] = "(simulated by this command; not kept)"
        train_wall_s = model.provenance.pop("train_wall_s", None)
        write_model(model, Path(work) / "model.json")
        blob = (Path(work) / "model.json").read_bytes()
    ev = evaluate_controllers(sc, default_arms(sc, model, oracle=oracle), seeds, model=model,
                              backend=backend,
                              progress=(lambda d, n: progress("evaluation", d, n))
                              if progress else None)
    return JunctionResult(spec=spec, scenario_toml=text, model_json=blob, evaluation=ev,
                          train_wall_s=train_wall_s,
                          saturation_flow_vphpl=float(tpl["saturation_flow_vphpl"]))


class JunctionStore(Protocol):
    """Where finished junctions are kept (:class:`gpssignal.estimate.store.EstimateStore`)."""

    def get(self, spec: JunctionSpec, scenario_toml: str) -> JunctionSummary | None:
        """Return the stored junction of ``spec`` with that scenario, if any."""

    def add(self, summary: JunctionSummary) -> None:
        """Store one finished junction at once."""


@dataclass(frozen=True)
class EstimateRun:
    """The outcome of :func:`estimate_all`."""

    #: Every junction estimated, now or before (stored), in row order.
    summaries: list[JunctionSummary]
    #: Rows whose scenario could not be built (found only when building it).
    failed: list[RowError]
    #: Junctions found in the store and not run again.
    reused: int


def estimate_all(specs: list[JunctionSpec], tpl: Template, seeds: list[int], train_days: int,
                 candidates: int, store: JunctionStore | None = None,
                 backend: LocalBackend | DaskBackend | None = None,
                 progress: Callable[[JunctionSpec], Callable[[str, int, int], None] | None]
                 | None = None,
                 on_done: Callable[[JunctionSpec, str], None] | None = None,
                 oracle: bool = True) -> EstimateRun:
    """Estimate every junction not yet in ``store``; store each as it finishes.

    Parameters
    ----------
    specs, tpl, seeds, train_days, candidates, backend, oracle
        As :func:`estimate_junction`, for each spec.
    store : JunctionStore, optional
        Junctions already estimated with the same generated scenario are taken
        from it; each one estimated now is added the moment it finishes, so
        an interrupted estimate keeps every finished junction.
    progress : callable, optional
        ``progress(spec)`` returns the ``progress(stage, done, total)``
        callback of that junction's training and evaluation.
    on_done : callable, optional
        ``on_done(spec, how)`` after each junction; ``how`` is ``"estimated"``,
        ``"stored"`` (taken from the store) or ``"failed"``.
    """
    summaries, failed, reused = [], [], 0
    for spec in specs:
        try:
            _, text = build_scenario(spec, tpl)
        except RowError as e:
            failed.append(e)
            if on_done:
                on_done(spec, "failed")
            continue
        found = store.get(spec, text) if store is not None else None
        how = "stored"
        if found is None:
            how = "estimated"
            found = estimate_junction(spec, tpl, seeds, train_days, candidates, backend=backend,
                                      progress=progress(spec) if progress else None,
                                      oracle=oracle).summary()
            if store is not None:
                store.add(found)
        summaries.append(found)
        reused += how == "stored"
        if on_done:
            on_done(spec, how)
    return EstimateRun(summaries=summaries, failed=failed, reused=reused)


#: First characters that make a spreadsheet read a cell as a formula (CSV
#: injection): such text cells get a leading ``'`` (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: object) -> str:
    """Return user text that no spreadsheet runs as a formula (see :data:`FORMULA_STARTS`)."""
    s = str(text)
    return "'" + s if s.startswith(FORMULA_STARTS) else s


def junction_table(results: Sequence[JunctionResult | JunctionSummary],
                   errors: list[RowError], skipped: Sequence[JunctionSpec] = (),
                   checks: dict[str, CapacityCheck] | None = None) -> pd.DataFrame:
    """One row per junction of the list: annual savings with 95 % CI, or the error.

    ``skipped`` junctions (under-saturated by the capacity check, not
    simulated) get status ``skipped``; ``checks`` (by junction id) fills the
    capacity-check columns of every junction it covers. The user's text cells
    (name, municipality, error) are made safe for spreadsheets with
    :func:`csv_safe`; numbers are left as they are.
    """
    checks = checks or {}

    def check_cols(jid: str) -> dict[str, Any]:
        c = checks.get(jid)
        if c is None:
            return {}
        return {"capacity_check": c.text(), "max_x_existing": c.existing_x}

    rows = []
    for s in skipped:
        rows.append({"row": s.row, "name": csv_safe(s.name),
                     "municipality": csv_safe(s.municipality), "status": "skipped",
                     "junction_id": s.id, **check_cols(s.id),
                     "plan": s.plan_label,
                     "scenario_file": "", "model_file": "", "error": ""})
    for r in (x.summary() for x in results):
        days = r.working_days_per_year
        tl, co2 = mean_ci(np.array(r.time_loss_saved_veh_h)), mean_ci(np.array(r.co2_saved_kg))
        rows.append({
            "row": r.spec.row, "name": csv_safe(r.spec.name),
            "municipality": csv_safe(r.spec.municipality),
            "status": "ok", "junction_id": r.spec.id,
            "time_loss_saved_veh_h_per_year": tl.mean * days,
            "time_loss_ci95_low": tl.low * days, "time_loss_ci95_high": tl.high * days,
            "co2_saved_t_per_year": co2.mean * days / 1000,
            "co2_ci95_low": co2.low * days / 1000, "co2_ci95_high": co2.high * days / 1000,
            **r.columns, **check_cols(r.spec.id),
            "plan": r.spec.plan_label,
            "working_days_per_year": days, "days_simulated": len(r.seeds),
            "scenario_file": f"scenarios/{r.spec.id}.toml",
            "model_file": f"models/{r.spec.id}.json", "error": "",
        })
    for e in errors:
        rows.append({"row": e.row, "name": csv_safe(e.name), "status": "error",
                     "error": csv_safe(e)})
    return pd.DataFrame(rows, columns=JUNCTION_COLUMNS).sort_values(
        "row", kind="stable").reset_index(drop=True)


#: The columns of ``junctions.csv``, in order.
JUNCTION_COLUMNS = [
    "row", "name", "municipality", "status", "junction_id", "plan", "capacity_check",
    "max_x_existing",
    "time_loss_saved_veh_h_per_year", "time_loss_ci95_low", "time_loss_ci95_high",
    "verdict", "co2_saved_t_per_year", "co2_ci95_low", "co2_ci95_high",
    "person_h_saved_per_year", "person_h_ci95_low", "person_h_ci95_high",
    "time_loss_change_pct", "existing_plan", "best_fixed", "gps_vs_best_fixed_s",
    "gps_vs_best_fixed_ci95_low", "gps_vs_best_fixed_ci95_high",
    "gps_vs_best_fixed_verdict", "oracle_saved_veh_h_per_year", "capture_ratio",
    "capture_ci95_low", "capture_ci95_high",
    "fixed_stretch_speed_peak_kmh", "gps_stretch_speed_peak_kmh", "gps_switches_per_day",
    "working_days_per_year", "days_simulated", "scenario_file", "model_file", "error"]


def _alternatives(ev: Evaluation) -> dict[str, Any]:
    """Return the verdict against the existing plan, with the best fixed program and oracle."""
    days = ev.scenario.working_days_per_year
    dt = ev.difference_table().set_index(["kpi", "controller", "baseline"])
    out: dict[str, Any] = {"existing_plan": ev.baseline,
                           "verdict": dt.loc[("total_time_loss_veh_h", "gps", ev.baseline),
                                             "verdict"]}
    # Person-hours (occupants, bus passengers, cyclists, pedestrians): the paired
    # difference GPS − existing, turned into a saving per year.
    p = dt.loc[("total_time_loss_person_h", "gps", ev.baseline)]
    out.update({"person_h_saved_per_year": -p["difference"] * days,
                "person_h_ci95_low": -p["ci95_high"] * days,
                "person_h_ci95_high": -p["ci95_low"] * days})
    if ev.best_fixed is not None:
        r = dt.loc[("mean_time_loss_s", "gps", ev.best_fixed)]
        out.update({"best_fixed": ev.best_fixed, "gps_vs_best_fixed_s": r["difference"],
                    "gps_vs_best_fixed_ci95_low": r["ci95_low"],
                    "gps_vs_best_fixed_ci95_high": r["ci95_high"],
                    "gps_vs_best_fixed_verdict": r["verdict"]})
    cap = ev.capture_table()
    cap = cap[(cap["controller"] == "gps") & (cap["kpi"] == "total_time_loss_veh_h")]
    if len(cap):
        saved = ev.values(ev.baseline, "total_time_loss_veh_h") - ev.values(
            "oracle", "total_time_loss_veh_h")
        out.update({"oracle_saved_veh_h_per_year": float(np.mean(saved)) * days,
                    "capture_ratio": cap["capture_ratio"].iloc[0],
                    "capture_ci95_low": cap["ci95_low"].iloc[0],
                    "capture_ci95_high": cap["ci95_high"].iloc[0]})
    return out


#: The columns of ``movements.csv``, in order.
MOVEMENT_COLUMNS = ["row", "name", "junction_id", "approach", "movement", "group", "lanes",
                    "flow_vph", "vc_existing", "vc_relief", "existing_delay_s", "existing_los",
                    "existing_queue_p95_m", "gps_delay_s", "gps_los", "gps_queue_p95_m"]


def movement_table(results: Sequence[JunctionResult | JunctionSummary]) -> pd.DataFrame:
    """Per estimated junction, approach and movement: v/c, delay, LOS, 95 % queue."""
    rows = [{"row": r.spec.row, "name": csv_safe(r.spec.name), "junction_id": r.spec.id, **m}
            for r in sorted((x.summary() for x in results), key=lambda x: x.spec.row)
            for m in r.movements]
    return pd.DataFrame(rows, columns=MOVEMENT_COLUMNS)


def municipality_table(results: Sequence[JunctionResult | JunctionSummary]) -> pd.DataFrame:
    """Per municipality: the annual savings of its junctions, with the day-sum CI."""
    rows = []
    by: dict[str, list[JunctionSummary]] = {}
    for r in sorted((x.summary() for x in results), key=lambda x: x.spec.row):
        by.setdefault(r.spec.municipality, []).append(r)
    for mun, rs in by.items():
        tl = np.zeros(len(rs[0].seeds))
        co2 = np.zeros_like(tl)
        for r in rs:
            days = r.working_days_per_year
            tl += np.array(r.time_loss_saved_veh_h) * days
            co2 += np.array(r.co2_saved_kg) * days / 1000
        a, b = mean_ci(tl), mean_ci(co2)
        rows.append({"municipality": csv_safe(mun), "junctions": len(rs),
                     "time_loss_saved_veh_h_per_year": a.mean, "time_loss_ci95_low": a.low,
                     "time_loss_ci95_high": a.high, "co2_saved_t_per_year": b.mean,
                     "co2_ci95_low": b.low, "co2_ci95_high": b.high})
    return pd.DataFrame(rows)
