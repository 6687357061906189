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
from gpssignal.report.plots import FIGURES, LABELS

__all__ = ["HEADLINE_KPIS", "headline_table", "build_report", "PUBLISHED", "md_table"]

#: The KPIs of the headline table, in order.
HEADLINE_KPIS = ["mean_time_loss_s", "total_time_loss_veh_h", "stretch_speed_peak_kmh",
                 "co2_kg", "co2_g_per_veh_km", "stops_per_veh"]

#: The published results of the Vallensbæk pilot (REFERENCE.md, "The Vallensbæk system"),
#: shown next to the simulated ones.
PUBLISHED = [
    ("waste time in the morning rush", "−21 %"),
    ("speed in the most loaded direction", "32 → 38 km/h"),
    ("CO₂ saved", "1.5 t/year"),
]


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
    """KPIs per controller (mean [95 % CI]) and the paired change against the baseline."""
    kt = ev.kpi_table().set_index(["kpi", "controller"])
    dt = ev.difference_table()
    units = {k: u for k, u, _, _ in EVAL_KPIS}
    rows = []
    for key in HEADLINE_KPIS:
        d = _digits(units[key])
        row: dict[str, Any] = {"KPI": key, "unit": units[key]}
        for c in ev.controllers:
            r = kt.loc[(key, c)]
            row[LABELS.get(c, c)] = _ci(r["mean"], r["ci95_low"], r["ci95_high"], d)
        for c in ev.controllers:
            if c == ev.baseline:
                continue
            r = dt[(dt["kpi"] == key) & (dt["controller"] == c) & (dt["baseline"] == ev.baseline)]
            if len(r):
                r0 = r.iloc[0]
                row[f"{LABELS.get(c, c)} − {LABELS.get(ev.baseline, ev.baseline)}"] = (
                    f"{_ci(r0['difference'], r0['ci95_low'], r0['ci95_high'], d)} "
                    f"({r0['relative_pct']:+.1f} %)")
        rows.append(row)
    return pd.DataFrame(rows)


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table."""
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
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
        rows.append({"controller": LABELS.get(r["controller"], r["controller"]),
                     "saving vs " + LABELS.get(ev.baseline, ev.baseline): r["quantity"],
                     "per year [95 % CI]": _ci(r["saving_per_year"], r["ci95_low"],
                                               r["ci95_high"], 2 if "t CO2" in r["unit"]
                                               else 0),
                     "unit": r["unit"]})
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
        "ident": f"scenario {sc.name}, hash {m['scenario_hash']}, gpssignal {m['version']}, "
                 f"{m['workers']} worker(s), {m['wall_s']:.0f} s",
        "stretch": sc.stretches[0].id if sc.stretches else "–",
        "model": trained,
        "baseline": LABELS.get(ev.baseline, ev.baseline),
    }


def _discussion(ev: Evaluation) -> list[str]:
    """Plain-language comparison with the published figures (numbers from the runs)."""
    out: list[str] = []
    dt = ev.difference_table()
    kt = ev.kpi_table().set_index(["kpi", "controller"])
    an = ev.annual_table()
    if "gps" not in ev.controllers or ev.baseline == "gps":
        return out
    d = dt[(dt["controller"] == "gps") & (dt["baseline"] == ev.baseline)].set_index("kpi")
    s0 = kt.loc[("stretch_speed_peak_kmh", ev.baseline), "mean"]
    s1 = kt.loc[("stretch_speed_peak_kmh", "gps"), "mean"]
    co2 = an[(an["controller"] == "gps") & (an["baseline"] == ev.baseline)
             & (an["quantity"] == "co2_kg")]
    out.append(
        f"Simulated, GPS controller against {LABELS.get(ev.baseline)}: time loss "
        f"{d.loc['mean_time_loss_s', 'relative_pct']:+.1f} % per vehicle (published −21 %), "
        f"peak-hour speed on the monitored stretch {s0:.1f} → {s1:.1f} km/h (published "
        f"32 → 38 km/h), CO₂ {co2['saving_per_year'].iloc[0]:.2f} t/year saved "
        f"(published 1.5 t/year)." if len(co2) else "")
    out.append(
        "The published figures come from one field evaluation of the 2019 pilot, in which "
        "other changes may have been made at the same time (REFERENCE.md); the geometry, "
        "volumes, programs and thresholds behind them are not published, so this scenario's "
        "are documented assumptions. A difference between the simulated and published "
        "effect therefore says as much about those assumptions (how far the normal program "
        "is over capacity, how much the relief program adds, how the pilot counted CO₂) as "
        "about the controller. The simulated CO₂ counts every vehicle of the scenario in the "
        "period (all directions); HBEFA4's idle rate is about 3.5 × a measured idle "
        "(REFERENCE.md), so idling-heavy savings are model-sensitive.")
    return [x for x in out if x]


def build_report(ev: Evaluation) -> dict[str, bytes]:
    """All report files: PNGs, ``report.html`` and ``report.md``, keyed by file name."""
    files: dict[str, bytes] = {}
    for name, _, fn in FIGURES:
        files[name] = fn(ev)
    ctx = _context(ev)
    head = headline_table(ev)
    annual = _annual_rows(ev)
    defs = _definitions()
    published = pd.DataFrame(PUBLISHED, columns=["published (Vallensbæk pilot, 2019)", "value"])
    discussion = _discussion(ev)
    intro = (f"Period {ctx['period']} (peak hour {ctx['peak']}), {ctx['days']}. Values are "
             f"means with 95 % confidence intervals over the days (Student t); differences "
             f"are paired day by day against {ctx['baseline']}. Monitored stretch: "
             f"{ctx['stretch']}. {ctx['model']}")
    # Markdown
    md = [f"# {ctx['title']}", "", intro, "", "## Headline", "", md_table(head), "",
          "## Annualised savings", "", md_table(annual), "",
          f"Counted: {ev.annual_table()['counted'].iloc[0] if len(ev.annual_table()) else '–'}.",
          "", "## Published results", "", md_table(published), ""]
    md += [p + "\n" for p in discussion]
    md += ["## Figures", ""]
    md += [f"![{title}]({name})\n" for name, title, _ in FIGURES]
    md += ["## Definitions", "", md_table(defs), "",
           "Full tables: kpis.csv, differences.csv, annual.csv, runs.csv, intervals.csv, "
           "approaches.csv, switches.csv. Definitions in long form: docs/definitions.md.", "",
           f"_{ctx['ident']}_", ""]
    files["report.md"] = "\n".join(md).encode("utf-8")
    # HTML
    figs = "".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(files[name]).decode()}"><figcaption>{html.escape(title)}'
        f"</figcaption></figure>" for name, title, _ in FIGURES)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
             "font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
             "figcaption{color:#555;font-size:0.9em}.meta{color:#777;font-size:0.85em}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(ctx['title'])}</title><style>{style}</style></head>
<body>
<h1>{html.escape(ctx['title'])}</h1>
<p>{html.escape(intro)}</p>
<h2>Headline</h2>{_html_table(head)}
<h2>Annualised savings</h2>{_html_table(annual)}
<p>Counted: {html.escape(str(ev.annual_table()['counted'].iloc[0]) if len(ev.annual_table())
                         else '–')}.</p>
<h2>Published results</h2>{_html_table(published)}
{''.join(f'<p>{html.escape(p)}</p>' for p in discussion)}
<h2>Figures</h2>{figs}
<h2>Definitions</h2>{_html_table(defs)}
<p class="meta">{html.escape(ctx['ident'])}. Tables: kpis.csv, differences.csv, annual.csv,
runs.csv, intervals.csv, approaches.csv, switches.csv.</p>
</body></html>
"""
    files["report.html"] = page.encode("utf-8")
    return files
