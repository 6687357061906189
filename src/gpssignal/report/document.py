"""The evaluation report: ``report.html`` (self-contained), ``report.md`` and PNGs.

Rendered from Jinja2 templates (``report/templates/report.*.j2``, the table
style shared with the estimate's report). The HTML page embeds every figure
as a base64 data URI and has no external reference (no scripts, fonts or
styles fetched), so it opens offline and can be mailed as one file. Tables
use human labels with units (:data:`KPI_LABELS`; the CSV files keep the KPI
keys), every mean and difference is rounded to the precision its interval
allows (:func:`gpssignal.report.numbers.format_estimate`), and every table
names the definition of its numbers (docs/definitions.md).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import html
import logging
import math
import multiprocessing as mp
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import pandas as pd

from gpssignal.estimate.capacity import SATURATION_FLOW_VPHPL, movement_capacity
from gpssignal.evaluate.definitions import level_of_service
from gpssignal.evaluate.metrics import EVAL_KPIS
from gpssignal.experiment.evaluation import Evaluation
from gpssignal.experiment.parallel import _signals_deferred, _worker_init
from gpssignal.model.io import format_clock
from gpssignal.report.labels import arm_label
from gpssignal.report.numbers import format_estimate, round_to_uncertainty
from gpssignal.report.pages import ENV, page_table, timing_diagrams

__all__ = ["FIGURE_PROCESS_WAIT_S", "HEADLINE_KPIS", "KPI_LABELS", "EarlyFigures",
           "approach_table", "build_report", "comparison_table",
           "headline_table", "kpi_label", "md_table", "md_text", "movement_delay_table",
           "movement_table",
           "verdict_sentences"]

logger = logging.getLogger(__name__)

#: Short human names of the KPIs (the unit is shown beside them); the CSV files
#: and docs/definitions.md use the keys.
KPI_LABELS = {
    "vehicles_arrived": "vehicles arriving",
    "total_time_loss_veh_h": "total time loss",
    "mean_time_loss_s": "time loss per vehicle",
    "mean_time_loss_peak_s": "time loss per vehicle, peak hour",
    "mean_travel_time_s": "travel time per vehicle",
    "stretch_speed_peak_kmh": "speed on the stretch, peak hour",
    "stretch_speed_period_kmh": "speed on the stretch, period",
    "stops_per_veh": "stops per vehicle",
    "queue_mean_m": "mean queue, monitored approach",
    "queue_p95_m": "95 % queue, monitored approach",
    "throughput_vph": "throughput",
    "co2_kg": "CO₂",
    "co2_g_per_veh_km": "CO₂ per vehicle-km",
    "fuel_l": "fuel",
    "switches": "program switches",
    "total_time_loss_person_h": "time loss of all persons",
    "mean_time_loss_per_person_s": "time loss per person",
    "bus_passenger_time_loss_person_h": "bus passengers' time loss",
    "cyclist_mean_time_loss_s": "time loss per cyclist",
    "cyclist_time_loss_person_h": "cyclists' time loss",
    "pedestrian_mean_delay_s": "delay per pedestrian",
    "pedestrian_delay_person_h": "pedestrians' delay",
}


def kpi_label(key: str) -> str:
    """Return the human name of a KPI key (the key itself if it has none)."""
    return KPI_LABELS.get(key, key)

#: The KPIs of the headline table, in order.
HEADLINE_KPIS = ["mean_time_loss_s", "total_time_loss_veh_h", "stretch_speed_peak_kmh",
                 "co2_kg", "co2_g_per_veh_km", "stops_per_veh", "total_time_loss_person_h",
                 "mean_time_loss_per_person_s", "bus_passenger_time_loss_person_h",
                 "cyclist_mean_time_loss_s", "pedestrian_mean_delay_s"]
#: Headline KPIs left out when no arm has a value (the scenario has no such road users).
_OPTIONAL_KPIS = {"bus_passenger_time_loss_person_h", "cyclist_mean_time_loss_s",
                  "pedestrian_mean_delay_s"}
#: The KPIs of the comparison and per-day-type tables.
COMPARED_KPIS = ["mean_time_loss_s", "total_time_loss_veh_h", "stretch_speed_peak_kmh",
                 "co2_kg", "total_time_loss_person_h"]
#: The arm the comparisons are about.
SUBJECT = "gps"
#: Verdicts as the verb of a sentence ("the GPS controller saves time").
_VERBS = {"saves": "saves time", "costs": "costs time",
          "no detectable difference": "makes no detectable difference"}


def _num(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _ci(mean: float, low: float, high: float) -> str:
    """``mean [low, high]``, rounded to what the interval allows (format_estimate)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    v, ci = format_estimate(float(mean), float(low), float(high))
    return f"{v} {ci}".strip()


