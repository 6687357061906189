"""The report's figures, drawn with matplotlib (Agg) from an :class:`Evaluation`.

Each function returns PNG bytes. Colours are fixed per controller so every
figure reads the same way. Nothing here computes a KPI: the numbers come from
:mod:`gpssignal.experiment.evaluation` and :mod:`gpssignal.evaluate`.
"""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.artist import Artist, allow_rasterization
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.path import Path
from matplotlib.transforms import TransformedPath

from gpssignal.evaluate.statistics import mean_ci
from gpssignal.experiment.evaluation import Evaluation, Showcase, showcase_window
from gpssignal.model.io import format_clock
from gpssignal.report.labels import arm_label

__all__ = [
    "FIGURES",
    "SHOWCASE_FIGURES",
    "arm_label",
    "arrivals_on_green",
    "co2_per_controller",
    "purdue",
    "queues_per_approach",
    "speed_over_time",
    "time_loss_per_interval",
    "time_space",
]

COLOURS = {"fixed": "#4d4d4d", "tod": "#1f77b4", "gps": "#d62728", "oracle": "#2ca02c"}
#: Greys for the programs fixed all period, in the scenario's program order.
_FIXED_GREYS = ("#4d4d4d", "#8c8c8c", "#b3b3b3", "#262626")
STATE_COLOURS = {0: "#d62728", 1: "#ff7f0e", 2: "#2ca02c", 3: "#ffbf00"}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # savefig draws on the Agg canvas of the PNG format. The figures never go
    # through pyplot (not imported): no global figure registry to close, and
    # the showcase figures' thread (EarlyFigures) shares no pyplot state.
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _colour(c: str, programs: tuple[str, ...] = ()) -> str:
    kind, _, program = c.partition(":")
    if kind == "fixed" and program in programs:
        return _FIXED_GREYS[programs.index(program) % len(_FIXED_GREYS)]
    return COLOURS.get(c, COLOURS.get(kind, "#9467bd"))




class _Polylines(Artist):
    """Many polylines of one colour and width, each drawn exactly as its own ``Line2D``.

    The time–space diagram has a line per vehicle (about 2,000 in the 10-day
    evaluation's four panels); as ``Line2D`` artists their creation and
    drawing took 40 % of the report's drawing time. A ``LineCollection`` is no substitute: Agg
    draws a collection's paths without the path simplification it gives a
    line of 128 or more points (half the vehicles' lines), which changed 26 %
    of the diagram's pixels, by up to 42 of 255. This artist makes the
    renderer calls ``Line2D.draw`` makes for a solid line without markers
    (same graphics-context settings, one ``draw_path`` per line, in order)
    with one artist, so the PNG is byte-identical (tests/report compare it
    with the ``Line2D`` drawing).
    """

    #: As a Line2D's: drawn over the stretch's tint (a patch), before the signal bars.
    zorder = Line2D.zorder

    def __init__(self, lines: list[np.ndarray], color: str, linewidth: float) -> None:
        super().__init__()
        # A Path per line, as Line2D makes it (its rcParams decide simplification).
        self._paths = [Path(xy) for xy in lines if len(xy)]
        self._rgba = to_rgba(color)
        self._linewidth = linewidth

    @allow_rasterization
    def draw(self, renderer: RendererBase) -> None:
        if not self.get_visible() or not self._paths:
            return
        gc = renderer.new_gc()
        if self.get_clip_on():   # as Artist._set_gc_clip: the axes' box
            if self.get_clip_box() is not None:
                gc.set_clip_rectangle(self.get_clip_box())
            clip_path = self.get_clip_path()   # None here: the axes clip to a box
            assert clip_path is None or isinstance(clip_path, TransformedPath)
            gc.set_clip_path(clip_path)
        gc.set_antialiased(mpl.rcParams["lines.antialiased"])
        gc.set_linewidth(self._linewidth)
        gc.set_joinstyle(mpl.rcParams["lines.solid_joinstyle"])
        gc.set_capstyle(mpl.rcParams["lines.solid_capstyle"])
        gc.set_snap(self.get_snap())
        gc.set_foreground(self._rgba, isRGBA=True)
        gc.set_dashes(0, None)
        # Data coordinates on linear axes: the transform is affine.
        affine = self.get_transform().get_affine()
        for path in self._paths:
            renderer.draw_path(gc, path, affine)
        gc.restore()


