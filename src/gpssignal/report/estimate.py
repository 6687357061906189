"""Report of the CO₂ estimator: per junction and per municipality, HTML and Markdown.

Rendered from Jinja2 templates (``report/templates/estimate.*.j2``). The
report leads with a plain answer per junction and per municipality (saves /
no detectable difference / costs, at 95 %), gives each saving rounded to the
precision its interval allows, with human labels and units, plots the
savings with their intervals coloured by sign, and ends with the caveats of
the method.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gpssignal.model.scenario import Scenario
from gpssignal.report.document import md_table, md_text
from gpssignal.report.numbers import format_estimate
from gpssignal.report.pages import ENV, timing_diagrams

__all__ = ["estimate_report", "municipality_verdict"]

#: Bar colours: a saving whose interval lies above 0, a cost below 0, and
#: no detectable difference (the interval includes 0).
_COLOURS = {"saves": "#1a7f37", "costs": "#b42318", "no detectable difference": "#9e9e9e"}


def municipality_verdict(low: float, high: float) -> str:
    """Return the plain verdict of a saving's 95 % interval (positive = saves)."""
    if math.isfinite(low) and low > 0:
        return "saves"
    if math.isfinite(high) and high < 0:
        return "costs"
    return "no detectable difference"


def _figure(junctions: pd.DataFrame) -> bytes:
    ok = junctions[junctions["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 + 0.45 * max(len(ok), 1)))
    y = np.arange(len(ok))
    for ax, (col, lo, hi, label) in zip(axes, [
            ("time_loss_saved_veh_h_per_year", "time_loss_ci95_low", "time_loss_ci95_high",
             "time loss saved [veh·h/year]"),
            ("co2_saved_t_per_year", "co2_ci95_low", "co2_ci95_high",
             "CO2 saved [t/year]")], strict=True):
        m = ok[col].to_numpy(float)
        low, high = ok[lo].to_numpy(float), ok[hi].to_numpy(float)
        err = np.vstack([m - low, high - m])
        colours = [_COLOURS[municipality_verdict(a, b)] for a, b in zip(low, high, strict=True)]
        ax.barh(y, m, xerr=np.nan_to_num(err), color=colours, capsize=3)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_yticks(y)
        # A "$" would start matplotlib mathtext (and may fail to parse): show it as is.
        ax.set_yticklabels([str(n).replace("$", r"\$") for n in ok["name"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label + " (95 % CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticklabels([])
    fig.suptitle("GPS plan selection against the existing plan, per junction "
                 "(green: saves, red: costs, grey: no detectable difference; 95 %)",
                 fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _cell(text: str, css: str = "") -> dict[str, str]:
    return {"text": text, "css": css}


def _saving(r: pd.Series, col: str, lo: str, hi: str) -> str:
    v, ci = format_estimate(float(r[col]), float(r[lo]), float(r[hi]))
    return f"{v} {ci}".strip()


def _num(x: object, digits: int) -> str:
    return "" if x is None or pd.isna(x) else f"{float(x):,.{digits}f}"  # type: ignore[arg-type]


_JUNCTION_COLUMNS = [
    "row", "junction", "municipality", "answer", "time loss saved [veh·h/year, 95 % CI]",
    "CO₂ saved [t/year, 95 % CI]", "person-hours saved [person·h/year, 95 % CI]",
    "GPS switches per day", "capacity check", "plan", "note"]
_MUNICIPALITY_COLUMNS = ["municipality", "junctions", "answer",
                         "time loss saved [veh·h/year, 95 % CI]",
                         "CO₂ saved [t/year, 95 % CI]"]


def _junction_rows(junctions: pd.DataFrame) -> list[list[dict[str, str]]]:
    rows = []
    for _, r in junctions.iterrows():
        status = str(r["status"])
        check = str(r.get("capacity_check", "") or "")
        check = check.split(":")[0] if check and check != "nan" else ""
        plan = str(r.get("plan", "") or "")
        plan = "" if plan == "nan" else plan
        if status == "ok":
            verdict = str(r["verdict"])
            cells = [_cell(verdict, _css(verdict)),
                     _cell(_saving(r, "time_loss_saved_veh_h_per_year", "time_loss_ci95_low",
                                   "time_loss_ci95_high"), "num"),
                     _cell(_saving(r, "co2_saved_t_per_year", "co2_ci95_low",
                                   "co2_ci95_high"), "num"),
                     _cell(_saving(r, "person_h_saved_per_year", "person_h_ci95_low",
                                   "person_h_ci95_high"), "num"),
                     _cell(_num(r.get("gps_switches_per_day"), 1), "num"),
                     _cell(check), _cell(plan), _cell("")]
        elif status == "skipped":
            cells = [_cell("not simulated: under-saturated, no queue for plan selection to relieve",
                           "none"), _cell(""), _cell(""), _cell(""), _cell(""), _cell(check),
                     _cell(plan), _cell("")]
        else:
            cells = [_cell("error", "costs"), _cell(""), _cell(""), _cell(""), _cell(""),
                     _cell(""), _cell(""), _cell(str(r.get("error", "")))]
        rows.append([_cell(str(r["row"])), _cell(str(r["name"])),
                     _cell("" if pd.isna(r["municipality"]) else str(r["municipality"])),
                     *cells])
    return rows


def _css(verdict: str) -> str:
    return {"saves": "saves", "costs": "costs"}.get(verdict, "none")


def _municipality_rows(municipalities: pd.DataFrame) -> list[list[dict[str, str]]]:
    rows = []
    for _, r in municipalities.iterrows():
        verdict = municipality_verdict(float(r["time_loss_ci95_low"]),
                                       float(r["time_loss_ci95_high"]))
        rows.append([_cell(str(r["municipality"])), _cell(str(r["junctions"]), "num"),
                     _cell(verdict, _css(verdict)),
                     _cell(_saving(r, "time_loss_saved_veh_h_per_year", "time_loss_ci95_low",
                                   "time_loss_ci95_high"), "num"),
                     _cell(_saving(r, "co2_saved_t_per_year", "co2_ci95_low",
                                   "co2_ci95_high"), "num")])
    return rows


def _answer(junctions: pd.DataFrame) -> list[str]:
    ok = junctions[junctions["status"] == "ok"]
    counts = ok["verdict"].value_counts()
    lines = [f"{len(ok)} junction(s) simulated: {counts.get('saves', 0)} save time with GPS "
             f"plan selection, {counts.get('no detectable difference', 0)} show no detectable "
             f"difference and {counts.get('costs', 0)} cost time, against their existing "
             "plan, at 95 %."]
    skipped = int((junctions["status"] == "skipped").sum())
    if skipped:
        lines.append(f"{skipped} junction(s) not simulated: under-saturated in every 15 min "
                     "even on a busy day: no queue for plan selection to relieve.")
    errors = int((junctions["status"] == "error").sum())
    if errors:
        lines.append(f"{errors} row(s) of the list could not be used (see the table).")
    if "gps_switches_per_day" in ok and len(ok):
        never = int((ok["gps_switches_per_day"].fillna(0) == 0).sum())
        if never:
            lines.append(f"At {never} junction(s) the trained controller never switched: "
                         "it kept the existing plan's default program.")
    return lines


def _caveats(junctions: pd.DataFrame) -> list[str]:
    out = []
    plans = junctions.get("plan", pd.Series(dtype=object)).astype(str)
    assumed = int((plans == "Webster split (assumed)").sum())
    if assumed:
        out.append(f"The existing plan of {assumed} junction(s) was not given and is assumed to "
                   "be a Webster split of the volumes: a real plan that is less well balanced "
                   "leaves more for plan selection to gain (give green_ns_s and green_ew_s, or a "
                   "program_file).")
    out += [
        "Each junction is simulated alone, as a two-phase point junction with one signal "
        "group per arm, the template's approach lengths, fleet and day-to-day variation; "
        "left turns do not give way to opposing traffic there (no give-way rules), so "
        "permissive lefts look better than they are.",
        "The generated scenarios have no cyclists and no pedestrian crossings: their delay "
        "is not in these figures, and a relief program may cost them time "
        "(docs/definitions.md).",
        "CO₂ is HBEFA4's tailpipe CO₂ as in Eclipse SUMO; idling while waiting to enter is "
        "counted at the class's idle rate. HBEFA4's idle rate is about 3.5 × a measured idle "
        "(docs/references.md#measured-idle), so savings that come from less idling are "
        "model-sensitive.",
        "Annual figures are one simulated period per working day; other times of day are "
        "not counted.",
        "Each junction's GPS model is trained on simulated history days by re-simulating "
        "those very days (the same-seed search): an upper bound of what training on recorded "
        "probe data finds. On the pilot scenario the search an operator can run on recorded "
        "data (reconstructed days, fresh seeds) chose the same setting (docs/controller.md).",
    ]
    return out


#: The per-movement table's columns (``movements``: one row per junction, approach and
#: movement, see :func:`gpssignal.estimate.run.movement_rows`).
_MOVEMENT_COLUMNS = {
    "name": "junction", "approach": "approach", "movement": "movement",
    "flow_vph": "flow [veh/h, busiest 15 min]", "vc_existing": "v/c, existing plan",
    "vc_relief": "v/c, relief program", "existing_delay_s": "existing: delay [s/veh] (LOS)",
    "existing_queue_p95_m": "existing: 95 % queue [m]",
    "gps_delay_s": "GPS: delay [s/veh] (LOS)", "gps_queue_p95_m": "GPS: 95 % queue [m]"}
_MOVEMENTS_NOTE = (
    "v/c: the degree of saturation of the movement's lane group in the busiest 15 min of an "
    "average day, under the existing plan and the relief program (flow ÷ saturation flow × "
    "lanes × green ÷ cycle; HCM). Delay (HCM control delay, LOS A ≤ 10, B ≤ 20, C ≤ 35, "
    "D ≤ 55, E ≤ 80 s, else F) per movement and the 95th-percentile queue of its approach "
    "(longest lane: lanes are shared by movements) are simulated, means over the days, under "
    "the existing plan and the GPS controller. Also in movements.csv.")


def _delay_text(r: pd.Series, col: str) -> str:
    d = r[col]
    return "–" if pd.isna(d) else f"{float(d):.0f} ({r[col.replace('delay_s', 'los')]})"


def _num_text(r: pd.Series, col: str, fmt: str) -> str:
    return "–" if pd.isna(r[col]) else format(float(r[col]), fmt)


def _movement_rows(movements: pd.DataFrame | None) -> list[list[str]]:
    if movements is None or not len(movements):
        return []
    return [[str(r["name"]), str(r["approach"]), str(r["movement"]),
             _num_text(r, "flow_vph", ",.0f"), _num_text(r, "vc_existing", ".2f"),
             _num_text(r, "vc_relief", ".2f"), _delay_text(r, "existing_delay_s"),
             _num_text(r, "existing_queue_p95_m", ".0f"), _delay_text(r, "gps_delay_s"),
             _num_text(r, "gps_queue_p95_m", ".0f")] for _, r in movements.iterrows()]


def _table(columns: list[str], rows: list[list[dict[str, str]]]) -> dict[str, object]:
    return {"columns": columns, "rows": rows}


def estimate_report(junctions: pd.DataFrame, municipalities: pd.DataFrame, header: str,
                    movements: pd.DataFrame | None = None,
                    scenarios: Sequence[Scenario] = ()) -> dict[str, bytes]:
    """``estimate.html`` (self-contained), ``estimate.md`` and ``estimate.png``.

    ``movements``: per junction, approach and movement, the v/c and the
    simulated delay, LOS and 95 % queue (``movements.csv``), if given;
    ``scenarios``: the generated scenarios, whose programs are drawn as
    signal timing diagrams.
    """
    timings = [d for sc in scenarios for d in timing_diagrams(sc)]
    png = _figure(junctions)
    defs = ("Savings are existing plan − GPS controller, paired day by day over the simulated "
            "days, × working days per year; 95 % t intervals over the days, and each figure "
            "rounded to what its interval allows. A municipality's interval is that of the "
            "day sums over its junctions (same days everywhere). Time loss, CO₂ and "
            "person-hours as in docs/definitions.md; every junction's scenario is in "
            "scenarios/ and its model in models/, so each number can be reproduced.")
    jrows, mrows = _junction_rows(junctions), _municipality_rows(municipalities)
    vrows = _movement_rows(movements)
    mcols = list(_MOVEMENT_COLUMNS.values())
    context = {"header": header, "answer": _answer(junctions), "definitions": defs,
               "caveats": _caveats(junctions)}
    page = ENV.get_template("estimate.html.j2").render(
        **context, title="gpssignal CO₂ estimate",
        junctions=_table(_JUNCTION_COLUMNS, jrows),
        municipalities=_table(_MUNICIPALITY_COLUMNS, mrows),
        movements=_table(mcols, [[_cell(v, "num" if k >= 3 else "") for k, v in enumerate(r)]
                                 for r in vrows]),
        movements_note=_MOVEMENTS_NOTE, png_base64=base64.b64encode(png).decode(),
        timings=timings)
    md = ENV.get_template("estimate.md.j2").render(
        header=md_text(header), answer=[md_text(x) for x in context["answer"]],
        definitions=md_text(defs), caveats=[md_text(c) for c in context["caveats"]],
        junction_table=md_table(pd.DataFrame([[c["text"] for c in r] for r in jrows],
                                             columns=_JUNCTION_COLUMNS)),
        municipality_table=md_table(pd.DataFrame([[c["text"] for c in r] for r in mrows],
                                                 columns=_MUNICIPALITY_COLUMNS)),
        movement_table=md_table(pd.DataFrame(vrows, columns=mcols)) if vrows else "",
        movements_note=md_text(_MOVEMENTS_NOTE),
        timings=[{"title": md_text(d["title"]),
                  "rows": [{"group": md_text(r["group"]), "green": r["green"]}
                           for r in d["rows"]]} for d in timings])
    return {"estimate.png": png, "estimate.md": md.encode(), "estimate.html": page.encode()}