def _pm(mean: float, low: float, high: float) -> str:
    """``mean ±half-width``, rounded to what the interval allows (for the terminal)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    v, ci = format_estimate(float(mean), float(low), float(high))
    if not ci:
        return v
    half, decimals = round_to_uncertainty((float(high) - float(low)) / 2,
                                          (float(high) - float(low)) / 2)
    return f"{v} ±{half:,.{decimals}f}"


def headline_table(ev: Evaluation, compact: bool = False) -> pd.DataFrame:
    """KPIs per arm: mean [95 % CI] over the days (``compact``: mean ±half-width)."""
    kt = ev.kpi_table().set_index(["kpi", "controller"])
    units = {k: u for k, u, _, _ in EVAL_KPIS}
    fmt = _pm if compact else _ci
    rows = []
    for key in HEADLINE_KPIS:
        if key in _OPTIONAL_KPIS and all(math.isnan(kt.loc[(key, c)]["mean"])
                                         for c in ev.controllers):
            continue
        row: dict[str, Any] = {"KPI": kpi_label(key), "unit": units[key]}
        for c in ev.controllers:
            r = kt.loc[(key, c)]
            name = arm_label(c) + (" (existing)" if c == ev.baseline else "")
            row[name] = fmt(r["mean"], r["ci95_low"], r["ci95_high"])
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "–"
    if math.isinf(low) or math.isinf(high) or math.isnan(low):
        return f"{mean:+.1f} % [unbounded]"
    return f"{mean:+.1f} % [{low:+.1f}, {high:+.1f}]"


def comparison_table(ev: Evaluation, controller: str = SUBJECT,
                     day_type: str | None = None) -> pd.DataFrame:
    """Compare ``controller`` with each comparison base: difference, relative change, verdict.

    The relative change's interval is Fieller's (it includes the base's own
    uncertainty); the verdict is at 95 %.
    """
    if controller not in ev.controllers:
        return pd.DataFrame()
    dt = ev.difference_table(day_type)
    units = {k: u for k, u, _, _ in EVAL_KPIS}
    rows = []
    for base in ev.comparison_bases():
        if base == controller:
            continue
        for key in COMPARED_KPIS:
            r = dt[(dt["kpi"] == key) & (dt["controller"] == controller)
                   & (dt["baseline"] == base)].iloc[0]
            rows.append({"against": _base_name(ev, base), "KPI": kpi_label(key),
                         "unit": units[key],
                         "difference [95 % CI]": _ci(r["difference"], r["ci95_low"],
                                                     r["ci95_high"]),
                         "relative [95 % CI]": _pct(r["relative_pct"], r["rel_ci95_low"],
                                                    r["rel_ci95_high"]),
                         "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def _base_name(ev: Evaluation, base: str) -> str:
    if base == ev.baseline:
        return f"existing plan ({arm_label(base)})"
    if base == ev.best_fixed:
        return f"best fixed program ({arm_label(base)})"
    return arm_label(base)


def verdict_sentences(ev: Evaluation, controller: str = SUBJECT) -> list[str]:
    """Answer in words: the controller against each base, and its capture ratio."""
    if controller not in ev.controllers:
        return []
    dt = ev.difference_table().set_index(["kpi", "controller", "baseline"])
    out = []
    for base in ev.comparison_bases():
        if base == controller:
            continue
        r = dt.loc[("mean_time_loss_s", controller, base)]
        diff = _ci(r["difference"], r["ci95_low"], r["ci95_high"])
        rel = _pct(r["relative_pct"], r["rel_ci95_low"], r["rel_ci95_high"])
        verb = _VERBS.get(r["verdict"], r["verdict"])
        out.append(f"Against the {_base_name(ev, base)}, the {arm_label(controller)} "
                   f"{verb}: time loss {diff} s per vehicle ({rel}), {r['n']} days, paired.")
    cap = ev.capture_table()
    cap = cap[(cap["controller"] == controller) & (cap["kpi"] == "total_time_loss_veh_h")]
    if len(cap):
        c = cap.iloc[0]
        span = (f"[{c['ci95_low']:.2f}, {c['ci95_high']:.2f}]" if c["bounded"]
                else f"(interval unbounded: {c['note']})")
        out.append(f"Capture ratio (existing − {arm_label(controller)}) ÷ (existing − "
                   f"hindsight bound), total time loss: {c['capture_ratio']:.2f} {span}. "
                   "1 would mean all that plan selection could save on these days.")
    if ev.best_fixed is not None and ev.selection:
        sel = ev.selection
        out.append(f"The best fixed program, {arm_label(ev.best_fixed)}, was chosen by "
                   f"{sel['rule']} (days {sel['seeds'][0]}–{sel['seeds'][-1]}, not evaluation "
                   "days).")
    return out


def md_text(value: object) -> str:
    """Return ``value`` as inert single-line Markdown text.

    HTML is escaped (a Markdown viewer renders raw HTML, so a user's
    ``<img onerror=...>`` would run), line breaks become spaces and ``|`` is
    escaped, so a cell cannot end a table row or start a new block.
    """
    text = html.escape(str(value), quote=False)
    text = " ".join(text.splitlines())
    return text.replace("|", "\\|")


def md_table(df: pd.DataFrame) -> str:
    """Format a DataFrame as a Markdown table; every cell goes through :func:`md_text`."""
    cols = list(df.columns)
    out = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(md_text(r[c]) for c in cols) + " |")
    return "\n".join(out)


def _annual_rows(ev: Evaluation) -> pd.DataFrame:
    an = ev.annual_table()
    an = an[an["baseline"] == ev.baseline]
    rows = []
    for _, r in an.iterrows():
        rows.append({"arm": arm_label(r["controller"]),
                     "saving vs " + _base_name(ev, ev.baseline): kpi_label(r["quantity"]),
                     "per year [95 % CI]": _ci(r["saving_per_year"], r["ci95_low"],
                                               r["ci95_high"]),
                     "unit": r["unit"].replace("CO2", "CO₂"), "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def _capture_rows(ev: Evaluation) -> pd.DataFrame:
    cap = ev.capture_table()
    rows = []
    for _, c in cap.iterrows():
        span = (f"[{c['ci95_low']:.2f}, {c['ci95_high']:.2f}]" if c["bounded"]
                else "unbounded")
        rows.append({"arm": arm_label(c["controller"]), "KPI": kpi_label(c["kpi"]),
                     "capture ratio [95 % CI]": f"{c['capture_ratio']:.2f} {span}",
                     "days": c["n"]})
    return pd.DataFrame(rows)


def _day_type_rows(ev: Evaluation) -> pd.DataFrame:
    """Per day type: days, mean time loss per arm, and the GPS verdict against existing."""
    tt = ev.day_type_table()
    if not len(tt):
        return pd.DataFrame()
    tt = tt[tt["kpi"] == "mean_time_loss_s"]
    rows = []
    for t, g in tt.groupby("day_type", sort=False):
        row: dict[str, Any] = {"day type": t, "days": int(g["days"].iloc[0])}
        for _, r in g.iterrows():
            row[arm_label(r["controller"]) + ", s/veh"] = _num(r["mean"])
        s = g[g["controller"] == SUBJECT]
        if len(s) and "vs_existing" in s.columns:
            r = s.iloc[0]
            row["GPS − existing [95 % CI]"] = _ci(r["vs_existing"], r["vs_existing_ci95_low"],
                                                  r["vs_existing_ci95_high"])
            row["verdict"] = r["verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


def _definitions() -> pd.DataFrame:
    return pd.DataFrame([{"KPI": kpi_label(k), "key (CSV)": k, "unit": u, "definition": d}
                         for k, u, d, _ in EVAL_KPIS])


def _context(ev: Evaluation) -> dict[str, str]:
    sc = ev.scenario
    m = ev.meta()
    period = f"{format_clock(sc.start_clock_s)}–{format_clock(sc.start_clock_s + sc.duration_s)}"
    peak = (f"{format_clock(sc.peak_clock_s[0])}–{format_clock(sc.peak_clock_s[1])}"
            if sc.peak_clock_s else "none")
    model = ev.model_info
    trained = ""
    if model:
        days = ", ".join(model.get("training_days", []))
        # Only a same-seed model records seeds; the others learn from the days'
        # probe points alone.
        on = (f"days with seeds {model['training_seeds']} ({days})"
              if model.get("training_seeds") else f"the recorded days {days}")
        trained = (f"GPS model trained for this scenario on {on} "
                   f"(method {model.get('method', 'same-seed')}, docs/controller.md)"
                   f"; {model.get('how', 'given with --model')}.")
    return {
        "title": f"gpssignal evaluation — {sc.name}",
        "period": period, "peak": peak,
        "days": f"{len(ev.seeds)} simulated weekdays (seeds {ev.seeds[0]}–{ev.seeds[-1]}); "
                "every controller sees the same demand each day",
        # No worker count or wall time: the report is byte-identical for the
        # same command and seeds (timings are in the command's run log).
        "ident": f"scenario {sc.name}, hash {m['scenario_hash']}, gpssignal {m['version']}",
        "stretch": sc.stretches[0].id if sc.stretches else "–",
        "model": trained,
        "baseline": _base_name(ev, ev.baseline),
    }


def _published(ev: Evaluation) -> tuple[pd.DataFrame, list[str]]:
    """Return the scenario's own published results, with the simulated counterparts in words.

    Empty for a scenario that declares none: published figures of one
    junction never appear in the report of another.
    """
    sc = ev.scenario
    if not sc.published:
        return pd.DataFrame(), []
    table = pd.DataFrame([{"published": r.quantity, "value": r.value, "source": r.source}
                          for r in sc.published])
    text: list[str] = []
    if SUBJECT in ev.controllers:
        dt = ev.difference_table().set_index(["kpi", "controller", "baseline"])
        kt = ev.kpi_table().set_index(["kpi", "controller"])
        an = ev.annual_table()
        co2 = an[(an["controller"] == SUBJECT) & (an["baseline"] == ev.baseline)
                 & (an["quantity"] == "co2_kg")]
        rel = dt.loc[("mean_time_loss_s", SUBJECT, ev.baseline), "relative_pct"]
        s0 = kt.loc[("stretch_speed_peak_kmh", ev.baseline), "mean"]
        s1 = kt.loc[("stretch_speed_peak_kmh", SUBJECT), "mean"]
        text.append(f"Simulated, GPS controller against the {_base_name(ev, ev.baseline)}: "
                    f"time loss {rel:+.1f} % per vehicle, peak-hour speed on the monitored "
                    f"stretch {s0:.1f} → {s1:.1f} km/h, CO₂ "
                    f"{co2['saving_per_year'].iloc[0]:.1f} t/year saved." if len(co2) else "")
    text.append(
        "The published figures come from one field evaluation, in which other changes may "
        "have been made at the same time; the geometry, volumes, programs and thresholds "
        "behind them are not published, so this scenario's are documented assumptions. A "
        "difference between the simulated and published effect therefore says as much about "
        "those assumptions (which plan ran before, how far it was over capacity, how the "
        "pilot counted CO₂) as about the controller. The simulated CO₂ counts every vehicle "
        "of the scenario in the period (all directions); HBEFA4's idle rate is about 3.5 × a "
        "measured idle (docs/references.md#measured-idle), so idling-heavy savings are "
        "model-sensitive.")
    return table, [x for x in text if x]


def _sections(ev: Evaluation) -> list[tuple[str, list[str], pd.DataFrame]]:
    """Return the report's sections in order: (title, paragraphs, table)."""
    published, discussion = _published(ev)
    an = ev.annual_table()
    counted = [f"Counted: {an['counted'].iloc[0]}."] if len(an) else []
    types = ", ".join(f"{d.name} {100 * d.frequency:g} %" for d in ev.scenario.day_types)
    out = [
        ("The answer", verdict_sentences(ev), pd.DataFrame()),
        ("Every plan, side by side", [], headline_table(ev)),
        ("GPS controller against the alternatives",
         ["Paired day by day; relative changes with Fieller's interval (it includes the "
          "baseline's own uncertainty); verdict at 95 % (docs/statistics.md)."],
         comparison_table(ev)),
        ("How much of the possible saving the GPS controller captures",
         ["The hindsight bound is the best schedule of the junction's programs per "
          "15-min slot for each day, found afterwards by simulating that day "
          "(docs/evaluation.md); the capture ratio is (existing − GPS) ÷ (existing − "
          "bound)."], _capture_rows(ev)),
        ("By day type", [f"Each day draws its type from the scenario's mix ({types})."
                         if types else "The scenario has no day-type mix: every day is "
                         "ordinary."], _day_type_rows(ev)),
        ("Annualised savings against the existing plan", counted, _annual_rows(ev)),
        *_movement_section(ev),
    ]
    if len(published):
        out.append(("Published results of this junction", discussion, published))
    return out


