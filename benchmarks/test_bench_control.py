"""The GPS controller's run-time path: match + aggregate + decide (`make bench`).

Every case feeds one batch of points to a fresh ``GpsRuntime`` (``ingest``),
then takes one decision for every junction (``decide``: window aggregation
and thresholds). Points per second are reported per core: the path is
single-threaded. In the same run, for comparison:

* ``python_loop``: the same matching and aggregation written as a plain
  per-point Python loop (dict grid, per-point arithmetic), at 10⁵ points
  only. Its rate per point does not depend on batch size.
* ``pandas``: a straightforward pandas version. The points are merged with
  the grid's (cell, segment) table, the distance and heading are computed
  column-wise, ``groupby(point).idxmin`` picks the nearest segment, and
  ``groupby(stretch)`` aggregates. It runs at 10⁵ and 10⁶ points; 10⁷
  would need ~10 GB for the merge.
* ``memory_bound``: one numpy reduction over the same input arrays (x, y,
  heading, speed, time), the floor set by reading the data once. The
  path's fraction of it is reported.

The synthetic network has one 400 m stretch per junction, with junctions on
a 1 km grid. Of the points, 90 % lie on a stretch (5 m noise, matching
heading) and 10 % anywhere. Everything is drawn with a fixed seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gpssignal.control.gps import GpsModel, GpsRuntime, JunctionModel, StretchModel
from gpssignal.model.geo import LocalProjection

ORIGIN = (55.65, 12.38)


def _model(n_junctions: int) -> GpsModel:
    proj = LocalProjection(*ORIGIN)
    side = math.ceil(math.sqrt(n_junctions))
    stretches, junctions = [], []
    for k in range(n_junctions):
        cx, cy = (k % side) * 1000.0, (k // side) * 1000.0
        lat, lon = proj.to_latlon(np.array([cx, cx]), np.array([cy - 400.0, cy]))
        sid = f"s{k}"
        stretches.append(StretchModel(
            id=sid, junction=f"j{k}", polyline_deg=[[float(lat[0]), float(lon[0])],
                                                    [float(lat[1]), float(lon[1])]],
            length_m=400.0, speed_limit_kmh=50.0, free_flow_kmh=45.0, threshold_low_kmh=25.0,
            threshold_high_kmh=30.0))
        junctions.append(JunctionModel(id=f"j{k}", default_program="normal",
                                       relief_program="peak", stretches=[sid]))
    return GpsModel(projection_deg=ORIGIN, junctions=junctions, stretches=stretches)


def _points(n: int, n_junctions: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_junctions))
    k = rng.integers(0, n_junctions, n)
    on = rng.random(n) < 0.9
    x = np.where(on, (k % side) * 1000.0 + rng.normal(0, 5, n),
                 rng.uniform(-500, side * 1000.0, n))
    y = np.where(on, (k // side) * 1000.0 - rng.uniform(0, 400, n) + rng.normal(0, 5, n),
                 rng.uniform(-500, side * 1000.0, n))
    lat, lon = LocalProjection(*ORIGIN).to_latlon(x, y)
    t0 = 1_557_115_200_000
    t = t0 + np.sort(rng.integers(0, 300_000, n))
    return {"t_sent": t, "t_received": t + 10_000, "lat": lat, "lon": lon,
            "speed": rng.uniform(0, 60, n), "heading": rng.normal(0, 5, n) % 360.0,
            "now": int(t0 + 300_000)}


SIZES = [10**5, 10**6, 10**7]
JUNCTIONS = [1, 100, 10_000]


@pytest.mark.parametrize("n_junctions", JUNCTIONS)
@pytest.mark.parametrize("n", SIZES)
def test_runtime_path(benchmark, n: int, n_junctions: int) -> None:
    model = _model(n_junctions)
    p = _points(n, n_junctions)
    rt = GpsRuntime(model)  # building the grid index is set-up, not the run-time path

    def run() -> GpsRuntime:
        rt.reset()
        rt.ingest(p["t_sent"], p["t_received"], p["lat"], p["lon"], p["speed"], p["heading"])
        rt.decide(p["now"])
        return rt

    run()  # compile and warm up outside the timing
    rt = benchmark.pedantic(run, rounds=3 if n < 10**7 else 2, iterations=1)
    assert rt.points_matched > 0.8 * n
    benchmark.extra_info["points_per_s_per_core"] = n / benchmark.stats.stats.mean


def _grid_dict(rt: GpsRuntime) -> dict[tuple[int, int], list[int]]:
    idx = rt.index
    out: dict[tuple[int, int], list[int]] = {}
    off = 1 << 30
    for c, key in enumerate(idx.cell_keys.tolist()):
        ix, iy = key // (1 << 31) - off, key % (1 << 31) - off
        out[(ix, iy)] = idx.cell_segs[idx.cell_start[c]:idx.cell_start[c + 1]].tolist()
    return out


@pytest.mark.parametrize("n_junctions", JUNCTIONS)
def test_python_loop(benchmark, n_junctions: int) -> None:
    n = 10**5
    model = _model(n_junctions)
    p = _points(n, n_junctions)
    rt = GpsRuntime(model)
    grid = _grid_dict(rt)
    idx = rt.index
    sx0, sy0, sdx, sdy = (a.tolist() for a in (idx.seg_x0, idx.seg_y0, idx.seg_dx, idx.seg_dy))
    sh, sst = idx.seg_heading_deg.tolist(), idx.seg_stretch.tolist()
    cell, d2max, hmax = idx.cell_m, idx.max_distance_m ** 2, idx.max_heading_diff_deg
    lat0, lon0 = ORIGIN
    kx = 6_371_008.8 * math.cos(math.radians(lat0)) * math.pi / 180
    ky = 6_371_008.8 * math.pi / 180
    rows = list(zip(p["lat"].tolist(), p["lon"].tolist(), p["heading"].tolist(),
                    p["speed"].tolist(), p["t_sent"].tolist(), strict=True))
    start = p["now"] - 300_000

    def run() -> tuple[dict[int, int], dict[int, float]]:
        count: dict[int, int] = {}
        total: dict[int, float] = {}
        for lat, lon, h, v, t in rows:
            x, y = (lon - lon0) * kx, (lat - lat0) * ky
            segs = grid.get((math.floor(x / cell), math.floor(y / cell)))
            if not segs:
                continue
            best, best_s = d2max, -1
            for k in segs:
                tt = ((x - sx0[k]) * sdx[k] + (y - sy0[k]) * sdy[k]) / (
                    sdx[k] ** 2 + sdy[k] ** 2)
                tt = min(max(tt, 0.0), 1.0)
                d2 = (sx0[k] + tt * sdx[k] - x) ** 2 + (sy0[k] + tt * sdy[k] - y) ** 2
                diff = abs(h - sh[k]) % 360.0
                if d2 <= best and min(diff, 360.0 - diff) <= hmax:
                    best, best_s = d2, sst[k]
            if best_s >= 0 and t > start:
                count[best_s] = count.get(best_s, 0) + 1
                total[best_s] = total.get(best_s, 0.0) + v
        return count, total

    count, _ = benchmark.pedantic(run, rounds=2, iterations=1)
    assert sum(count.values()) > 0.8 * n
    benchmark.extra_info["points_per_s_per_core"] = n / benchmark.stats.stats.mean


@pytest.mark.parametrize("n_junctions", JUNCTIONS)
@pytest.mark.parametrize("n", [10**5, 10**6])
def test_pandas_groupby(benchmark, n: int, n_junctions: int) -> None:
    model = _model(n_junctions)
    p = _points(n, n_junctions)
    rt = GpsRuntime(model)
    idx = rt.index
    cells = pd.DataFrame({"key": np.repeat(idx.cell_keys, np.diff(idx.cell_start)),
                          "seg": idx.cell_segs})
    segs = pd.DataFrame({"x0": idx.seg_x0, "y0": idx.seg_y0, "dx": idx.seg_dx,
                         "dy": idx.seg_dy, "h": idx.seg_heading_deg,
                         "stretch": idx.seg_stretch})
    proj = LocalProjection(*ORIGIN)

    def run() -> pd.DataFrame:
        x, y = proj.to_xy(p["lat"], p["lon"])
        pts = pd.DataFrame({"x": x, "y": y, "h": p["heading"], "v": p["speed"],
                            "t": p["t_sent"]})
        pts["key"] = ((np.floor(pts["x"] / idx.cell_m).astype(np.int64) + (1 << 30)) * (1 << 31)
                      + (np.floor(pts["y"] / idx.cell_m).astype(np.int64) + (1 << 30)))
        m = pts.reset_index().merge(cells, on="key").join(segs, on="seg", rsuffix="_s")
        tt = (((m["x"] - m["x0"]) * m["dx"] + (m["y"] - m["y0"]) * m["dy"])
              / (m["dx"] ** 2 + m["dy"] ** 2)).clip(0, 1)
        m["d2"] = (m["x0"] + tt * m["dx"] - m["x"]) ** 2 + (m["y0"] + tt * m["dy"] - m["y"]) ** 2
        diff = (m["h"] - m["h_s"]).abs() % 360
        ok = (m["d2"] <= idx.max_distance_m ** 2) & (np.minimum(diff, 360 - diff)
                                                      <= idx.max_heading_diff_deg)
        m = m[ok]
        best = m.loc[m.groupby("index")["d2"].idxmin()]
        best = best[best["t"] > p["now"] - 300_000]
        return best.groupby("stretch")["v"].agg(["count", "mean"])

    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert out["count"].sum() > 0.8 * n
    benchmark.extra_info["points_per_s_per_core"] = n / benchmark.stats.stats.mean


@pytest.mark.parametrize("n", SIZES)
def test_memory_bound(benchmark, n: int) -> None:
    """Reading the five input arrays once (one reduction each)."""
    p = _points(n, 1)
    arrays = [p["lat"], p["lon"], p["heading"], p["speed"], p["t_sent"]]
    benchmark.pedantic(lambda: [a.sum() for a in arrays], rounds=5, iterations=1)
    benchmark.extra_info["points_per_s_per_core"] = n / benchmark.stats.stats.mean
