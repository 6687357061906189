"""The same decisions in the simulator and in an offline replay of its probe
stream, through a Parquet and a CSV file (docs/architecture.md#conventions: the same
controller runs on simulated or recorded probe data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.control.gps import DECISION_COLUMNS, GpsRuntime, model_from_scenario, replay
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.probes.io import read_probes, stream_to_frame, write_probes


@pytest.fixture(scope="module")
def sim_run(tiny_relief, probes_30):
    """One run of the tiny variant under a model that switches often.

    The stretch's mean speeds on this day (seed 1) hover around 30-45 km/h, so
    low = 0.72 x 50 = 36 km/h with 2 km/h hysteresis, 60-s windows and 60-s
    dwell give several switches; a 120-s stale limit makes the fall-back after
    the last vehicle happen inside the simulated time (15 min + 5 min drain).
    """
    model = model_from_scenario(tiny_relief, low_fraction=0.72, hysteresis_kmh=2.0,
                                window_s=60.0, min_dwell_s=60.0, stale_after_s=120.0)
    out = run_one(RunSpec(scenario=tiny_relief, controller=ControllerSpec(kind="gps", model=model),
                          seed=1, probes=probes_30, sample_probes=True))
    result, stream, ctrl = out.result, out.probes, out.controller
    return model, result, stream, ctrl


def ms(frame: pd.DataFrame, col: str) -> np.ndarray:
    """As ``gpssignal replay`` does it (cli._cmd_replay)."""
    return frame[col].astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def log_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(DECISION_COLUMNS))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_replay_of_the_written_stream_decides_as_the_simulation(sim_run, tiny_relief,
                                                                tmp_path, suffix) -> None:
    model, result, stream, ctrl = sim_run
    sim_log = log_frame(ctrl.runtime.decision_log())
    # The case is not trivial: switches both ways and a stale fall-back.
    reasons = sim_log["reason"].tolist()
    assert reasons.count("slow") >= 2 and reasons.count("recovered") >= 2
    assert "stale" in reasons
    assert len(result.switches) >= 2

    path = write_probes(stream_to_frame(stream, tiny_relief), tmp_path / f"probes{suffix}")
    read = read_probes(path)
    assert read.report.rows_kept == len(stream)
    f = read.frame
    rt = replay(model, ms(f, "time_sent"), ms(f, "time_received"), f["lat_deg"].to_numpy(),
                f["lon_deg"].to_numpy(), f["speed_kmh"].to_numpy(),
                f["heading_deg"].to_numpy(dtype=float))
    rep_log = log_frame(rt.decision_log())
    # Common range: up to the end of the simulation. The replay goes on to the
    # last receipt + stale_after_s, and may log one more (stale) row there.
    end_ms = ctrl.t0_ms + int(round(result.end_s * 1000))
    assert (sim_log["t_ms"] <= end_ms).all()
    late = rep_log[rep_log["t_ms"] > end_ms]
    assert len(late) <= 1 and set(late["reason"]) <= {"stale"}
    assert_frame_equal(rep_log[rep_log["t_ms"] <= end_ms].reset_index(drop=True), sim_log,
                       check_exact=True)
    # Every point the simulation's controller received, the replay matched alike.
    assert rt.points_in >= ctrl.runtime.points_in
    assert rt.points_in == len(stream)


def slow_then_silent(model):
    """Six slow points 10 s apart on the first stretch, then nothing."""
    proj = GpsRuntime(model).projection
    lat, lon = proj.to_latlon(np.linspace(-250.0, -50.0, 6), np.zeros(6))
    t = 1_557_118_800_000 + 10_000 * np.arange(6, dtype=np.int64)
    return t, t, lat, lon, np.full(6, 10.0), np.full(6, 90.0)


def test_replay_with_explicit_end_shows_the_stale_fallback(make_line_model) -> None:
    model = make_line_model(min_points=3, window_s=60.0, stale_after_s=120.0)
    cols = slow_then_silent(model)
    last = int(cols[1][-1])
    rt = replay(model, *cols, end_ms=last + 300_000)
    log = rt.decision_log()
    assert [r["reason"] for r in log] == ["slow", "stale"]
    # The first grid instant more than 120 s after the last receipt.
    assert log[-1]["t_ms"] == last + 130_000
    assert rt.stale_events == 1


def test_replay_default_end_shows_the_final_stale_fallback(make_line_model) -> None:
    model = make_line_model(min_points=3, window_s=60.0, stale_after_s=120.0)
    rt = replay(model, *slow_then_silent(model))
    assert [r["reason"] for r in rt.decision_log()] == ["slow", "stale"]
    assert rt.stale_events == 1