def _program_of(ev: Evaluation, controller: str) -> str | None:
    """Return the program a ``fixed:P`` arm runs, else None."""
    kind, _, program = controller.partition(":")
    return program if kind == "fixed" and program else None


def movement_table(sc: Any, saturation_flow_vphpl: float = SATURATION_FLOW_VPHPL
                   ) -> pd.DataFrame:
    """Per junction approach and movement: flow and v/c under each program.

    From the scenario's demand and programs
    (:func:`gpssignal.estimate.capacity.movement_capacity`), not from a
    simulation: the v/c a controller meets is that of the program it runs.
    """
    rows = movement_capacity(sc, saturation_flow_vphpl)
    programs = [p.name for j in sc.junctions for p in j.programs]
    programs = list(dict.fromkeys(programs))
    out = []
    for r in rows:
        row: dict[str, Any] = {"junction": r["junction"], "approach": r["approach"],
                               "movement": r["movement"], "signal group": r["group"],
                               "lanes": r["lanes"],
                               "flow [veh/h, busiest 15 min]": f"{r['flow_vph']:,.0f}"}
        for p in programs:
            x = r["x"].get(p)
            row[f"v/c, {p}"] = "–" if x is None else f"{x:.2f}"
        out.append(row)
    df = pd.DataFrame(out)
    if len(df) and df["junction"].nunique() == 1:
        df = df.drop(columns="junction")
    return df


