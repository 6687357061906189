"""Report of the CO₂ estimator: per junction and per municipality, HTML and Markdown."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gpssignal.report.document import md_table, md_text

__all__ = ["estimate_report"]


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
        err = np.vstack([m - ok[lo].to_numpy(float), ok[hi].to_numpy(float) - m])
        ax.barh(y, m, xerr=np.nan_to_num(err), color="#2ca02c", capsize=3)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_yticks(y)
        # A "$" would start matplotlib mathtext (and may fail to parse): show it as is.
        ax.set_yticklabels([str(n).replace("$", r"\$") for n in ok["name"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label + " (95 % CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticklabels([])
    fig.suptitle("GPS plan selection against fixed timing, per junction", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
    return out.fillna("")


def estimate_report(junctions: pd.DataFrame, municipalities: pd.DataFrame, header: str
                    ) -> dict[str, bytes]:
    """``estimate.html`` (self-contained), ``estimate.md`` and ``estimate.png``."""
    png = _figure(junctions)
    jcols = ["row", "name", "municipality", "status", "time_loss_saved_veh_h_per_year",
             "time_loss_ci95_low", "time_loss_ci95_high", "co2_saved_t_per_year",
             "co2_ci95_low", "co2_ci95_high", "time_loss_change_pct",
             "fixed_stretch_speed_peak_kmh", "gps_stretch_speed_peak_kmh", "error"]
    j = _fmt(junctions[jcols])
    m = _fmt(municipalities)
    defs = ("Savings are fixed timing − GPS controller, paired day by day over the simulated "
            "days, × working days per year; 95 % t intervals over the days. A municipality's "
            "interval is that of the day sums over its junctions (same days everywhere). "
            "Time loss and CO₂ as in docs/definitions.md; every junction's scenario is in "
            "scenarios/ and its model in models/, so each number can be reproduced.")
    md = ["# CO₂ estimate", "", md_text(header), "", "## Per municipality", "", md_table(m), "",
          "## Per junction", "", md_table(j), "", defs, "", "![per junction](estimate.png)",
          ""]
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>gpssignal "
            "CO2 estimate</title><style>body{font-family:system-ui,sans-serif;max-width:1200px;"
            "margin:2em auto;padding:0 1em}table{border-collapse:collapse;font-size:0.85em;"
            "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}"
            f"</style></head><body><h1>CO₂ estimate</h1><p>{html.escape(header)}</p>"
            f"<h2>Per municipality</h2>{m.to_html(index=False)}<h2>Per junction</h2>"
            f"{j.to_html(index=False)}<p>{html.escape(defs)}</p><img alt='per junction' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></body></html>\n")
    return {"estimate.png": png, "estimate.md": "\n".join(md).encode(),
            "estimate.html": page.encode()}
