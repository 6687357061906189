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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal.control.io import write_model
from gpssignal.estimate.junctions import JunctionSpec, RowError, Template, build_scenario
from gpssignal.evaluate.statistics import mean_ci
from gpssignal.experiment.evaluation import (
    Evaluation,
    default_arms,
    evaluate_controllers,
    train_for_evaluation,
)
from gpssignal.experiment.parallel import DaskBackend, LocalBackend

__all__ = ["FORMULA_STARTS", "JunctionResult", "csv_safe", "estimate_junction", "junction_table",
           "municipality_table"]


@dataclass
class JunctionResult:
    """One estimated junction: its row, generated scenario and model, and evaluation."""

    spec: JunctionSpec
    scenario_toml: str
    model_json: bytes
    evaluation: Evaluation
    #: Wall time of the model's training [s] (for the run log: not in the model file).
    train_wall_s: float | None = None

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
        model.provenance["history"] = "(simulated by this command; not kept)"
        train_wall_s = model.provenance.pop("train_wall_s", None)
        write_model(model, Path(work) / "model.json")
        blob = (Path(work) / "model.json").read_bytes()
    ev = evaluate_controllers(sc, default_arms(sc, model, oracle=oracle), seeds, model=model,
                              backend=backend,
                              progress=(lambda d, n: progress("evaluation", d, n))
                              if progress else None)
    return JunctionResult(spec=spec, scenario_toml=text, model_json=blob, evaluation=ev,
                          train_wall_s=train_wall_s)


#: First characters that make a spreadsheet read a cell as a formula (CSV
#: injection): such text cells get a leading ``'`` (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: object) -> str:
    """Return user text that no spreadsheet runs as a formula (see :data:`FORMULA_STARTS`)."""
    s = str(text)
    return "'" + s if s.startswith(FORMULA_STARTS) else s


def junction_table(results: list[JunctionResult], errors: list[RowError]) -> pd.DataFrame:
    """One row per junction of the list: annual savings with 95 % CI, or the error.

    The user's text cells (name, municipality, error) are made safe for
    spreadsheets with :func:`csv_safe`; numbers are left as they are.
    """
    rows = []
    for r in results:
        ev = r.evaluation
        days = ev.scenario.working_days_per_year
        d = r.daily_savings()
        tl, co2 = mean_ci(d["time_loss_veh_h"]), mean_ci(d["co2_kg"])
        kt = ev.kpi_table().set_index(["kpi", "controller"])["mean"]
        rows.append({
            "row": r.spec.row, "name": csv_safe(r.spec.name),
            "municipality": csv_safe(r.spec.municipality),
            "status": "ok", "junction_id": r.spec.id,
            "time_loss_saved_veh_h_per_year": tl.mean * days,
            "time_loss_ci95_low": tl.low * days, "time_loss_ci95_high": tl.high * days,
            "co2_saved_t_per_year": co2.mean * days / 1000,
            "co2_ci95_low": co2.low * days / 1000, "co2_ci95_high": co2.high * days / 1000,
            "time_loss_change_pct": 100 * (kt[("mean_time_loss_s", "gps")]
                                           / kt[("mean_time_loss_s", ev.baseline)] - 1),
            "fixed_stretch_speed_peak_kmh": kt[("stretch_speed_peak_kmh", ev.baseline)],
            **_alternatives(ev),
            "gps_stretch_speed_peak_kmh": kt[("stretch_speed_peak_kmh", "gps")],
            "working_days_per_year": days, "days_simulated": len(ev.seeds),
            "scenario_file": f"scenarios/{r.spec.id}.toml",
            "model_file": f"models/{r.spec.id}.json", "error": "",
        })
    for e in errors:
        rows.append({"row": e.row, "name": csv_safe(e.name), "status": "error",
                     "error": csv_safe(e)})
    cols = ["row", "name", "municipality", "status", "junction_id",
            "time_loss_saved_veh_h_per_year", "time_loss_ci95_low", "time_loss_ci95_high",
            "verdict", "co2_saved_t_per_year", "co2_ci95_low", "co2_ci95_high",
            "time_loss_change_pct", "existing_plan", "best_fixed", "gps_vs_best_fixed_s",
            "gps_vs_best_fixed_ci95_low", "gps_vs_best_fixed_ci95_high",
            "gps_vs_best_fixed_verdict", "oracle_saved_veh_h_per_year", "capture_ratio",
            "capture_ci95_low", "capture_ci95_high",
            "fixed_stretch_speed_peak_kmh", "gps_stretch_speed_peak_kmh",
            "working_days_per_year", "days_simulated", "scenario_file", "model_file", "error"]
    return pd.DataFrame(rows, columns=cols).sort_values("row", kind="stable").reset_index(
        drop=True)


def _alternatives(ev: Evaluation) -> dict[str, Any]:
    """Return the verdict against the existing plan, with the best fixed program and oracle."""
    days = ev.scenario.working_days_per_year
    dt = ev.difference_table().set_index(["kpi", "controller", "baseline"])
    out: dict[str, Any] = {"existing_plan": ev.baseline,
                           "verdict": dt.loc[("total_time_loss_veh_h", "gps", ev.baseline),
                                             "verdict"]}
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


def municipality_table(results: list[JunctionResult]) -> pd.DataFrame:
    """Per municipality: the annual savings of its junctions, with the day-sum CI."""
    rows = []
    by: dict[str, list[JunctionResult]] = {}
    for r in results:
        by.setdefault(r.spec.municipality, []).append(r)
    for mun, rs in by.items():
        tl = np.zeros(len(rs[0].evaluation.seeds))
        co2 = np.zeros_like(tl)
        for r in rs:
            d = r.daily_savings()
            days = r.evaluation.scenario.working_days_per_year
            tl += d["time_loss_veh_h"].to_numpy() * days
            co2 += d["co2_kg"].to_numpy() * days / 1000
        a, b = mean_ci(tl), mean_ci(co2)
        rows.append({"municipality": csv_safe(mun), "junctions": len(rs),
                     "time_loss_saved_veh_h_per_year": a.mean, "time_loss_ci95_low": a.low,
                     "time_loss_ci95_high": a.high, "co2_saved_t_per_year": b.mean,
                     "co2_ci95_low": b.low, "co2_ci95_high": b.high})
    return pd.DataFrame(rows)