def approach_table(ev: Evaluation, controllers: list[str] | None = None) -> pd.DataFrame:
    """Per approach and controller: control delay, LOS and 95 % queue, means over the days.

    Control delay (HCM) and its LOS letter, and the 95th percentile of the
    approach's queue (longest lane, 1-s samples), each the mean over the
    evaluation days of the per-day value (docs/definitions.md).
    """
    am = ev.approach_means()
    controllers = controllers or ev.controllers
    rows = []
    for (junction, approach), g in am.groupby(["junction", "approach_link"], sort=False):
        row: dict[str, Any] = {"junction": junction, "approach": approach}
        for c in controllers:
            r = g[g["controller"] == c]
            if not len(r):
                continue
            d = float(r["control_delay_s"].iloc[0])
            los = str(level_of_service(d)[0]) if np.isfinite(d) else ""
            name = arm_label(c) + (" (existing)" if c == ev.baseline else "")
            row[f"{name}: delay [s/veh] (LOS)"] = f"{d:.0f} ({los})" if los else "–"
            q = float(r["queue_p95_m"].iloc[0])
            row[f"{name}: 95 % queue [m]"] = f"{q:.0f}" if np.isfinite(q) else "–"
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df) and df["junction"].nunique() == 1:
        df = df.drop(columns="junction")
    return df


