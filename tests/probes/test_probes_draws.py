"""The probe sampler's random draws in compiled code (gpssignal.probes.sampler).

The sampler draws each step's dropouts, noise and latencies inside a
compiled kernel (``_report_step``, looped over a block of steps by
``_report_steps``). Its points must stay those of the numpy calls it
replaced, to the last bit, so these tests check

* that numba's ``Generator.random``, ``normal`` and ``uniform`` give
  numpy's values bit for bit and leave the generator in numpy's state;
* that the kernels give the raw reports, and leave the generator in the
  state, of a plain numpy statement of the draws (``reference_report``, the
  sampler's former Python code), for several settings.

Exact equality throughout: the claim is bit identity, so no tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpssignal._compiled import njit
from gpssignal.probes.sampler import _report_step, _report_steps


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

    # The block kernel, after 5 columns already kept (which it must not touch).
    rng = np.random.default_rng(99)
    raw_f = np.full((4 + len(sigmas), 5 + len(rows)), -1.0)
    raw_i = np.full((3, 5 + len(rows)), -1, dtype=np.int64)
    n = _report_steps(rng, t_s, per_step, rows, inside, dropout, sig, jitter, vid, link,
                      lane, pos_m, speed_mps, raw_f, raw_i, 5)
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
            n1 = _report_step(rng, rows, inside, first, int(per_step[k]), float(t_s[k]),
                              dropout, sig, jitter, vid, link, lane, pos_m, speed_mps,
                              one_f, one_i, n1)
            first += int(per_step[k])
    assert n1 == want_f.shape[1]
    assert _bits(one_f[:, :n1]) == _bits(want_f)
    assert np.array_equal(one_i[:, :n1], want_i)
    assert rng.bit_generator.state == plain.bit_generator.state
