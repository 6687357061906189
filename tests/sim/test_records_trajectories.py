"""The trajectory log (sim/records.py ``TrajectoryLog``): kept or streamed, the same rows.

The log holds vehicle ids and lanes as int32 and joins its blocks column by
column; these tests compare it with the plain definition (every step's
vehicles, one row each, ``t_s = step * step_s``) on random blocks, fed both
ways the engine feeds it (one step, or a block of steps), and check that a
streamed log hands over exactly those rows, in order, in bounded blocks.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gpssignal.sim.kernel import F_ACC, F_POS, I_LANE, I_VID, N_F, N_I
from gpssignal.sim.records import TrajectoryLog

STEP_S = 0.5
LANE_LINK = np.array([3, 3, 1, 0, 2, 2], dtype=np.int64)


def _steps(rng: np.random.Generator, n_steps: int, big_ids: bool = False
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random states after each step: (F rows pos, speed, acc; I rows vid, lane)."""
    out = []
    for _ in range(n_steps):
        n = int(rng.integers(0, 7))
        f = rng.normal(size=(3, n))
        vid = rng.integers(0, 2**40 if big_ids else 1000, size=n)
        i = np.vstack([vid, rng.integers(0, len(LANE_LINK), size=n)])
        out.append((f, i))
    return out


def _expected(steps: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The plain definition of ``SimResult.trajectories`` (the log's code before issue 18)."""
    f = np.concatenate([s[0] for s in steps], axis=1)
    i = np.concatenate([s[1] for s in steps], axis=1)
    t = np.repeat(np.arange(1, len(steps) + 1) * STEP_S, [s[0].shape[1] for s in steps])
    return {"t_s": t, "vid": i[0], "link": LANE_LINK[i[1]], "lane": i[1], "pos_m": f[0],
            "speed_mps": f[1], "accel_mps2": f[2]}


def _feed(log: TrajectoryLog, steps: list[tuple[np.ndarray, np.ndarray]],
          rng: np.random.Generator) -> None:
    """Record the steps one by one (``record``) or in runs of a few (``record_block``)."""
    k = 0
    while k < len(steps):
        if rng.random() < 0.5:
            f, i = steps[k]
            veh = SimpleNamespace(F=np.zeros((N_F, f.shape[1] + 2)),
                                  I=np.zeros((N_I, f.shape[1] + 2), dtype=np.int64),
                                  n=f.shape[1])
            veh.F[F_POS:F_ACC + 1, :f.shape[1]] = f
            veh.I[I_VID:I_LANE + 1, :f.shape[1]] = i
            log.record(veh)  # type: ignore[arg-type]
            veh.F[:] = np.nan   # the engine reuses its arrays: the log must have copied
            k += 1
        else:
            m = int(rng.integers(1, 5))
            part = steps[k:k + m]
            f = np.concatenate([s[0] for s in part], axis=1)
            i = np.concatenate([s[1] for s in part], axis=1)
            log.record_block(f, i, np.array([s[0].shape[1] for s in part]))
            f[:] = np.nan
            i[:] = -1
            k += m


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("buffer_rows", [8, TrajectoryLog.BUFFER_ROWS])
@pytest.mark.parametrize("big_ids", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_kept_log_returns_every_step_in_order(seed: int, big_ids: bool, buffer_rows: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TrajectoryLog, "BUFFER_ROWS", buffer_rows)
    rng = np.random.default_rng(seed)
    steps = _steps(rng, 60, big_ids)
    log = TrajectoryLog()
    _feed(log, steps, rng)
    got = log.columns(STEP_S, LANE_LINK)
    _assert_same(got, _expected(steps))
    assert log.columns(STEP_S, LANE_LINK) is got   # joined once


def test_empty_log_has_typed_empty_columns() -> None:
    got = TrajectoryLog().columns(STEP_S, LANE_LINK)
    ints, floats = np.empty(0, dtype=np.int64), np.empty(0)
    _assert_same(got, {"t_s": floats, "vid": ints, "link": ints, "lane": ints,
                       "pos_m": floats, "speed_mps": floats, "accel_mps2": floats})


@pytest.mark.parametrize("seed", range(5))
def test_streamed_log_hands_over_the_same_rows_in_bounded_blocks(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 20
    monkeypatch.setattr(TrajectoryLog, "STREAM_ROWS", rows)
    monkeypatch.setattr(TrajectoryLog, "BUFFER_ROWS", 8)   # record() gathers up to 8 rows
    rng = np.random.default_rng(seed)
    steps = _steps(rng, 80)
    blocks: list[dict[str, np.ndarray]] = []
    log = TrajectoryLog()
    log.stream(blocks.append, STEP_S, LANE_LINK)
    _feed(log, steps, rng)
    rest = log.columns(STEP_S, LANE_LINK)
    assert all(len(c) == 0 for c in rest.values())
    joined = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    _assert_same(joined, _expected(steps))
    # A block goes out once it holds STREAM_ROWS rows; the largest addition is
    # a record_block of 4 steps of at most 6 vehicles (record()'s buffer: 8 rows).
    assert all(len(b["t_s"]) < rows + 4 * 6 for b in blocks)
    assert all(len(b["t_s"]) >= rows for b in blocks[:-1])


def test_stream_must_start_before_the_first_step() -> None:
    log = TrajectoryLog()
    log.record_block(np.zeros((3, 1)), np.zeros((2, 1), dtype=np.int64), np.array([1]))
    with pytest.raises(RuntimeError, match="before the first step"):
        log.stream(lambda block: None, STEP_S, LANE_LINK)
    log = TrajectoryLog()
    log.record(SimpleNamespace(F=np.zeros((N_F, 1)), I=np.zeros((N_I, 1), dtype=np.int64),
                               n=1))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="before the first step"):
        log.stream(lambda block: None, STEP_S, LANE_LINK)
