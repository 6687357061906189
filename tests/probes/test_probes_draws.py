"""The probe sampler's random draws in compiled code (gpssignal.probes.sampler).

The sampler draws each step's dropouts, noise and latencies inside a
compiled kernel (``_report_step``, looped over the steps waiting for their
draws by ``_report_steps``) and makes the points in another
(``_make_points``). Its points must stay those of the numpy calls it
replaced, to the last bit, so these tests check

* that numba's ``Generator.random``, ``normal`` and ``uniform`` give
  numpy's values bit for bit and leave the generator in numpy's state;
* that the kernels give the raw reports, and leave the generator in the
  state, of a plain numpy statement of the draws (``reference_report``, the
  sampler's former Python code), for several settings;
* that ``_make_points`` gives the points of the numpy statements it
  replaced (``reference_points``, the sampler's former Python code, with
  :meth:`LinkGeometry.positions_xy` and :meth:`LocalProjection.to_latlon`),
  edge cases of rounding and the heading's wrap included.

Exact equality throughout: the claim is bit identity, so no tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal._compiled import njit
from gpssignal.model.geo import EARTH_RADIUS_M, LinkGeometry, LocalProjection
from gpssignal.probes.sampler import _make_points, _report_step, _report_steps


@njit(cache=False)
def _draws(rng, n, sigma, jitter, m):
    return rng.random(n), rng.normal(0.0, sigma, m), rng.uniform(0.0, jitter, m)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def test_compiled_generator_draws_are_numpys():
    sizes = np.random.default_rng(12345)
    for seed in range(200):
        n, m = (int(v) for v in sizes.integers(0, 60, 2))
        sigma = float(sizes.choice([0.5, 2.0, 5.0, 37.3]))
        # A jitter of 0 still draws (numpy's uniform consumes a double each).
        jitter = float(sizes.choice([0.0, 3.0, 1e-3]))
        compiled, plain = np.random.default_rng(seed), np.random.default_rng(seed)
        got = _draws(compiled, n, sigma, jitter, m)
        want = (plain.random(n), plain.normal(0.0, sigma, m), plain.uniform(0.0, jitter, m))
        for g, w in zip(got, want, strict=True):
            assert _bits(g) == _bits(w), (seed, n, m, sigma, jitter)
        assert compiled.bit_generator.state == plain.bit_generator.state, seed


def reference_report(rng, rows, inside, first, n_due, t, dropout, sigmas, jitter, vid, link,
                     lane, pos_m, speed_mps):
    """The draws and raw reports of one step in plain numpy: (raw_f, raw_i) columns."""
    keep = inside[first:first + n_due] & (rng.random(n_due) >= dropout)
    m = int(np.count_nonzero(keep))
    if m == 0:
        return np.empty((4 + len(sigmas), 0)), np.empty((3, 0), dtype=np.int64)
    noise = np.empty((len(sigmas) + 1, m))
    for d, sigma in enumerate(sigmas):
        noise[d] = rng.normal(0.0, sigma, m)
    noise[-1] = rng.uniform(0.0, jitter, m)
    r = rows[first:first + n_due][keep]
    raw_f = np.vstack([np.full(m, t), pos_m[r], speed_mps[r], noise])
    raw_i = np.vstack([vid[r], link[r], lane[r]]).astype(np.int64)
    return raw_f, raw_i


@pytest.mark.parametrize(("dropout", "sigmas", "jitter"), [
    (0.0, (), 0.0),                     # every effect off: the dropout draws remain
    (0.3, (5.0, 5.0, 2.0, 10.0), 3.0),  # position x and y, speed, heading
    (0.3, (5.0, 5.0), 0.0),
    (1.0, (2.0,), 20.0),                # every report lost: nothing but dropout draws
])
def test_report_kernels_match_numpy(dropout, sigmas, jitter):
    data = np.random.default_rng(7)
    n_rows, n_steps = 400, 60
    vid = data.integers(0, 1000, n_rows)
    link = data.integers(0, 30, n_rows)
    lane = data.integers(0, 3, n_rows)
    pos_m, speed_mps = data.uniform(0, 300, n_rows), data.uniform(0, 20, n_rows)
    per_step = data.integers(0, 8, n_steps) * (data.random(n_steps) < 0.6)
    rows = data.integers(0, n_rows, int(per_step.sum()))
    inside = data.random(len(rows)) < 0.8
    t_s = np.arange(n_steps) * 0.5 + 3600.0
    sig = np.array(sigmas, dtype=np.float64)

    plain = np.random.default_rng(99)
    parts, first = [], 0
    for k in range(n_steps):
        if per_step[k]:
            parts.append(reference_report(plain, rows, inside, first, int(per_step[k]),
                                          float(t_s[k]), dropout, sigmas, jitter, vid, link,
                                          lane, pos_m, speed_mps))
            first += int(per_step[k])
    want_f = np.concatenate([p[0] for p in parts], axis=1)
    want_i = np.concatenate([p[1] for p in parts], axis=1)
    assert dropout == 1.0 or want_f.shape[1] > 50

    # The kernels read the due rows gathered (as the sampler keeps them) and
    # only the steps with due rows.
    due_i = np.vstack([vid[rows], link[rows], lane[rows], inside]).astype(np.int64)
    due_f = np.vstack([pos_m[rows], speed_mps[rows]])
    step_t, step_n = t_s[per_step > 0], per_step[per_step > 0].astype(np.int64)

    # The block kernel, after 5 columns already kept (which it must not touch).
    rng = np.random.default_rng(99)
    raw_f = np.full((4 + len(sigmas), 5 + len(rows)), -1.0)
    raw_i = np.full((3, 5 + len(rows)), -1, dtype=np.int64)
    n = _report_steps(rng, step_t, step_n, len(step_t), due_i, due_f, dropout, sig, jitter,
                      raw_f, raw_i, 5)
    assert n == 5 + want_f.shape[1]
    assert _bits(raw_f[:, 5:n]) == _bits(want_f)
    assert np.array_equal(raw_i[:, 5:n], want_i)
    assert (raw_f[:, :5] == -1.0).all() and (raw_i[:, :5] == -1).all()
    assert rng.bit_generator.state == plain.bit_generator.state

    # The single-step kernel, step by step: the same reports and state.
    rng = np.random.default_rng(99)
    one_f, one_i = np.empty_like(raw_f), np.empty_like(raw_i)
    n1, first = 0, 0
    for k in range(n_steps):
        if per_step[k]:
            n1 = _report_step(rng, due_i, due_f, first, int(per_step[k]), float(t_s[k]),
                              dropout, sig, jitter, one_f, one_i, n1)
            first += int(per_step[k])
    assert n1 == want_f.shape[1]
    assert _bits(one_f[:, :n1]) == _bits(want_f)
    assert np.array_equal(one_i[:, :n1], want_i)
    assert rng.bit_generator.state == plain.bit_generator.state


def reference_points(geo: LinkGeometry, raw_f, raw_i, noise, latency_fixed_s):
    """The points of raw reports in plain numpy (the sampler's former ``flush``)."""
    t, pos, speed_mps = raw_f[0], raw_f[1], raw_f[2]
    link, lane = raw_i[1], raw_i[2]
    draws = dict(zip([*noise, "latency"], raw_f[3:], strict=True))
    x, y = geo.positions_xy(link, lane, pos)
    nx = x + draws["x"] if "x" in draws else x
    ny = y + draws["y"] if "y" in draws else y
    lat, lon = geo.projection.to_latlon(nx, ny)
    speed = speed_mps * 3.6
    if "speed" in draws:
        speed = np.maximum(speed + draws["speed"], 0.0)
    heading = geo.heading_deg[link]
    if "heading" in draws:
        heading = heading + draws["heading"]
    sent = np.round(t * 1000.0) / 1000.0
    received = np.round((sent + latency_fixed_s + draws["latency"]) * 1000.0) / 1000.0
    return np.vstack([sent, received, lat, lon, speed, heading % 360.0, x, y])


@pytest.mark.parametrize("noise", [(), ("x", "y", "speed", "heading"), ("speed",),
                                   ("heading",), ("x", "y")])
def test_make_points_matches_numpy(noise):
    data = np.random.default_rng(11)
    n_links, n = 25, 5000
    start = data.uniform(-3000, 3000, (n_links, 2))
    end = start + data.normal(0, 400, (n_links, 2))
    lanes_per_link = data.integers(1, 4, n_links)
    lane_link = np.repeat(np.arange(n_links), lanes_per_link)
    offsets = data.uniform(0.5, 9.0, len(lane_link))
    # Headings at and just below the wrap (a draw may take them past 360 or below 0).
    heading = np.concatenate([[0.0, 359.99999999999994, 180.0],
                              data.uniform(0, 360, n_links - 3)])
    geo = LinkGeometry(projection=LocalProjection(55.65, 12.38), start_xy=start, end_xy=end,
                       length_m=np.hypot(*(end - start).T) * data.uniform(0.9, 1.1, n_links),
                       heading_deg=heading, lane_offset_m=offsets, lane_link=lane_link)
    lane = data.integers(0, len(lane_link), n)
    link = lane_link[lane]
    t = 3600.0 + np.arange(n) * 0.25
    t[:4] = [0.0005, 1.0015, 2.0025, 7200.0004999]   # half-millisecond ties: rint to even
    raw_f = np.vstack([t, data.uniform(0, 1, n) * geo.length_m[link],
                       np.concatenate([[0.0, 0.0], data.uniform(0, 25, n - 2)]),
                       *(data.normal(0, 5.0, n) for _ in noise), data.uniform(0, 30, n)])
    if "speed" in noise:
        raw_f[3 + noise.index("speed"), :2] = [-0.0, -3.0]   # at 0 and clipped to 0
    if "heading" in noise:
        raw_f[3 + noise.index("heading"), :3] = [-1e-14, 1e-13, -0.0]
    raw_i = np.vstack([data.integers(0, 100, n), link, lane]).astype(np.int64)
    want = reference_points(geo, raw_f, raw_i, noise, 5.0)

    rows = {k: 3 + d for d, k in enumerate([*noise, "latency"])}
    noise_row = np.array([rows.get(k, -1) for k in ("x", "y", "speed", "heading", "latency")],
                         dtype=np.int64)
    proj = geo.projection
    got = np.full((8, n + 3), -1.0)
    _make_points(raw_f, raw_i, 2, n, noise_row, geo.start_xy, geo.delta_xy, geo.direction_xy,
                 geo.length_m, geo.lane_offset_m, geo.heading_deg, proj.lat0_deg,
                 proj.lon0_deg, EARTH_RADIUS_M, proj.parallel_radius_m(), 5.0, got)
    _make_points(raw_f, raw_i, 0, 2, noise_row, geo.start_xy, geo.delta_xy, geo.direction_xy,
                 geo.length_m, geo.lane_offset_m, geo.heading_deg, proj.lat0_deg,
                 proj.lon0_deg, EARTH_RADIUS_M, proj.parallel_radius_m(), 5.0, got)
    assert _bits(got[:, :n]) == _bits(want)
    assert (got[:, n:] == -1.0).all()   # nothing written past the batch
