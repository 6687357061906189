"""Map matching (:mod:`gpssignal.control.matching`): the rules one point at a
time, then the grid against brute force over 10,000 stretches, then the
discarded-point count of the run-time path."""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal.control.gps import GpsRuntime
from gpssignal.control.matching import build_index, match_points

# A straight eastbound stretch (heading 90°) from x = -300 m to x = 0 on y = 0.
EASTBOUND = np.array([[-300.0, 0.0], [0.0, 0.0]])


def match_one(index, x: float, y: float, heading: float) -> int:
    return int(match_points(index, np.array([x]), np.array([y]), np.array([heading]))[0])


@pytest.fixture(scope="module")
def east():
    return build_index([EASTBOUND], max_distance_m=20.0, max_heading_diff_deg=45.0)


def test_point_on_the_stretch_matches(east) -> None:
    assert match_one(east, -150.0, 0.0, 90.0) == 0
    assert match_one(east, -150.0, 3.0, 95.0) == 0     # a little off the centre line
    assert match_one(east, -299.0, -2.0, 85.0) == 0    # near the start


def test_beyond_max_distance_does_not_match(east) -> None:
    # Perpendicular distance 19.5 m is within 20 m; 20.5 m is not. 0.5 m is far
    # above any rounding of these small coordinates.
    assert match_one(east, -150.0, 19.5, 90.0) == 0
    assert match_one(east, -150.0, 20.5, 90.0) == -1
    assert match_one(east, -150.0, -20.5, 90.0) == -1
    # Past the end the distance is to the end point: 15 m matches, 25 m does not.
    assert match_one(east, 15.0, 0.0, 90.0) == 0
    assert match_one(east, 25.0, 0.0, 90.0) == -1
    assert match_one(east, -318.0, 8.0, 90.0) == 0     # hypot(18, 8) = 19.7 m
    assert match_one(east, -318.0, 10.0, 90.0) == -1   # hypot(18, 10) = 20.6 m


def test_heading_must_agree(east) -> None:
    assert match_one(east, -150.0, 0.0, 270.0) == -1   # opposite direction
    assert match_one(east, -150.0, 0.0, 90.0 + 44.0) == 0
    assert match_one(east, -150.0, 0.0, 90.0 - 44.0) == 0
    assert match_one(east, -150.0, 0.0, 90.0 + 46.0) == -1
    assert match_one(east, -150.0, 0.0, 90.0 - 46.0) == -1


def test_heading_difference_wraps_at_north() -> None:
    north = build_index([np.array([[0.0, 0.0], [0.0, 300.0]])], 20.0, 45.0)
    assert match_one(north, 0.0, 150.0, 350.0) == 0    # 10° apart across 0/360
    assert match_one(north, 0.0, 150.0, 10.0) == 0
    assert match_one(north, 0.0, 150.0, 180.0) == -1


def test_nan_heading_matches_on_distance_alone(east) -> None:
    assert match_one(east, -150.0, 5.0, np.nan) == 0
    assert match_one(east, -150.0, 25.0, np.nan) == -1


def test_point_near_two_stretches_goes_to_the_nearer() -> None:
    both = build_index([EASTBOUND, EASTBOUND + np.array([0.0, 10.0])], 20.0, 45.0)
    assert match_one(both, -150.0, 3.0, 90.0) == 0
    assert match_one(both, -150.0, 7.0, 90.0) == 1
    assert match_one(both, -150.0, 14.0, np.nan) == 1
    # The nearer one with the wrong heading does not take it from the other.
    rev = build_index([EASTBOUND[::-1], EASTBOUND + np.array([0.0, 10.0])], 20.0, 45.0)
    assert match_one(rev, -150.0, 3.0, 90.0) == 1
    assert match_one(rev, -150.0, 3.0, 270.0) == 0


def test_points_in_empty_cells_and_bad_points_give_minus_one(east) -> None:
    x = np.array([5000.0, -5000.0, 1e7, np.nan, -150.0, np.inf])
    y = np.array([5000.0, 0.0, -1e7, 0.0, np.nan, 0.0])
    assert match_points(east, x, y, np.full(6, 90.0)).tolist() == [-1] * 6


def test_empty_batch_and_empty_index() -> None:
    empty = build_index([], 20.0, 45.0)
    assert match_points(empty, np.array([0.0, 1.0]), np.array([0.0, 1.0]),
                        np.array([90.0, np.nan])).tolist() == [-1, -1]
    east = build_index([EASTBOUND], 20.0, 45.0)
    out = match_points(east, np.empty(0), np.empty(0), np.empty(0))
    assert out.shape == (0,)


def random_stretches(rng: np.random.Generator, n: int, half_m: float) -> list[np.ndarray]:
    """``n`` polylines of 2-3 points, random walks of 20-250 m steps."""
    polys = []
    for _ in range(n):
        k = int(rng.integers(2, 4))
        start = rng.uniform(-half_m, half_m, 2)
        ang = rng.uniform(0, 2 * np.pi)
        pts = [start]
        for _ in range(k - 1):
            ang += rng.normal(0, 0.5)
            step = rng.uniform(20, 250)
            pts.append(pts[-1] + step * np.array([np.sin(ang), np.cos(ang)]))
        polys.append(np.array(pts))
    return polys


