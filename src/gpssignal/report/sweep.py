"""Figures and summary of a threshold-tuning sweep (``gpssignal tune``).

Input is :func:`gpssignal.experiment.sweep.point_summary`: one row per
point with the paired savings against the scenario's existing plan (mean,
95 % CI, verdict), beside the best fixed program and the hindsight bound.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gpssignal.report.document import md_table as _md_table
from gpssignal.report.document import md_text
from gpssignal.report.numbers import format_estimate

__all__ = ["best_setting_text", "sensitivity_text", "sweep_figures", "sweep_report"]

SAVINGS = [("time_loss_saving_pct", "time loss saved [%]"), ("co2_saving_pct", "CO2 saved [%]")]


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _heatmap(summary: pd.DataFrame, a: str, b: str, others: bool) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (col, label) in zip(axes, SAVINGS, strict=True):
        piv = summary.pivot_table(index=b, columns=a, values=col, aggfunc="mean")
        lim = np.nanmax(np.abs(piv.to_numpy())) if piv.size else 1.0
        im = ax.imshow(piv.to_numpy(), origin="lower", aspect="auto", cmap="RdYlGn",
                       vmin=-lim, vmax=lim)
        ax.set_xticks(range(len(piv.columns)))
        ax.set_xticklabels([f"{v:g}" for v in piv.columns], fontsize=7, rotation=45)
        ax.set_yticks(range(len(piv.index)))
        ax.set_yticklabels([f"{v:g}" for v in piv.index], fontsize=7)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        for (i, j), v in np.ndenumerate(piv.to_numpy()):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6)
        fig.colorbar(im, ax=ax, label=label)
        ax.set_title(label + " vs the existing plan\n(mean over days"
                     + (", other parameters averaged)" if others else ")"), fontsize=9)
    return _png(fig)


def _lines(summary: pd.DataFrame, params: list[str]) -> bytes:
    fig, axes = plt.subplots(len(params), 1, figsize=(8, 3.0 * len(params)), squeeze=False)
    for ax, p in zip(axes[:, 0], params, strict=True):
        for col, label in SAVINGS:
            g = summary.groupby(p)[col].mean()
            ax.plot(g.index, g.to_numpy(), "-o", ms=3, label=label)
        if len(params) == 1:
            d = summary.sort_values(p)
            for col, _ in SAVINGS:
                ax.fill_between(d[p], d[col + "_ci_low"], d[col + "_ci_high"], alpha=0.15)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel(p)
        ax.set_ylabel("saving vs existing plan [%]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Savings against the existing plan by swept parameter "
                 "(mean over days; averaged over the other parameters)", fontsize=10)
    return _png(fig)


def sweep_figures(summary: pd.DataFrame, params: list[str]) -> dict[str, bytes]:
    """PNG figures: a heatmap of the first two swept parameters, line plots of each."""
    out = {}
    if len(params) >= 2:
        out["heatmap.png"] = _heatmap(summary, params[0], params[1], len(params) > 2)
    out["savings_by_parameter.png"] = _lines(summary, params)
    return out


def best_setting_text(summary: pd.DataFrame, params: list[str]) -> list[str]:
    """Return the best setting, claimed only when its saving's 95 % interval excludes zero.

    Otherwise it says plainly that no swept setting saves detectably; either
    way the best fixed program and the hindsight bound are named beside it.
    """
    if not len(summary):
        return ["no point finished: nothing to compare"]
    best = summary.sort_values("time_loss_saving", ascending=False).iloc[0]
    unit = best.get("time_loss_unit", "s/veh")
    setting = ", ".join(f"{p} = {best[p]:g}" for p in params)
    base = best.get("existing_plan", "the existing plan")
    v, ci = format_estimate(best["time_loss_saving"], best["time_loss_saving_ci_low"],
                            best["time_loss_saving_ci_high"])
    span = f"{v} {unit} {ci}".strip()
    if best["time_loss_saving_ci_low"] > 0:
        lines = [f"best setting: {setting} saves {span} against {base} (95 % CI above 0)"]
    else:
        lines = [f"no swept setting saves detectably against {base}: the largest mean "
                 f"saving, {span} at {setting}, has a 95 % CI that includes 0 or lies "
                 "below it"]
    if "best_fixed" in best and isinstance(best["best_fixed"], str):
        lines.append(f"beside it: {best['best_fixed']} all period (best fixed program on "
                     f"these days) gives {best['best_fixed_time_loss_s']:.1f} {unit}; GPS − "
                     f"best fixed " + " ".join(format_estimate(
                         best["gps_vs_best_fixed_s"], best["gps_vs_best_fixed_ci_low"],
                         best["gps_vs_best_fixed_ci_high"])).strip()
                     + f" {unit} ({best['gps_vs_best_fixed_verdict']})")
    if "capture_ratio" in best and np.isfinite(best["capture_ratio"]):
        lines.append(f"hindsight bound: {best['oracle_time_loss_s']:.1f} {unit}; capture "
                     f"ratio {best['capture_ratio']:.2f}")
    return lines


def sensitivity_text(summary: pd.DataFrame, params: list[str]) -> list[str]:
    """For penetration / period: where the time-loss benefit stops being significant.

    Significant = the 95 % CI of the paired time-loss saving lies above 0,
    at every point with that parameter value.
    """
    lines = []
    for p, better in (("penetration", "low"), ("period_s", "high")):
        if p not in params:
            continue
        ok = summary.groupby(p)["time_loss_saving_ci_low"].min() > 0
        vals = sorted(ok.index)
        sig = [v for v in vals if ok[v]]
        if not sig:
            lines.append(f"{p}: no swept value gives a time-loss saving whose 95 % CI is "
                         "above 0.")
        elif better == "low":
            below = [f"{v:g}" for v in vals if v < min(sig)]
            tail = (f"; below it ({', '.join(below)}) it is not" if below
                    else " (the lowest value swept)")
            lines.append(f"{p}: the time-loss saving is significant (95 % CI above 0) down to "
                         f"{p} = {min(sig):g}{tail}")
        else:
            tail = (" (the highest value swept)" if max(sig) == vals[-1]
                    else "; above it it is not")
            lines.append(f"{p}: the time-loss saving is significant up to {p} = "
                         f"{max(sig):g}{tail}")
    return lines


def sweep_report(summary: pd.DataFrame, params: list[str], figures: dict[str, bytes],
                 header: str) -> dict[str, bytes]:
    """``sweep.md`` and a self-contained ``sweep.html``."""
    best = summary.sort_values("time_loss_saving", ascending=False).head(10)
    cols = [*params, "time_loss_saving", "time_loss_saving_ci_low", "time_loss_saving_ci_high",
            "time_loss_verdict", "time_loss_saving_pct", "co2_saving",
            "co2_saving_ci_low", "co2_saving_ci_high", "gps_speed_peak_kmh",
            "switches_per_day"]
    best = best[cols].round(3)
    sens = sensitivity_text(summary, params)
    claim = best_setting_text(summary, params)
    per = "person" if len(summary) and summary["time_loss_unit"].iloc[0] == "s/person" \
        else "vehicle"
    defs = (f"time_loss_saving: existing plan − GPS mean time loss per {per} [s], paired by "
            "day; co2_saving: existing plan − GPS CO2 [kg per period]; _ci_low/_ci_high: 95 % "
            "t interval over the days; _pct: relative to the existing plan; verdict at 95 % "
            "(docs/definitions.md, docs/evaluation.md).")
    md = [f"# Sweep\n\n{md_text(header)}\n", "## Best settings (by time-loss saving)\n",
          *[f"- {md_text(c)}" for c in claim], "", _md_table(best), "", defs, ""]
    md += ["## Sensitivity\n"] + [f"- {md_text(s)}" for s in sens] + [""]
    md += [f"![{n}]({n})\n" for n in figures]
    imgs = "".join(f'<figure><img alt="{n}" src="data:image/png;base64,'
                   f'{base64.b64encode(b).decode()}"></figure>' for n, b in figures.items())
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>gpssignal "
            f"sweep</title><style>body{{font-family:system-ui,sans-serif;max-width:1100px;"
            f"margin:2em auto}}table{{border-collapse:collapse;font-size:0.85em}}td,th{{border:"
            f"1px solid #ccc;padding:3px 6px}}img{{max-width:100%}}</style></head><body>"
            f"<h1>Sweep</h1><p>{html.escape(header)}</p><h2>Best settings</h2><ul>"
            + "".join(f"<li>{html.escape(c)}</li>" for c in claim) + "</ul>"
            f"{best.to_html(index=False)}<p>{html.escape(defs)}</p><h2>Sensitivity</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in sens)
            + f"</ul><h2>Figures</h2>{imgs}</body></html>\n")
    return {"sweep.md": "\n".join(md).encode(), "sweep.html": page.encode()}