def movement_delay_table(ev: Evaluation, controllers: list[str] | None = None
                         ) -> pd.DataFrame:
    """Per approach, movement and controller: HCM control delay and LOS, means over the days.

    Each movement's delay is the mean over the evaluation days of its
    per-day control delay (days on which it had vehicles; docs/definitions.md).
    """
    mm = ev.movement_means()
    controllers = controllers or ev.controllers
    rows = []
    for (junction, approach, movement), g in mm.groupby(
            ["junction", "approach_link", "movement"], sort=False):
        row: dict[str, Any] = {"junction": junction, "approach": approach,
                               "movement": movement}
        for c in controllers:
            r = g[g["controller"] == c]
            if not len(r):
                continue
            d = float(r["control_delay_s"].iloc[0])
            name = arm_label(c) + (" (existing)" if c == ev.baseline else "")
            row[f"{name}: delay [s/veh] (LOS)"] = (
                f"{d:.0f} ({level_of_service(d)[0]})" if np.isfinite(d) else "–")
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df) and df["junction"].nunique() == 1:
        df = df.drop(columns="junction")
    return df


def _movement_section(ev: Evaluation) -> list[tuple[str, list[str], pd.DataFrame]]:
    """Return the sections of per-movement v/c and per-approach delay, LOS and queue."""
    mv = movement_table(ev.scenario)
    fixed = ", ".join(f"{arm_label(c)} runs {p}" for c in ev.controllers
                      if (p := _program_of(ev, c)))
    return [
        ("Per movement: demand and v/c",
         [f"Degree of saturation (v/c) of each movement's lane group in the busiest 15 min "
          f"of an average day, under each program: flow ÷ ({SATURATION_FLOW_VPHPL:,.0f} "
          "veh/h per lane × lanes × green ÷ cycle) (HCM; docs/references.md"
          "#saturation-flow). A turn that gives way gets the gap-acceptance capacity of the "
          "opposing flow during green plus one vehicle per cycle at amber (HCM's permitted "
          "turn). A short lane counts as a full lane and the opposing queue's discharge is "
          "not counted: v/c is a lower bound there. Approaches fed by "
          "an upstream junction are not listed (their flow is not scenario demand)."
          + (f" Fixed arms: {fixed}." if fixed else "")], mv),
        ("Per movement: control delay and level of service",
         ["Simulated, for each controller: HCM control delay per vehicle of each movement "
          "and its LOS (A ≤ 10, B ≤ 20, C ≤ 35, D ≤ 55, E ≤ 80 s, else F), the mean over "
          "the days on which the movement had vehicles."],
         movement_delay_table(ev)),
        ("Per approach: control delay, level of service and 95 % queue",
         ["Simulated, for each controller: the approach's control delay (all its movements "
          "together) with its LOS, and the 95th percentile of its queue (longest lane, 1-s "
          "samples: lanes are shared by movements, so the queue is per approach), each the "
          "mean over the days (approaches.csv)."],
         approach_table(ev)),
    ]


