"""The evaluation report: ``report.html`` (self-contained), ``report.md`` and PNGs.

The HTML page embeds every figure as a base64 data URI and has no external
reference (no scripts, fonts or styles fetched), so it opens offline and can
be mailed as one file. Every table names the definition of its numbers
(docs/definitions.md).
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import pandas as pd

from gpssignal.evaluate.metrics import EVAL_KPIS
from gpssignal.experiment.evaluation import Evaluation
from gpssignal.model.io import format_clock
from gpssignal.report.plots import FIGURES, arm_label

__all__ = ["HEADLINE_KPIS", "build_report", "comparison_table", "headline_table", "md_table",
           "md_text", "verdict_sentences"]

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


def _ci(mean: float, low: float, high: float, digits: int = 1) -> str:
    if math.isnan(low) or math.isnan(high):
        return _num(mean, digits)
    return f"{_num(mean, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


def _digits(unit: str) -> int:
    return 2 if unit in ("1/veh",) else 1


def headline_table(ev: Evaluation) -> pd.DataFrame:
    """KPIs per arm: mean [95 % CI] over the days."""
    kt = ev.kpi_table().set_index(["kpi", "controller"])
    units = {k: u for k, u, _, _ in EVAL_KPIS}
    rows = []
    for key in HEADLINE_KPIS:
        if key in _OPTIONAL_KPIS and all(math.isnan(kt.loc[(key, c)]["mean"])
                                         for c in ev.controllers):
            continue
        d = _digits(units[key])
        row: dict[str, Any] = {"KPI": key, "unit": units[key]}
        for c in ev.controllers:
            r = kt.loc[(key, c)]
            name = arm_label(c) + (" (existing)" if c == ev.baseline else "")
            row[name] = _ci(r["mean"], r["ci95_low"], r["ci95_high"], d)
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
            d = _digits(units[key])
            rows.append({"against": _base_name(ev, base), "KPI": key, "unit": units[key],
                         "difference [95 % CI]": _ci(r["difference"], r["ci95_low"],
                                                     r["ci95_high"], d),
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


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _annual_rows(ev: Evaluation) -> pd.DataFrame:
    an = ev.annual_table()
    an = an[an["baseline"] == ev.baseline]
    rows = []
    for _, r in an.iterrows():
        rows.append({"arm": arm_label(r["controller"]),
                     "saving vs " + _base_name(ev, ev.baseline): r["quantity"],
                     "per year [95 % CI]": _ci(r["saving_per_year"], r["ci95_low"],
                                               r["ci95_high"], 1 if "t CO2" in r["unit"]
                                               else 0),
                     "unit": r["unit"], "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def _capture_rows(ev: Evaluation) -> pd.DataFrame:
    cap = ev.capture_table()
    rows = []
    for _, c in cap.iterrows():
        span = (f"[{c['ci95_low']:.2f}, {c['ci95_high']:.2f}]" if c["bounded"]
                else "unbounded")
        rows.append({"arm": arm_label(c["controller"]), "KPI": c["kpi"],
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
    return pd.DataFrame([{"KPI": k, "unit": u, "definition": d} for k, u, d, _ in EVAL_KPIS])


def _context(ev: Evaluation) -> dict[str, str]:
    sc = ev.scenario
    m = ev.meta()
    period = f"{format_clock(sc.start_clock_s)}–{format_clock(sc.start_clock_s + sc.duration_s)}"
    peak = (f"{format_clock(sc.peak_clock_s[0])}–{format_clock(sc.peak_clock_s[1])}"
            if sc.peak_clock_s else "none")
    model = ev.model_info
    trained = ""
    if model:
        trained = (f"GPS model trained for this scenario on days with seeds "
                   f"{model.get('training_seeds')} ({', '.join(model.get('training_days', []))})"
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
    ]
    if len(published):
        out.append(("Published results of this junction", discussion, published))
    return out


def build_report(ev: Evaluation) -> dict[str, bytes]:
    """All report files: PNGs, ``report.html`` and ``report.md``, keyed by file name."""
    files: dict[str, bytes] = {}
    for name, _, fn in FIGURES:
        files[name] = fn(ev)
    ctx = _context(ev)
    intro = (f"Period {ctx['period']} (peak hour {ctx['peak']}), {ctx['days']}. Values are "
             f"means with 95 % confidence intervals over the days (Student t); differences "
             f"are paired day by day. Savings are reported against the "
             f"{ctx['baseline']}, declared in the scenario. Monitored stretch: "
             f"{ctx['stretch']}. {ctx['model']}")
    sections = _sections(ev)
    tables = ("kpis.csv, differences.csv, capture.csv, day_types.csv, annual.csv, runs.csv, "
              "intervals.csv, approaches.csv, switches.csv")
    md = [f"# {ctx['title']}", "", intro, ""]
    for title, paras, table in sections:
        md += [f"## {title}", ""] + [p + "\n" for p in paras]
        md += [md_table(table), ""] if len(table) else []
    md += ["## Figures", ""] + [f"![{title}]({name})\n" for name, title, _ in FIGURES]
    md += ["## Definitions", "", md_table(_definitions()), "",
           f"Full tables: {tables}. Definitions in long form: docs/definitions.md.", "",
           f"_{ctx['ident']}_", ""]
    files["report.md"] = "\n".join(md).encode("utf-8")
    files["report.html"] = _html_page(ctx, intro, sections, files, tables).encode("utf-8")
    return files


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
          "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
          "font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
          "th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
          "figcaption{color:#555;font-size:0.9em}.meta{color:#777;font-size:0.85em}")


def _html_page(ctx: dict[str, str], intro: str,
               sections: list[tuple[str, list[str], pd.DataFrame]],
               files: dict[str, bytes], tables: str) -> str:
    figs = "".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(files[name]).decode()}"><figcaption>{html.escape(title)}'
        f"</figcaption></figure>" for name, title, _ in FIGURES)
    body = "".join(
        f"<h2>{html.escape(title)}</h2>" + "".join(f"<p>{html.escape(p)}</p>" for p in paras)
        + (_html_table(table) if len(table) else "") for title, paras, table in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(ctx['title'])}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(ctx['title'])}</h1>
<p>{html.escape(intro)}</p>
{body}
<h2>Figures</h2>{figs}
<h2>Definitions</h2>{_html_table(_definitions())}
<p class="meta">{html.escape(ctx['ident'])}. Tables: {html.escape(tables)}.</p>
</body></html>
"""