def brute_force(polys: list[np.ndarray], px: np.ndarray, py: np.ndarray, ph: np.ndarray,
                max_d: float, max_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest acceptable segment over ALL segments, with numpy.

    Returns the stretch per point (-1: none) and, per point, how many distinct
    stretches are within ``max_d`` (to show the data exercises the choice).
    """
    a = np.concatenate([p[:-1] for p in polys])
    b = np.concatenate([p[1:] for p in polys])
    st = np.concatenate([np.full(len(p) - 1, s) for s, p in enumerate(polys)])
    x0, y0 = a[:, 0], a[:, 1]
    dx, dy = b[:, 0] - x0, b[:, 1] - y0
    len2 = dx * dx + dy * dy
    seg_h = np.degrees(np.arctan2(dx, dy)) % 360.0
    out = np.full(len(px), -1, dtype=np.int64)
    n_near = np.zeros(len(px), dtype=np.int64)
    for lo in range(0, len(px), 200):
        sl = slice(lo, lo + 200)
        qx, qy, qh = px[sl, None], py[sl, None], ph[sl, None]
        t = np.clip(((qx - x0) * dx + (qy - y0) * dy) / len2, 0.0, 1.0)
        ex = x0 + t * dx - qx
        ey = y0 + t * dy - qy
        d2 = ex * ex + ey * ey
        near = d2 <= max_d * max_d
        diff = np.abs(qh - seg_h) % 360.0
        diff = np.where(diff > 180.0, 360.0 - diff, diff)
        ok = near & (np.isnan(qh) | (diff <= max_h))
        d2m = np.where(ok, d2, np.inf)
        k = np.argmin(d2m, axis=1)
        hit = np.isfinite(d2m[np.arange(len(k)), k])
        out[sl] = np.where(hit, st[k], -1)
        n_near[sl] = [len(np.unique(st[row])) for row in near]
    return out, n_near


def test_grid_equals_brute_force_on_10000_stretches() -> None:
    rng = np.random.default_rng(20240501)
    # 10,000 stretches in a 6 km x 6 km square: dense enough (about 280
    # stretches per km²) that many points have several stretches in reach.
    polys = random_stretches(rng, 10_000, 3000.0)
    max_d, max_h = 20.0, 45.0
    index = build_index(polys, max_d, max_h)
    assert index.n_stretches == 10_000
    # 1,200 points: 70 % scattered around random segments (position error up
    # to ~3 max_d, heading error up to ±70°, 10 % with unknown heading),
    # 30 % uniform over the square.
    n = 1200
    n_near = int(0.7 * n)
    s = rng.integers(0, len(polys), n_near)
    px, py, ph = np.empty(n), np.empty(n), np.empty(n)
    for i, si in enumerate(s):
        p = polys[si]
        k = int(rng.integers(0, len(p) - 1))
        a, b = p[k], p[k + 1]
        q = a + rng.uniform(-0.2, 1.2) * (b - a) + rng.normal(0, 20.0, 2)
        px[i], py[i] = q
        ph[i] = (np.degrees(np.arctan2(*(b - a))) + rng.uniform(-70, 70)) % 360.0
    px[n_near:] = rng.uniform(-3000, 3000, n - n_near)
    py[n_near:] = rng.uniform(-3000, 3000, n - n_near)
    ph[n_near:] = rng.uniform(0, 360, n - n_near)
    ph[rng.random(n) < 0.1] = np.nan

    got = match_points(index, px, py, ph)
    want, n_in_reach = brute_force(polys, px, py, ph, max_d, max_h)
    np.testing.assert_array_equal(got, want)
    # The comparison is not vacuous: both outcomes occur often, and many
    # points had to choose between stretches.
    assert (want >= 0).sum() > 300
    assert (want < 0).sum() > 300
    assert (n_in_reach >= 2).sum() > 50


def test_runtime_counts_off_stretch_points(make_line_model) -> None:
    model = make_line_model()
    rt = GpsRuntime(model)
    # Points in the local frame: on the stretch, 50 m to its side, opposite
    # heading, far away, unknown heading on it.
    x = np.array([-100.0, -200.0, -100.0, -100.0, 4000.0, -50.0, -250.0])
    y = np.array([0.0, 2.0, 50.0, 0.0, 4000.0, 1.0, -3.0])
    h = np.array([90.0, 90.0, 90.0, 270.0, 90.0, np.nan, 80.0])
    on = np.array([1, 1, 0, 0, 0, 1, 1], dtype=bool)
    lat, lon = rt.projection.to_latlon(x, y)
    t = np.full(len(x), 1_557_118_800_000, dtype=np.int64)
    assert rt.ingest(t, t, lat, lon, np.full(len(x), 30.0), h) == on.sum()
    assert rt.points_in == len(x)
    assert rt.points_matched == on.sum()
    assert rt.points_in - rt.points_matched == (~on).sum()
    # Counts accumulate over batches; an empty batch counts nothing.
    rt.ingest(t[:2], t[:2], lat[:2], lon[:2], np.full(2, 30.0), h[:2])
    rt.ingest(t[:0], t[:0], lat[:0], lon[:0], np.empty(0), h[:0])
    assert (rt.points_in, rt.points_matched) == (len(x) + 2, on.sum() + 2)
    count, _, _ = rt.window_stats(int(t[0]))
    assert count.tolist() == [on.sum() + 2]