#: A cell that reads as a number (or the missing-value dash): right-aligned.
_NUMBER = re.compile(r"^([+\-−]?\d|–$)")


def _page_table(df: pd.DataFrame) -> dict[str, Any]:
    """Return a DataFrame as the templates' table: numbers right-aligned, verdicts coloured."""
    cols = [str(c) for c in df.columns]
    rows = df.astype(object).where(df.notna(), "–").values.tolist()
    numeric = [c for k, c in enumerate(cols)
               if rows and all(_NUMBER.match(str(r[k])) for r in rows)]
    return page_table(cols, rows, numeric=numeric, verdicts=[c for c in cols if "verdict" in c])


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while figures are drawn.

    Matplotlib makes many objects per figure, and with an evaluation's large
    heap the collector's passes took 15-20 % of the drawing time while the
    time–space diagram had a line artist per vehicle (now one artist for
    all: within the noise, and the heap grows with the evaluation). What
    the figures leave is collected once the collector runs again.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _draw(ev: Evaluation, names: tuple[str, ...]) -> dict[str, bytes]:
    # matplotlib (0.3 s to import) only when drawing: an evaluation starts its
    # workers first, and the figures import it meanwhile.
    from gpssignal.report.plots import FIGURES

    with _collector_paused():
        return {name: fn(ev) for name, _, fn in FIGURES if name in names}


