"""Sweeps (gpssignal.experiment.sweep, `gpssignal tune`): grids, the resumable
DuckDB store, and identical results on the local and the Dask backend.

Scenario: ``scenarios/tiny.toml`` (15 min) with ``relief_program = "peak"``,
the untrained model of :func:`model_from_scenario`; thresholds are swept in
absolute km/h, so the model's free-flow speeds do not matter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from gpssignal import cli
from gpssignal.control.gps import model_from_scenario
from gpssignal.errors import SweepSpecError
from gpssignal.experiment.parallel import DaskBackend, LocalBackend
from gpssignal.experiment.sweep import (
    ResultStore,
    baseline_arms,
    grid_points,
    model_identity,
    parse_grid,
    plan_tasks,
    point_summary,
    run_sweep,
)
from gpssignal.model.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
GRID = ["threshold_low_kmh=25:35:10", "penetration=0.1,0.3"]
SEEDS = [21, 22]


def test_grid_includes_the_stop_value_and_rejects_bad_specs() -> None:
    assert parse_grid("threshold_low_kmh=15:35:2.5")[1] == [15 + 2.5 * k for k in range(9)]
    assert parse_grid("penetration=0.02,0.05")[1] == [0.02, 0.05]
    for bad in ("nonsense=1:2:1", "window_s=1:2", "window_s=3:1:1", "window_s=1:2:0",
                "window_s=a,b", "window_s"):
        with pytest.raises(SweepSpecError, match="grid"):
            parse_grid(bad)


def test_fixed_baselines_are_shared_between_points() -> None:
    points = grid_points([parse_grid(g) for g in GRID])
    tasks = plan_tasks(points, SEEDS)
    # 4 points x 2 days of GPS runs, and one fixed run per day (no demand_scale swept).
    assert sum(t.controller == "gps" for t in tasks) == 8
    assert sum(t.controller == "fixed" for t in tasks) == 2
    scaled = grid_points([parse_grid("demand_scale=0.9,1.1"), parse_grid("window_s=60,120")])
    assert sum(t.controller == "fixed" for t in plan_tasks(scaled, SEEDS)) == 4


def _stored(path: Path):
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * EXCLUDE (wall_s, finished_at) FROM runs ORDER BY key"
                           ).fetchdf()
    finally:
        con.close()


def test_local_and_dask_store_identical_results(tiny_relief: Scenario, tmp_path: Path) -> None:
    tiny = tiny_relief
    pytest.importorskip("dask.distributed")
    model = model_from_scenario(tiny)
    points = grid_points([parse_grid(g) for g in GRID])
    for name, backend in (("local", LocalBackend(1)), ("dask", DaskBackend(2))):
        store = ResultStore(tmp_path / name / "runs.duckdb", tiny, model_identity(model))
        try:
            counts = run_sweep(tiny, model, points, SEEDS, store, backend)
        finally:
            backend.close()
            store.close()
        # 4 points x 2 days of GPS runs; per day the existing plan (tod), each
        # program fixed and the hindsight bound.
        assert baseline_arms(tiny) == ["tod", "fixed:normal", "fixed:peak", "oracle"]
        assert counts == {"total": 16, "skipped": 0, "run": 16}
    local, dask = _stored(tmp_path / "local" / "runs.duckdb"), _stored(
        tmp_path / "dask" / "runs.duckdb")
    assert len(local) == 16
    assert_frame_equal(local, dask)


def test_point_summary_pairs_each_point_with_the_existing_plan_of_the_same_day(
        tiny_relief: Scenario, tmp_path: Path) -> None:
    tiny = tiny_relief
    model = model_from_scenario(tiny)
    points = grid_points([parse_grid("threshold_low_kmh=40")])
    store = ResultStore(tmp_path / "runs.duckdb", tiny, model_identity(model))
    arms = baseline_arms(tiny)
    run_sweep(tiny, model, points, SEEDS, store, LocalBackend(1), baselines=arms)
    runs = store.frame()
    store.close()
    summ = point_summary(runs, points, SEEDS, arms).iloc[0]
    by = runs.set_index(["controller", "seed"])

    def tl(arm: str) -> np.ndarray:
        return np.array([by.loc[(arm, s), "mean_time_loss_s"] for s in SEEDS])

    assert summ["existing_plan"] == "tod"
    assert summ["time_loss_saving"] == pytest.approx(np.mean(tl("tod") - tl("gps")), rel=1e-12)
    # The best fixed program on these days, and GPS against it, paired.
    best = min(("fixed:normal", "fixed:peak"), key=lambda a: tl(a).mean())
    assert summ["best_fixed"] == best
    assert summ["gps_vs_best_fixed_s"] == pytest.approx(np.mean(tl("gps") - tl(best)),
                                                         rel=1e-12)
    assert summ["time_loss_verdict"] in ("saves", "costs", "no detectable difference")
    assert np.isfinite(summ["capture_ratio"])
    assert summ["time_loss_unit"] == "s/veh"
    # Ranked by person-hours: the same pairing on the time loss per person
    # (every stored run keeps both; tiny has occupancy 1 and no pedestrians, so
    # the two differ only where completed vehicles and persons do).
    per = point_summary(runs, points, SEEDS, arms, objective="person-hours").iloc[0]

    def tp(arm: str) -> np.ndarray:
        return np.array([by.loc[(arm, s), "mean_time_loss_per_person_s"] for s in SEEDS])

    assert per["time_loss_unit"] == "s/person" and per["objective"] == "person-hours"
    assert per["time_loss_saving"] == pytest.approx(np.mean(tp("tod") - tp("gps")), rel=1e-12)
    best_p = min(("fixed:normal", "fixed:peak"), key=lambda a: tp(a).mean())
    assert per["best_fixed"] == best_p


def test_a_killed_sweep_resumes_without_losing_or_repeating_runs(tiny_relief_toml: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "gpssignal", "-v", "tune", str(tiny_relief_toml),
            "--grid", "threshold_low_kmh=20:45:5", "--replications", "2", "--first-seed", "31",
            "--workers", "1", "--out", str(out)]
    total = 6 * 2 + 2 * 4  # GPS runs, then per day: tod, each program fixed, oracle
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    stored = 0
    for line in proc.stderr:
        if "stored run" in line:
            stored += 1
            if stored == 3:
                proc.send_signal(signal.SIGKILL)  # no clean-up at all
                break
    proc.wait(timeout=60)
    assert stored == 3 and proc.returncode == -signal.SIGKILL
    first = _stored(out / "runs.duckdb")
    assert len(first) >= 3  # every run reported stored survived the kill
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{total} runs: {len(first)} already stored, {total - len(first)} run now" \
        in done.stdout
    final = _stored(out / "runs.duckdb")
    assert len(final) == total and final["key"].is_unique
    # The runs stored before the kill were kept as they were, not run again.
    kept = final.set_index("key").loc[first["key"]].reset_index()
    assert_frame_equal(kept, first)


def test_bad_grid_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli.main(["tune", str(TINY), "--grid", "thresh=1:2:1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "thresh" in err
    assert list(tmp_path.iterdir()) == []
