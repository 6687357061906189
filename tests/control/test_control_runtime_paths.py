"""The compiled run-time path against plain computations of the same definitions.

The matching kernels look candidates up through a hash table in blocks of
points, and the window buffer marks dropped points instead of compacting at
once (issue 18). Both are checked here, on random input, against the
definitions they implement, computed the slow way: the nearest acceptable
segment over *all* segments (ties to the later segment, as the kernel's scan
in segment order), and window sums over all matched points in the order they
were received. Equality is exact: the same arithmetic in the same order.
The cell table is a direct array over the grid's bounding box or a hash
table, and the cell size may grow; both are checked to leave every match
unchanged. A decision is one compiled pass too (the window and every
junction's verdict); it is checked against the former numpy statement.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpssignal.control.gps import GpsModel, GpsRuntime, JunctionModel, StretchModel
from gpssignal.control.matching import BLOCK, build_index, match_points
from gpssignal.model.geo import LocalProjection

#: Origin of the local frame (as the other control tests).
ORIGIN = (55.63, 12.38)


def _brute_force(polys: list[np.ndarray], x: np.ndarray, y: np.ndarray, h: np.ndarray,
                 max_d: float, max_h: float) -> np.ndarray:
    """Stretch of the nearest acceptable segment of every point, over all segments."""
    segs = [(s, a, b) for s, pl in enumerate(polys) for a, b in itertools.pairwise(pl)
            if not np.allclose(a, b)]
    out = np.full(len(x), -1)
    for i in range(len(x)):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            continue
        hh = h[i] % 360.0 if np.isfinite(h[i]) and not 0.0 <= h[i] < 360.0 else h[i]
        best = max_d * max_d
        for s, a, b in segs:
            dx, dy = b[0] - a[0], b[1] - a[1]
            t = ((x[i] - a[0]) * dx + (y[i] - a[1]) * dy) / (dx * dx + dy * dy)
            t = min(max(t, 0.0), 1.0)
            ex, ey = a[0] + t * dx - x[i], a[1] + t * dy - y[i]
            d2 = ex * ex + ey * ey
            if d2 > best:
                continue
            if np.isfinite(hh):
                heading = np.degrees(np.arctan2(dx, dy)) % 360.0
                heading = 0.0 if heading >= 360.0 else heading
                diff = abs(hh - heading)
                diff = 360.0 - diff if diff > 180.0 else diff
                if diff > max_h:
                    continue
            best, out[i] = d2, s
    return out


@pytest.mark.parametrize("seed", range(6))
def test_matching_equals_the_nearest_segment_over_all_segments(seed: int) -> None:
    rng = np.random.default_rng(seed)
    polys = []
    for _ in range(int(rng.integers(1, 12))):
        n = int(rng.integers(2, 6))
        start = rng.uniform(-300, 300, 2)
        steps = rng.normal(0, 60, (n - 1, 2))
        pl = np.vstack([start, start + np.cumsum(steps, axis=0)])
        if rng.random() < 0.3:
            pl = np.round(pl / 10) * 10  # on a 10 m lattice: shared vertices, exact ties
        polys.append(pl)
    if rng.random() < 0.5:
        polys.append(polys[0].copy())   # a duplicate stretch: every distance ties
    n = 3 * BLOCK + 17                  # whole blocks and a partial one
    x = rng.uniform(-400, 400, n)
    y = rng.uniform(-400, 400, n)
    near = rng.random(n) < 0.7          # most points close to a vertex
    pick = np.vstack(polys)[rng.integers(0, sum(len(p) for p in polys), n)]
    x = np.where(near, pick[:, 0] + rng.normal(0, 8, n), x)
    y = np.where(near, pick[:, 1] + rng.normal(0, 8, n), y)
    h = rng.uniform(-360, 720, n)
    h[rng.random(n) < 0.2] = np.nan
    x[rng.random(n) < 0.02] = np.nan
    index = build_index(polys, 20.0, 45.0)
    got = match_points(index, x, y, h)
    np.testing.assert_array_equal(got, _brute_force(polys, x, y, h, 20.0, 45.0))


def _model(n_junctions: int) -> GpsModel:
    proj = LocalProjection(*ORIGIN)
    stretches, junctions = [], []
    for k in range(n_junctions):
        ids = []
        for i in range(2):
            y = 500.0 * k + 100.0 * i
            lat, lon = proj.to_latlon(np.array([-300.0, 0.0]), np.array([y, y]))
            ids.append(f"s{k}_{i}")
            stretches.append(StretchModel(
                id=ids[-1], junction=f"J{k}",
                polyline_deg=[[float(a), float(b)] for a, b in zip(lat, lon, strict=True)],
                length_m=300.0, speed_limit_kmh=50.0, free_flow_kmh=50.0,
                threshold_low_kmh=20.0, threshold_high_kmh=30.0))
        junctions.append(JunctionModel(id=f"J{k}", default_program="normal",
                                       relief_program="peak", stretches=ids))
    return GpsModel(projection_deg=ORIGIN, junctions=junctions, stretches=stretches,
                    window_s=60.0, min_points=2, min_dwell_s=30.0, stale_after_s=50.0)


@pytest.mark.parametrize("seed", range(4))
def test_window_sums_equal_a_recount_of_every_received_point(seed: int) -> None:
    """Windows after many batches (dropped points marked, compacted now and then)
    equal sums over all matched points sent in (start, now], in receipt order."""
    rng = np.random.default_rng(seed)
    model = _model(5)
    rt = GpsRuntime(model)
    proj = rt.projection
    seen: list[tuple[int, int, float]] = []   # (stretch, t_sent, speed), receipt order
    last_recv = np.full(5, np.iinfo(np.int64).min // 2)   # per junction
    had = np.zeros(5, dtype=bool)
    now = 1_557_118_800_000
    for _ in range(40):
        now += 10_000
        n = int(rng.integers(0, 60))
        k = rng.integers(0, 10, n)                     # stretch (junction k // 2)
        x = rng.uniform(-320, 20, n)
        y = 500.0 * (k // 2) + 100.0 * (k % 2) + rng.normal(0, 8, n)
        lat, lon = proj.to_latlon(x, y)
        sent = now - rng.integers(0, 90_000, n)        # some already out of the window
        speed = rng.uniform(0, 60, n)
        heading = np.where(rng.random(n) < 0.9, 90.0, 270.0)
        stretch = match_points(rt.index, x, y, heading)
        rt.ingest(sent, np.full(n, now), lat, lon, speed, heading)
        seen += [(int(s), int(t), float(v)) for s, t, v in zip(stretch, sent, speed,
                                                                 strict=True) if s >= 0]
        for s in stretch[stretch >= 0]:   # every point of the batch is received at `now`
            last_recv[s // 2] = now
            had[s // 2] = True
        np.testing.assert_array_equal(rt.last_point_ms, last_recv)
        np.testing.assert_array_equal(rt.had_points, had)
        count, mean, hmean = rt.window_stats(now)
        start = now - int(model.window_s * 1000)
        c = np.zeros(10, dtype=np.int64)
        tot = np.zeros(10)
        inv = np.zeros(10)
        for s, t, v in seen:
            if start < t <= now:
                c[s] += 1
                tot[s] += v
                inv[s] += 1.0 / max(v, 0.1)
        np.testing.assert_array_equal(count, c)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_array_equal(mean, np.where(c > 0, tot / np.maximum(c, 1), np.nan))
            np.testing.assert_array_equal(hmean, np.where(c > 0, c / inv, np.nan))
        rt.decide(now)
    assert rt.points_matched == len(seen)


class _NumpyDecisions(GpsRuntime):
    """The runtime with the former numpy statement of a decision (before the compiled one)."""

    def decide(self, now_ms: int) -> list[tuple[int, str]]:
        md = self.model
        count, mean, _ = self.window_stats(now_ms)
        info = count >= md.min_points
        slow_s = info & (mean < self.low)
        fast_s = info & (mean > self.high)
        j = self.stretch_junction
        any_slow = np.bincount(j, weights=slow_s, minlength=self.n_j) > 0
        n_info = np.bincount(j, weights=info, minlength=self.n_j)
        n_fast = np.bincount(j, weights=fast_s, minlength=self.n_j)
        recovered = (n_info > 0) & (n_fast == n_info)
        dwell_ok = now_ms - self.last_change_ms >= int(round(md.min_dwell_s * 1000))
        stale = self.had_points & (now_ms - self.last_point_ms > int(round(
            md.stale_after_s * 1000)))
        to_relief = (self.mode == 0) & any_slow & dwell_ok & ~stale
        to_default = ((self.mode == 1) & recovered & dwell_ok & ~stale) | (
            (self.mode == 1) & stale)
        new_stale = stale & ~self.stale
        self.stale_events += int(new_stale.sum())
        for k in np.flatnonzero(new_stale):
            if self.mode[k] == 0:
                self.log_rows.append((now_ms, self.junction_ids[k], self.programs[k][0],
                                      self.programs[k][0], "stale", "", np.nan, 0))
        self.stale = stale
        changes = []
        for k in np.flatnonzero(to_relief | to_default):
            relief = bool(to_relief[k])
            sel = self._by_junction[self._junction_start[k]:self._junction_start[k + 1]]
            worst = sel[np.nanargmin(np.where(info[sel], mean[sel], np.inf))] if info[
                sel].any() else sel[0]
            reason = "slow" if relief else ("stale" if stale[k] else "recovered")
            frm, to = (self.programs[k][0], self.programs[k][1]) if relief else (
                self.programs[k][1], self.programs[k][0])
            self.log_rows.append((now_ms, self.junction_ids[k], frm, to, reason,
                                  self.stretch_ids[worst], float(mean[worst]),
                                  int(count[worst])))
            self.mode[k] = 1 if relief else 0
            self.last_change_ms[k] = now_ms
            changes.append((int(k), to))
        return changes


@pytest.mark.parametrize("seed", range(4))
def test_decisions_equal_the_numpy_statement(seed: int) -> None:
    """The compiled decision (window, verdicts) changes, logs and fails safe as the
    former numpy statement did, decision after decision: speeds around the
    thresholds, junctions going silent for longer than ``stale_after_s``."""
    rng = np.random.default_rng(seed)
    model = _model(5)
    compiled, plain = GpsRuntime(model), _NumpyDecisions(model)
    proj = compiled.projection
    now = 1_557_118_800_000
    silent = np.zeros(5, dtype=bool)
    changed = 0
    for _ in range(300):
        now += 10_000
        if rng.random() < 0.1:                          # outages come and go
            silent = rng.random(5) < 0.4
        n = int(rng.integers(0, 12))
        k = rng.integers(0, 10, n)
        k = k[~silent[k // 2]]
        n = len(k)
        x = rng.uniform(-280, -20, n)
        y = 500.0 * (k // 2) + 100.0 * (k % 2) + rng.normal(0, 3, n)
        lat, lon = proj.to_latlon(x, y)
        sent = now - rng.integers(0, 30_000, n)
        speed = rng.uniform(10, 40, n)                  # low 20, high 30 km/h
        for rt in (compiled, plain):
            rt.ingest(sent, np.full(n, now), lat, lon, speed, np.full(n, 90.0))
        got, want = compiled.decide(now), plain.decide(now)
        assert got == want
        changed += len(got)
        np.testing.assert_array_equal(compiled.mode, plain.mode)
        np.testing.assert_array_equal(compiled.last_change_ms, plain.last_change_ms)
        np.testing.assert_array_equal(compiled.stale, plain.stale)
    assert compiled.stale_events == plain.stale_events > 0
    assert changed > 10
    assert [(*r[:6], r[7]) for r in compiled.log_rows] == [(*r[:6], r[7])
                                                           for r in plain.log_rows]
    np.testing.assert_array_equal([r[6] for r in compiled.log_rows],
                                  [r[6] for r in plain.log_rows])   # NaN for stale rows


def _random_polylines(rng: np.random.Generator, spread_m: float) -> list[np.ndarray]:
    polys = []
    for _ in range(int(rng.integers(2, 10))):
        n = int(rng.integers(2, 5))
        start = rng.uniform(-spread_m, spread_m, 2)
        pl = np.vstack([start, start + np.cumsum(rng.normal(0, 60, (n - 1, 2)), axis=0)])
        polys.append(pl)
    polys.append(polys[0] + 5.0)   # an overlapping one: cells with several candidates
    return polys


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("spread_m", "hashed"), [(100.0, False), (20_000.0, True)])
def test_both_table_kinds_and_any_cell_size_give_the_nearest_segment(
        seed: int, spread_m: float, hashed: bool) -> None:
    """A compact network gets a direct array over its cells, a spread-out one a
    hash table (the test checks it got the kind it is meant to exercise); cell
    sizes from 25 m to 1.6 km. All match as the scan over all segments."""
    rng = np.random.default_rng(seed)
    polys = _random_polylines(rng, spread_m)
    n = 2 * BLOCK + 5
    pick = np.vstack(polys)[rng.integers(0, sum(len(p) for p in polys), n)]
    x = pick[:, 0] + rng.normal(0, 15, n)
    y = pick[:, 1] + rng.normal(0, 15, n)
    h = rng.uniform(0, 360, n)
    h[rng.random(n) < 0.5] = np.nan
    want = _brute_force(polys, x, y, h, 20.0, 45.0)
    assert (want >= 0).sum() > n // 4           # many points do match
    default = build_index(polys, 20.0, 45.0)
    assert (default.hash_mult != 1) == hashed
    np.testing.assert_array_equal(match_points(default, x, y, h), want)
    for cell in (25.0, 400.0, 1600.0):
        np.testing.assert_array_equal(match_points(build_index(polys, 20.0, 45.0, cell),
                                                   x, y, h), want)


def test_a_grid_too_large_for_the_slots_gets_larger_cells() -> None:
    """Two stretches 3,000 km apart: 50 m cells would number 2³¹ or more."""
    polys = [np.array([[0.0, 0.0], [300.0, 0.0]]),
             np.array([[3.0e6, 3.0e6], [3.0e6, 3.0e6 + 300.0]])]
    index = build_index(polys, 20.0, 45.0)
    assert index.cell_m > 50.0 and index.grid_nx * index.grid_ny < 2**31
    x = np.array([150.0, 3.0e6 + 3.0, 1.0e6])
    y = np.array([4.0, 3.0e6 + 100.0, 0.0])
    h = np.array([90.0, 0.0, 0.0])
    np.testing.assert_array_equal(match_points(index, x, y, h), [0, 1, -1])


def test_many_stretches_get_larger_cells_with_the_same_matches() -> None:
    """2,500 stretches on a 1 km lattice: the 50 m table exceeds the cache
    budget, so the default index takes larger cells (one candidate per cell
    still); its matches equal the 50 m index's, which the tests above tie to
    the scan over all segments."""
    from gpssignal.control.matching import TABLE_BUDGET_BYTES

    rng = np.random.default_rng(7)
    polys = [np.array([[1000.0 * i, 1000.0 * j - 400.0], [1000.0 * i, 1000.0 * j]])
             for i in range(50) for j in range(50)]
    small = build_index(polys, 20.0, 45.0, 50.0)
    default = build_index(polys, 20.0, 45.0)
    assert small.table.nbytes > TABLE_BUDGET_BYTES
    assert default.cell_m > 50.0
    n = 20_000
    k = rng.integers(0, len(polys), n)
    x = 1000.0 * (k // 50) + rng.normal(0, 12, n)
    y = 1000.0 * (k % 50) - rng.uniform(-30, 430, n)
    h = rng.normal(0, 40, n)
    got = match_points(default, x, y, h)
    assert (got >= 0).sum() > n // 2
    np.testing.assert_array_equal(got, match_points(small, x, y, h))