def _can_fork() -> bool:
    """Whether a process can be forked cheaply and safely here (Linux)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


#: How long :meth:`EarlyFigures.result` waits for the forked figure process [s].
#: The figures it draws take about a second or less (all the report's figures
#: about 1.5 s of CPU for the 10-day evaluation of scenarios/vallensbaek.toml),
#: and the child has had the selection runs' time besides. The limit is only
#: against a child that hangs (a lock another thread held at the fork, copied
#: locked): 60 s leaves a busy machine or a larger evaluation dozens of times
#: the usual time, and stopping a child that would have finished costs only
#: drawing its figures again here (the same bytes).
FIGURE_PROCESS_WAIT_S = 60.0


def _draw_forked(parent_pid: int, conn: Connection, ev: Evaluation,
                 names: tuple[str, ...]) -> None:
    """Draw ``names`` in the forked process; send the figures, or why there are none."""
    # Like a pool worker: it dies with its parent, and leaves Ctrl-C to it.
    _worker_init(parent_pid)
    try:
        figures: dict[str, bytes] | str = _draw(ev, names)
    except Exception as err:   # drawn again at the end, where the error is raised
        figures = f"{type(err).__name__}: {err}"
    conn.send(figures)
    conn.close()


class EarlyFigures:
    """The report's figures, drawn while this process has other work to do.

    With workers, the process that runs an evaluation mostly waits:

    * :meth:`start_showcase` (``on_showcase`` of
      :func:`~gpssignal.experiment.evaluation.evaluate_controllers`) draws
      the showcase figures (:data:`~gpssignal.report.plots.SHOWCASE_FIGURES`),
      which need only the showcase day, whose runs come first, in a thread
      while the workers simulate the other days;
    * :meth:`start_rest` (``on_days``) draws the other figures in a forked
      process (Linux) once every day is in, while the selection runs go on
      and this process makes the tables and the report's text.

    :meth:`result` waits for them; pass it to :func:`build_report`. Nothing
    else may draw with matplotlib in this process until it has returned.
    """

    def __init__(self) -> None:
        self._showcase: Future[dict[str, bytes]] | None = None
        self._child: tuple[BaseProcess, Connection] | None = None
        self._forked: dict[str, bytes] = {}

    def start_showcase(self, ev: Evaluation) -> None:
        """Begin drawing the showcase figures of ``ev`` (its showcase runs suffice)."""
        from gpssignal.report.plots import SHOWCASE_FIGURES

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpssignal-figures")
        self._showcase = pool.submit(_draw, ev, SHOWCASE_FIGURES)
        pool.shutdown(wait=False)

    def start_rest(self, ev: Evaluation) -> None:
        """Begin drawing the figures not yet started, in a forked process (Linux only)."""
        if not _can_fork():
            return
        if self._showcase is not None:
            self._showcase.exception()   # no thread may be drawing when the process forks
        # The intervals of the figures and of the tables need scipy.special: import
        # it once, here, while the workers still run, for both processes.
        import scipy.special  # noqa: F401

        from gpssignal.report.plots import FIGURES, SHOWCASE_FIGURES

        names = tuple(n for n, _, _ in FIGURES if self._showcase is None
                      or n not in SHOWCASE_FIGURES)
        if not set(names) & set(SHOWCASE_FIGURES):
            # The other figures need no showcase: leave the trajectories behind.
            ev = dataclasses.replace(ev, replications=[
                dataclasses.replace(r, showcase=None) for r in ev.replications])
        for stream in (sys.stdout, sys.stderr):   # the child flushes its copy on exit
            if stream is not None:
                stream.flush()
        ctx = mp.get_context("fork")
        try:
            receive, send = ctx.Pipe(duplex=False)
        except OSError as err:   # no pipe to be had: build_report draws them
            logger.warning("figures drawn at the end: %s", err)
            return
        # Daemonic: when this process exits (after Ctrl-C, say), multiprocessing
        # ends it instead of waiting for it.
        child = ctx.Process(target=_draw_forked, args=(os.getpid(), send, ev, names),
                            name="gpssignal-figures", daemon=True)
        try:
            with _signals_deferred():   # an interrupt raised inside the fork is lost
                child.start()
        except OSError as err:   # no process to be had: build_report draws them
            logger.warning("figures drawn at the end: %s", err)
            receive.close()
            return
        finally:
            # Only the child keeps the sending end, so its death reads as the end
            # of the pipe.
            send.close()
        self._child = (child, receive)

    def result(self) -> dict[str, bytes]:
        """Wait for the figures started; return them by file name (empty if none).

        A forked process that died (killed, out of memory) or has sent nothing
        :data:`FIGURE_PROCESS_WAIT_S` after this call began (hung) gives none:
        it is killed and reaped, and :func:`build_report` draws its figures.
        """
        out: dict[str, bytes] = {}
        if self._showcase is not None:
            out.update(self._showcase.result())
        if self._child is not None:
            child, receive = self._child
            self._child = None
            self._forked = _collect(child, receive, FIGURE_PROCESS_WAIT_S)
        return {**out, **self._forked}


def _collect(child: BaseProcess, receive: Connection, wait_s: float) -> dict[str, bytes]:
    """Return the figures ``child`` sends within ``wait_s`` [s]; end and reap it in any case."""
    got: dict[str, bytes] | str = "it ended without them"
    try:
        # The end of the pipe (the child died) also makes it ready; so does the
        # child's exit, should anything else still hold the sending end.
        if not mp_connection.wait([receive, child.sentinel], timeout=wait_s):
            got = f"it sent nothing within {wait_s:g} s and was stopped"
        elif receive.poll(0):
            # The child pickled the figures before sending their first byte:
            # the rest follows at once.
            got = receive.recv()
    except (EOFError, OSError):
        pass
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()   # reaped: no zombie left
        code = child.exitcode
        child.close()
    if isinstance(got, str):
        logger.warning("figures drawn at the end: the figure process (exit code %s): %s",
                       code, got)
        return {}
    return got


def build_report(ev: Evaluation, drawn: Mapping[str, bytes] | Callable[[], Mapping[str, bytes]]
                 | None = None) -> dict[str, bytes]:
    """All report files: PNGs, ``report.html`` and ``report.md``, keyed by file name.

    ``drawn``: figures already drawn, by file name, or a function that returns
    them (e.g. :meth:`EarlyFigures.result`), called once the report's tables
    are made; the others are drawn here.
    """
    ctx = _context(ev)
    intro = (f"Period {ctx['period']} (peak hour {ctx['peak']}), {ctx['days']}. Values are "
             f"means with 95 % confidence intervals over the days (Student t), each rounded "
             f"to the precision its interval allows; differences are paired day by day. "
             f"Savings are reported against the {ctx['baseline']}, declared in the scenario. "
             f"Monitored stretch: {ctx['stretch']}. {ctx['model']}")
    sections = _sections(ev)
    tables = ("kpis.csv, differences.csv, capture.csv, day_types.csv, annual.csv, runs.csv, "
              "intervals.csv, approaches.csv, switches.csv")
    timings = timing_diagrams(ev.scenario)
    from gpssignal.report.plots import FIGURES

    got = drawn() if callable(drawn) else (drawn or {})
    got = {**got, **_draw(ev, tuple(name for name, _, _ in FIGURES if name not in got))}
    files = {name: got[name] for name, _, _ in FIGURES}
    figures = [{"name": name, "title": title,
                "data": base64.b64encode(files[name]).decode()} for name, title, _ in FIGURES]
    md = ENV.get_template("report.md.j2").render(
        title=md_text(ctx["title"]), intro=md_text(intro), tables=tables,
        ident=md_text(ctx["ident"]),
        sections=[{"title": md_text(t), "paragraphs": [md_text(p) for p in paras],
                   "table": md_table(table) if len(table) else ""}
                  for t, paras, table in sections],
        figures=[{"name": f["name"], "title": md_text(f["title"])} for f in figures],
        definitions=md_table(_definitions()),
        timings=[{"title": md_text(d["title"]),
                  "rows": [{"group": md_text(r["group"]), "green": r["green"]}
                           for r in d["rows"]]} for d in timings])
    files["report.md"] = md.encode("utf-8")
    page = ENV.get_template("report.html.j2").render(
        title=ctx["title"], intro=intro, ident=ctx["ident"], tables=tables, figures=figures,
        sections=[{"title": t, "paragraphs": paras, "table": _page_table(table)}
                  for t, paras, table in sections],
        definitions=_page_table(_definitions()), timings=timings)
    files["report.html"] = page.encode("utf-8")
    return files