def _segments(segments: list[list[tuple[float, float]]], colours: list[str], linewidth: float,
              capstyle: str | None = None) -> LineCollection:
    """Two-point lines as one collection, drawn as ``ax.plot`` would draw each of them.

    In order, with a line's cap and join styles. Agg draws each path of a
    collection on its own, as it draws each line, and simplifies neither a
    line nor a path of two points: the pixels are those of one ``Line2D``
    per segment, with one artist instead of hundreds.
    """
    return LineCollection(segments, colors=colours, linewidths=linewidth,
                          capstyle=capstyle or mpl.rcParams["lines.solid_capstyle"],
                          joinstyle=mpl.rcParams["lines.solid_joinstyle"],
                          zorder=Line2D.zorder)


def _clock_axis(ax: Axes, start_clock_s: float, t_max_s: float, step_s: float = 1800
                ) -> None:
    ticks = np.arange(0.0, t_max_s + 1, step_s)
    ax.set_xticks(ticks)
    ax.set_xticklabels([format_clock(start_clock_s + t) for t in ticks])


def _per_interval(ev: Evaluation, column: str) -> dict[str, tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]]:
    """Per controller: interval starts, mean and CI half-width over the days."""
    out = {}
    for c in ev.controllers:
        reps = [r.intervals for r in ev.replications if r.controller == c]
        t = reps[0]["t0_s"].to_numpy(dtype=float)
        vals = np.vstack([r[column].to_numpy(dtype=float) for r in reps])
        ivs = [mean_ci(vals[:, k]) for k in range(vals.shape[1])]
        out[c] = (t, np.array([i.mean for i in ivs]), np.array([i.half_width for i in ivs]))
    return out


