"""Windowed stretch speeds (:meth:`GpsRuntime.window_stats`)."""

from __future__ import annotations

import numpy as np

from gpssignal.control.gps import GpsRuntime

T_MS = 1_557_118_800_000  # a UTC instant [ms]


def on_stretch(rt: GpsRuntime, n: int, stretch_y: float = 0.0) -> tuple[np.ndarray, ...]:
    """``n`` points in the middle of an eastbound line stretch at ``y``, heading 90°."""
    lat, lon = rt.projection.to_latlon(np.linspace(-250.0, -50.0, n), np.full(n, stretch_y))
    return lat, lon, np.full(n, 90.0)


def test_window_is_half_open_on_time_sent(make_line_model) -> None:
    rt = GpsRuntime(make_line_model(window_s=60.0))
    w = 60_000
    # Sent at: the window's open start (out), 1 ms after it (in), the middle
    # (in), now (in), 1 ms after now (out: not yet in the window). Received
    # times are all later, and must not matter.
    sent = np.array([T_MS - w, T_MS - w + 1, T_MS - w // 2, T_MS, T_MS + 1], dtype=np.int64)
    speeds = np.array([1.0, 10.0, 20.0, 30.0, 99.0])
    lat, lon, h = on_stretch(rt, 5)
    rt.ingest(sent, sent + 20_000, lat, lon, speeds, h)
    count, mean, hmean = rt.window_stats(T_MS)
    assert count.tolist() == [3]
    # Exact: the three speeds are small integers, so their sum is exact.
    assert mean[0] == 20.0
    np.testing.assert_allclose(hmean[0], 3 / (1 / 10 + 1 / 20 + 1 / 30), rtol=1e-14)


def test_window_moves_with_now(make_line_model) -> None:
    rt = GpsRuntime(make_line_model(window_s=30.0))
    sent = T_MS + 10_000 * np.arange(10, dtype=np.int64)   # one point every 10 s
    lat, lon, h = on_stretch(rt, 10)
    rt.ingest(sent, sent, lat, lon, np.arange(10.0) + 1.0, h)
    for k in range(10):
        count, mean, _ = rt.window_stats(int(sent[k]))
        inside = np.arange(max(0, k - 2), k + 1)   # (now - 30 s, now] holds 3 points
        assert count[0] == len(inside)
        assert mean[0] == np.mean(inside + 1.0)


def test_mean_and_harmonic_mean_equal_numpy(make_line_model) -> None:
    rng = np.random.default_rng(7)
    rt = GpsRuntime(make_line_model(n_junctions=1, stretches_per_junction=2, window_s=300.0))
    n0, n1 = 137, 58
    v0 = rng.uniform(0.5, 90.0, n0)
    v1 = rng.uniform(0.5, 90.0, n1)
    for v, y in ((v0, 0.0), (v1, 100.0)):
        lat, lon, h = on_stretch(rt, len(v), y)
        sent = T_MS - rng.integers(0, 300_000, len(v))
        rt.ingest(sent, sent, lat, lon, v, h)
    count, mean, hmean = rt.window_stats(T_MS)
    assert count.tolist() == [n0, n1]
    # bincount sums in another order than numpy's pairwise sum: the results
    # differ by a few ulps at most, so rtol 1e-12 leaves a margin of ~1000x.
    np.testing.assert_allclose(mean, [np.mean(v0), np.mean(v1)], rtol=1e-12)
    np.testing.assert_allclose(hmean, [n0 / np.sum(1 / v0), n1 / np.sum(1 / v1)],
                               rtol=1e-12)
    assert np.all(hmean <= mean)   # harmonic <= arithmetic mean


def test_stretch_without_points_gives_zero_and_nan(make_line_model) -> None:
    rt = GpsRuntime(make_line_model(n_junctions=2))
    count, mean, hmean = rt.window_stats(T_MS)     # nothing ingested at all
    assert count.tolist() == [0, 0]
    assert np.isnan(mean).all() and np.isnan(hmean).all()
    lat, lon, h = on_stretch(rt, 4)                 # only on stretch 0 (junction J0)
    rt.ingest(np.full(4, T_MS), np.full(4, T_MS), lat, lon, np.full(4, 25.0), h)
    count, mean, hmean = rt.window_stats(T_MS)
    assert count.tolist() == [4, 0]
    assert mean[0] == 25.0 and hmean[0] == 25.0
    assert np.isnan(mean[1]) and np.isnan(hmean[1])
    # Once the points leave the window, stretch 0 is empty again.
    count, mean, _ = rt.window_stats(T_MS + int(rt.model.window_s * 1000))
    assert count.tolist() == [0, 0]
    assert np.isnan(mean).all()
