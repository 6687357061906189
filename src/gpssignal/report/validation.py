"""Figures of the SUMO cross-check: both simulators across the demand range."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["saturation_figure"]

#: The KPIs plotted, with their axis labels.
_PANELS = [("mean_time_loss_s", "time loss [s/veh]"),
           ("stretch_speed_peak_kmh", "stretch speed, peak hour [km/h]"),
           ("co2_g_per_veh_km", "CO2 [g/veh-km]"),
           ("throughput_vph", "throughput [veh/h]")]


def saturation_figure(summary: pd.DataFrame) -> bytes:
    """Plot each KPI against the demand scale, gpssignal and SUMO, per day type (PNG).

    ``summary`` is :func:`gpssignal.interop.compare.sweep_summary`.
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (kpi, label) in zip(axes.ravel(), _PANELS, strict=True):
        part = summary[summary["kpi"] == kpi]
        for (day_type, g), style in zip(part.groupby("day_type"), ("-", "--", ":"),
                                        strict=False):
            g = g.sort_values("demand_scale")
            ax.plot(g["demand_scale"], g["gpssignal"], "o" + style, color="#d62728", ms=4,
                    label=f"gpssignal ({day_type})")
            ax.plot(g["demand_scale"], g["sumo"], "s" + style, color="#1f77b4", ms=4,
                    label=f"SUMO ({day_type})")
        ax.set_xlabel("demand × nominal")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Fixed timing in gpssignal and SUMO on the same vehicles, across demand",
                 fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