def speed_over_time(ev: Evaluation) -> bytes:
    """Stretch speed per 15 min (mean and 95 % CI over days) with the GPS switches."""
    sc = ev.scenario
    st = sc.stretches[0]
    iv = sc.demand.interval_s
    fig = Figure(figsize=(9, 4.2))
    ax = fig.subplots()
    for c, (t, m, h) in _per_interval(ev, f"speed_{st.id}_kmh").items():
        mid = t + iv / 2
        colour = _colour(c, ev.scenario.program_names)
        ax.plot(mid, m, "-o", ms=3, color=colour, label=arm_label(c))
        ax.fill_between(mid, m - np.nan_to_num(h), m + np.nan_to_num(h), color=colour,
                        alpha=0.15, lw=0)
    sw = ev.switches()
    sw = sw[sw["controller"] == "gps"]
    if len(sw):
        y0 = ax.get_ylim()[0]
        relief = {j.id: j.relief_program for j in sc.junctions}
        up = sw[sw["to_program"] == sw["junction"].map(relief)]
        down = sw[sw["to_program"] != sw["junction"].map(relief)]
        ax.plot(up["t_s"], np.full(len(up), y0), "^", color=_colour("gps"), ms=6, alpha=0.6,
                label=f"GPS switch to relief program ({len(ev.seeds)} days)")
        ax.plot(down["t_s"], np.full(len(down), y0), "v", color="#7f7f7f", ms=6, alpha=0.6,
                label="GPS switch back")
    _clock_axis(ax, sc.start_clock_s, sc.duration_s)
    ax.set_ylabel("space-mean speed [km/h]")
    ax.set_title(f"Monitored stretch {st.id}: speed per {iv / 60:g} min "
                 f"(mean of {len(ev.seeds)} days, band = 95 % CI)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def time_loss_per_interval(ev: Evaluation) -> bytes:
    """Mean time loss per vehicle per 15 min of arrival, per controller."""
    sc = ev.scenario
    iv = sc.demand.interval_s
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    data = _per_interval(ev, "mean_time_loss_s")
    w = iv / (len(data) + 1)
    for k, (c, (t, m, h)) in enumerate(data.items()):
        colour = _colour(c, ev.scenario.program_names)
        ax.bar(t + (k + 0.5) * w, m, width=w, yerr=h, color=colour, label=arm_label(c),
               error_kw={"lw": 0.8, "capsize": 1.5})
    _clock_axis(ax, sc.start_clock_s, sc.duration_s)
    ax.set_ylabel("mean time loss [s/veh]")
    ax.set_title(f"Time loss per vehicle by {iv / 60:g}-min arrival interval "
                 f"(mean of {len(ev.seeds)} days, bars = 95 % CI)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def queues_per_approach(ev: Evaluation) -> bytes:
    """Mean and 95th-percentile queue per approach and controller."""
    app = ev.approach_means()
    links = list(dict.fromkeys(app["approach_link"]))
    fig = Figure(figsize=(9, 0.6 + 0.55 * len(links) * len(ev.controllers)))
    ax = fig.subplots()
    h = 0.8 / len(ev.controllers)
    y = np.arange(len(links))
    for k, c in enumerate(ev.controllers):
        d = app[app["controller"] == c].set_index("approach_link").reindex(links)
        colour = _colour(c, ev.scenario.program_names)
        ax.barh(y + k * h, d["queue_p95_m"], height=h, color=colour, alpha=0.35)
        ax.barh(y + k * h, d["queue_mean_m"], height=h, color=colour, label=arm_label(c))
    ax.set_yticks(y + h * (len(ev.controllers) - 1) / 2)
    ax.set_yticklabels(links, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("queue length [m] (solid: mean, light: 95th percentile)")
    ax.set_title(f"Queue per approach, demand period (mean of {len(ev.seeds)} days)",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _window(ev: Evaluation) -> tuple[float, float]:
    """Return the showcase window (simulation s): the showcase keeps its rows."""
    return showcase_window(ev.scenario)


def _stretch_positions(ev: Evaluation) -> tuple[dict[str, float], str, float]:
    """Start offset of each stretch link along the stretch, last link, its length."""
    sc = ev.scenario
    st = sc.stretches[0]
    lengths = {lk.id: lk.length_m for lk in sc.links}
    off, acc = {}, 0.0
    for lid in st.links:
        off[lid] = acc
        acc += lengths[lid]
    return off, st.links[-1], lengths[st.links[-1]]


def time_space(ev: Evaluation) -> bytes:
    """Vehicle trajectories along the monitored stretch with the stop-line signal."""
    sc = ev.scenario
    off, last, last_len = _stretch_positions(ev)
    t0, t1 = _window(ev)
    shown = [c for c in ev.controllers if ev.showcase(c) is not None]
    fig = Figure(figsize=(9, 3.2 * len(shown)))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)
    junction_of = {lk.id: lk.to_arm.split(".")[0] for lk in sc.links if lk.to_arm}
    for ax, c in zip(axes[:, 0], shown, strict=True):
        sh = ev.showcase(c)
        assert sh is not None
        tr = sh.trajectories
        # Each row's link offset along the stretch, looked up once per link name
        # (mapping the string column row by row took 30 ms a panel); NaN off
        # the stretch, and for a missing link (code -1: the appended last entry).
        codes, links = pd.factorize(tr["link"])
        offset = np.array([off.get(lk, np.nan) for lk in links] + [np.nan])[codes]
        t = tr["t_s"].to_numpy()
        keep = (t >= t0) & (t <= t1) & ~np.isnan(offset)
        x = tr["pos_m"].to_numpy()[keep] + offset[keep]
        t, vid = t[keep], tr["vid"].to_numpy()[keep]
        order = np.lexsort((t, vid))
        tx = np.column_stack([t[order], x[order]])
        cuts = np.flatnonzero(np.diff(vid[order])) + 1
        ax.add_artist(_Polylines(np.split(tx, cuts), "#555555", 0.5))
        if len(tx):   # the lines' extent, as ax.plot would add it for the autoscaled y
            ax.update_datalim(tx)
        # Signal state at each stop line on the stretch.
        for lid, o in off.items():
            j = junction_of.get(lid)
            if j is None:
                continue
            _signal_bar(ax, sh, j, lid, sc, o + (last_len if lid == last else
                                                  next(lk.length_m for lk in sc.links
                                                       if lk.id == lid)), t0, t1)
        st = sc.stretches[0]
        end = off[last] + (st.end_m if st.end_m is not None else last_len)
        ax.axhspan(off[st.links[0]] + st.start_m, end, color="#1f77b4", alpha=0.05)
        ax.set_ylabel("distance [m]")
        ax.set_title(f"{arm_label(c)}: monitored stretch {st.id} (shaded), day seed "
                     f"{ev.seeds[0]}, {format_clock(sc.start_clock_s + t0)}-"
                     f"{format_clock(sc.start_clock_s + t1)}", fontsize=9)
        ax.set_xlim(t0, t1)
    ticks = np.arange(np.ceil(t0 / 300) * 300, t1 + 1, 300)
    axes[-1, 0].set_xticks(ticks)
    axes[-1, 0].set_xticklabels([format_clock(sc.start_clock_s + v) for v in ticks])
    return _png(fig)


def _approach_group(sc: object, link_id: str) -> str | None:
    """Return the signal group of the through movement of an approach link."""
    for lk in sc.links:  # type: ignore[attr-defined]
        if lk.id != link_id:
            continue
        for lane in lk.lanes:
            if "through" in lane.movements and lane.group:
                return f"{lk.to_arm.split('.')[0]}.{lane.group}"
        for lane in lk.lanes:
            if lane.group:
                return f"{lk.to_arm.split('.')[0]}.{lane.group}"
    return None


def _state_intervals(sh: Showcase, group: str, end_s: float
                     ) -> list[tuple[float, float, int]]:
    s = sh.signals[sh.signals["group"] == group].sort_values("t_s", kind="stable")
    t = s["t_s"].to_numpy(dtype=float)
    st = s["state"].to_numpy(dtype=int)
    return [(float(t[k]), float(t[k + 1]) if k + 1 < len(t) else end_s, int(st[k]))
            for k in range(len(t))]


def _signal_bar(ax: Axes, sh: Showcase, junction: str, link_id: str, sc: object, y: float,
                t0: float, t1: float) -> None:
    group = _approach_group(sc, link_id)
    if group is None:
        return
    segments, colours = [], []
    for a, b, state in _state_intervals(sh, group, t1):
        if b < t0 or a > t1:
            continue
        segments.append([(max(a, t0), y), (min(b, t1), y)])
        colours.append(STATE_COLOURS[state])
    if segments:
        ax.add_collection(_segments(segments, colours, 4, "butt"))


def co2_per_controller(ev: Evaluation) -> bytes:
    """CO₂ per controller (mean and 95 % CI over days) and per vehicle-km."""
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    for ax, key, unit in ((axes[0], "co2_kg", "kg CO2 per morning"),
                          (axes[1], "co2_g_per_veh_km", "g CO2 per veh-km")):
        ivs = [mean_ci(ev.values(c, key)) for c in ev.controllers]
        x = np.arange(len(ev.controllers))
        ax.bar(x, [i.mean for i in ivs], yerr=[np.nan_to_num(i.half_width) for i in ivs],
               color=[_colour(c, ev.scenario.program_names) for c in ev.controllers],
               capsize=4)
        lo = min(i.low if not np.isnan(i.low) else i.mean for i in ivs)
        hi = max(i.high if not np.isnan(i.high) else i.mean for i in ivs)
        pad = max(hi - lo, 1e-9)
        ax.set_ylim(max(0.0, lo - 1.5 * pad), hi + 0.8 * pad)
        ax.set_xticks(x)
        ax.set_xticklabels([arm_label(c) for c in ev.controllers], fontsize=8)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"CO2 (HBEFA4), mean of {len(ev.seeds)} days with 95 % CI "
                 "(axis does not start at 0)", fontsize=10)
    return _png(fig)


def arrivals_on_green(sh: Showcase, sc: object, link_id: str, end_s: float
                      ) -> tuple[pd.DataFrame, list[tuple[float, float, int]]]:
    """Projected stop-line arrivals of the monitored approach and the signal intervals.

    A vehicle's projected arrival = the first time it is seen on the approach
    link + (link length − its position then) / its desired speed: when it
    would reach the stop line undisturbed (the Purdue coordination diagram's
    arrival). Returns one row per vehicle (``t_arrival_s``, ``state`` at that
    time) and the group's state intervals.
    """
    group = _approach_group(sc, link_id)
    ivs = _state_intervals(sh, group, end_s) if group else []
    tr = sh.trajectories[sh.trajectories["link"] == link_id]
    first = tr.sort_values(["vid", "t_s"], kind="stable").groupby("vid").first()
    length = next(lk.length_m for lk in sc.links if lk.id == link_id)  # type: ignore
    v = np.array([sh.desired_speed_mps.get(int(k), np.nan) for k in first.index])
    t_arr = first["t_s"].to_numpy() + (length - first["pos_m"].to_numpy()) / v
    starts = np.array([a for a, _, _ in ivs])
    states = np.array([s for _, _, s in ivs], dtype=int)
    k = np.searchsorted(starts, t_arr, side="right") - 1
    state = np.where(k >= 0, states[np.clip(k, 0, None)], -1) if len(ivs) else \
        np.full(len(t_arr), -1)
    return pd.DataFrame({"vid": first.index, "t_arrival_s": t_arr, "state": state}), ivs


def purdue(ev: Evaluation) -> bytes:
    """Purdue coordination diagram of the monitored approach, one panel per controller.

    x: time of day; y: time in cycle of each projected arrival, the cycle
    starting at the onset of red of the approach's through group; the green
    interval of each cycle is drawn as a band.
    """
    sc = ev.scenario
    st = sc.stretches[0]
    link_id = st.links[-1]
    shown = [c for c in ev.controllers if ev.showcase(c) is not None]
    fig = Figure(figsize=(9, 3.0 * len(shown)))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)
    end = sc.duration_s + sc.drain_s
    for ax, c in zip(axes[:, 0], shown, strict=True):
        sh = ev.showcase(c)
        assert sh is not None
        arr, ivs = arrivals_on_green(sh, sc, link_id, end)
        reds = np.array([a for a, _, s in ivs if s == 0])
        if len(reds) < 2:
            continue
        k = np.searchsorted(reds, arr["t_arrival_s"].to_numpy(), side="right") - 1
        ok = k >= 0
        y = arr["t_arrival_s"].to_numpy()[ok] - reds[k[ok]]
        on_green = arr["state"].to_numpy()[ok] == 2
        # RGBA rows, not colour names: matplotlib parsed a name per dot.
        ax.scatter(arr["t_arrival_s"].to_numpy()[ok], y, s=1.5,
                   c=np.where(on_green[:, None], to_rgba("#2ca02c"), to_rgba("#444444")), lw=0)
        segments, colours = [], []
        for a, b, s in ivs:
            if s != 2:
                continue
            kk = np.searchsorted(reds, a, side="right") - 1
            if kk < 0 or kk + 1 >= len(reds):
                continue
            c0, c1 = reds[kk], reds[kk + 1]
            segments += [[(c0, a - c0), (c1, a - c0)], [(c0, b - c0), (c1, b - c0)]]
            colours += ["#2ca02c", "#ffbf00"]
        if segments:
            ax.add_collection(_segments(segments, colours, 0.6))
        in_period = arr["t_arrival_s"].to_numpy() < sc.duration_s
        aog = 100 * float(np.mean(arr["state"].to_numpy()[in_period] == 2)) if \
            in_period.any() else float("nan")
        ax.set_ylabel("time in cycle [s]")
        ax.set_title(f"{arm_label(c)}: {link_id}, arrivals projected to the stop line "
                     f"(green dots arrive on green: {aog:.0f} %), day seed {ev.seeds[0]}",
                     fontsize=9)
        ax.set_xlim(0, sc.duration_s)
        ax.grid(alpha=0.2)
    _clock_axis(axes[-1, 0], sc.start_clock_s, sc.duration_s)
    return _png(fig)


#: The figures drawn from the showcase day alone (:attr:`Evaluation.showcase`),
#: which can be drawn as soon as that day's runs are in.
SHOWCASE_FIGURES = ("time_space.png", "purdue.png")
#: The report's figures: file name, title, drawing function.
FIGURES = [
    ("speed.png", "Speed on the monitored stretch", speed_over_time),
    ("time_loss.png", "Time loss per 15 min", time_loss_per_interval),
    ("queues.png", "Queues per approach", queues_per_approach),
    ("time_space.png", "Time–space diagram", time_space),
    ("co2.png", "CO₂ per controller", co2_per_controller),
    ("purdue.png", "Purdue coordination diagram", purdue),
]
