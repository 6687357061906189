"""The command line of the GPS controller (end-to-end, docs/architecture.md#conventions): ``train``,
``run --controller gps --model``, ``replay``, and their one-line errors.

Commands run in-process through :func:`gpssignal.cli.main`, writing into
``tmp_path``. The scenario is the tiny variant with a relief program, written
as TOML; the history is the shared 2-day one of ``conftest.py`` (same
scenario hash).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gpssignal.control.gps import DECISION_COLUMNS
from gpssignal.control.io import read_model
from gpssignal.probes.io import stream_to_frame, write_probes


@pytest.fixture(scope="module")
def trained_cli(cli, tiny_relief_toml, history_dir, tmp_path_factory):
    """``gpssignal train`` once: the model path and what it printed."""
    out = tmp_path_factory.mktemp("train") / "model.json"
    code, printed, _ = cli("train", tiny_relief_toml, "--history", history_dir, "--out", out,
                           "--candidates", 2, "--workers", 1, "--search-seed", 9,
                           "--grid", "3x3")
    return code, out, printed


def test_train_writes_model_and_search_table(trained_cli) -> None:
    code, out, printed = trained_cli
    assert code == 0
    model = read_model(out)
    search = pd.read_csv(out.with_name("model.search.csv"))
    assert len(search) == 2
    assert {"low_fraction", "hysteresis_kmh", "window_s", "min_dwell_s",
            "mean_time_loss_s", "switches_per_day"} <= set(search.columns)
    cands = model.provenance["search"]["candidates"]
    for row, cand in zip(search.to_dict("records"), cands, strict=True):
        assert row == pytest.approx(cand, rel=1e-12)  # CSV keeps 15+ digits
    assert "search (mean time loss per vehicle" in printed
    header = next(ln for ln in printed.splitlines() if ln.startswith("#"))
    assert "low_frac" in header and "time_loss_s" in header
    best = model.provenance["search"]["best"]
    assert f"* {best}" in printed                    # the best row is starred
    assert "held-out" not in printed                 # --test-days 0
    assert f"written: {out}" in printed


def test_run_gps_writes_decisions(cli, trained_cli, tiny_relief_toml, tmp_path, capsys) -> None:
    _, model, _ = trained_cli
    out = tmp_path / "run"
    assert cli("run", tiny_relief_toml, "--controller", "gps", "--model", model,
               "--out", out, "--seed", 3, "-q")[0] == 0
    names = {p.name for p in out.iterdir()}
    for t in ("summary", "vehicles", "intervals", "approaches", "movements", "switches",
              "decisions"):
        assert f"{t}.parquet" in names and f"{t}.csv" in names, t
    dec = pd.read_csv(out / "decisions.csv")
    assert list(dec.columns) == ["t_ms", "time", *DECISION_COLUMNS[1:]]
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["controller"] == "gps"
    assert meta["model_file"] == str(model)
    assert meta["red_crossings"] == 0
    assert 0 <= meta["probe_points_matched"] <= meta["probe_points"]
    assert capsys.readouterr().out == ""


def test_replay_writes_decisions_and_windows(cli, trained_cli, tiny_relief, probes_30, tmp_path,
                                             capsys) -> None:
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one

    _, model_path, _ = trained_cli
    stream = run_one(RunSpec(scenario=tiny_relief, controller=ControllerSpec(kind="fixed"),
                             seed=4, probes=probes_30, sample_probes=True)).probes
    probes = write_probes(stream_to_frame(stream, tiny_relief), tmp_path / "p.csv")
    out = tmp_path / "replay"
    assert cli("replay", probes, "--model", model_path, "--out", out)[0] == 0
    printed = capsys.readouterr().out
    assert "points on monitored stretches" in printed
    assert f"written: {out}" in printed
    dec = pd.read_parquet(out / "decisions.parquet")
    assert list(dec.columns) == ["t_ms", "time", *DECISION_COLUMNS[1:]]
    win = pd.read_parquet(out / "windows.parquet")
    assert list(win.columns) == ["t_ms", "time", "stretch", "points", "mean_kmh",
                                 "harmonic_mean_kmh"]
    model = read_model(model_path)
    step = int(model.decision_interval_s * 1000)
    assert len(win) > 0 and (win["t_ms"] % step == 0).all()     # the UTC decision grid
    assert set(win["stretch"]) == {s.id for s in model.stretches}
    assert (win["points"] > 0).any()
    assert ((win["points"] == 0) == win["mean_kmh"].isna()).all()
    assert (out / "decisions.csv").exists() and (out / "windows.csv").exists()
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["points"] == len(stream)
    assert meta["points_off_stretch"] == meta["points"] - meta["points_matched"]


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gpssignal {command}: error:"), err
    return lines[0]


def test_run_gps_without_model(cli, tiny_relief_toml, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert cli("run", tiny_relief_toml, "--controller", "gps", "--out", out)[0] == 2
    assert "--model" in one_line_error(capsys, "run")
    assert not out.exists()


def test_model_with_fixed_controller(cli, trained_cli, tiny_relief_toml, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert cli("run", tiny_relief_toml, "--model", trained_cli[1], "--out", out)[0] == 2
    assert "--model" in one_line_error(capsys, "run")
    assert not out.exists()


def test_missing_model_file(cli, tiny_relief_toml, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    missing = tmp_path / "nope.json"
    assert cli("run", tiny_relief_toml, "--controller", "gps", "--model", missing,
               "--out", out)[0] == 2
    assert "nope.json" in one_line_error(capsys, "run")
    assert not out.exists()


def test_replay_missing_probe_file(cli, trained_cli, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert cli("replay", tmp_path / "none.parquet", "--model", trained_cli[1],
               "--out", out)[0] == 2
    assert "none.parquet" in one_line_error(capsys, "replay")
    assert not out.exists()


def test_train_zero_candidates(cli, tiny_relief_toml, history_dir, tmp_path, capsys) -> None:
    out = tmp_path / "m.json"
    assert cli("train", tiny_relief_toml, "--history", history_dir, "--out", out,
               "--candidates", 0)[0] == 2
    assert "--candidates" in one_line_error(capsys, "train")
    assert not out.exists()


def test_train_on_a_folder_that_is_not_a_history(cli, tiny_relief_toml, tmp_path,
                                                 capsys) -> None:
    folder = tmp_path / "hist"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a history", encoding="utf-8")
    out = tmp_path / "m.json"
    assert cli("train", tiny_relief_toml, "--history", folder, "--out", out)[0] == 2
    assert "not readable Parquet" in one_line_error(capsys, "train")
    assert not out.exists()
    assert cli("train", tiny_relief_toml, "--history", folder, "--out", out,
               "--method", "same-seed")[0] == 2
    assert "not a gpssignal history" in one_line_error(capsys, "train")
    assert not out.exists()

