"""End-to-end tests (docs/architecture.md#conventions) of the command line: ``gpssignal run`` and
``gpssignal validate`` on the tiny scenario, checking the files they write.

The commands run in-process through :func:`gpssignal.cli.main`; one test starts
the real entry point in a subprocess. Every run writes into ``tmp_path``, and
the bad-input tests also ``chdir`` there, so the default ``results/`` folder
would show up in the folder listing they check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

import gpssignal
from gpssignal.model.io import read_scenario, scenario_hash

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
VALLENSBAEK = REPO / "scenarios" / "vallensbaek.toml"

TABLES = ("summary", "vehicles", "intervals", "approaches", "movements", "switches")

#: Columns each table is documented to have (gpssignal.evaluate.metrics and
#: docs/definitions.md). Checked as a subset, so adding a column breaks nothing.
COLUMNS = {
    "summary": ["kpi", "unit", "period", "peak_hour", "definition"],
    "vehicles": ["vehicle", "vehicle_class", "entry_link", "first_movement", "route",
                 "arrival_s", "depart_s", "exit_s", "entry_wait_s", "travel_time_s",
                 "free_flow_time_s", "time_loss_s", "route_length_m", "stops", "speed_factor",
                 "completed", "stretch_main_eb_s"],
    "intervals": ["interval_start", "t0_s", "arrivals", "completed", "mean_time_loss_s",
                  "total_time_loss_veh_h", "mean_travel_time_s", "stops_per_veh",
                  "throughput_vph", "speed_main_eb_kmh", "n_main_eb"],
    "approaches": ["junction", "approach_link", "lanes", "queue_mean_m", "queue_p95_m",
                   "queue_max_m", "queued_veh_max", "crossings", "control_delay_s", "los"],
    "movements": ["junction", "approach_link", "movement", "vehicles", "control_delay_s",
                  "los"],
    "switches": ["t_s", "clock", "junction", "from_program", "to_program", "hold_s"],
    "trajectories": ["t_s", "vid", "link", "pos_m", "speed_mps", "accel_mps2"],
}

#: Tiny's links [m] and speed limit [km/h] (scenarios/tiny.toml).
TINY_LENGTH_M = {"W_in": 400.0, "S_in": 300.0, "E_out": 200.0, "N_out": 200.0}
TINY_LIMIT_KMH = 50.0


def listing(folder: Path) -> set[str]:
    """Every file and folder below ``folder`` (hidden ones too), as relative paths."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def read_meta(out: Path) -> dict:
    return json.loads((out / "meta.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------
# One default run (fixed controller, the scenario's seed), shared by the
# content tests: the tables are read-only, so one run serves them all.
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_run(cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("cli") / "tiny-fixed"
    code, stdout, _ = cli("run", TINY, "--out", out)
    assert code == 0
    return out, stdout


@pytest.fixture(scope="module")
def tables(default_run: tuple[Path, str]) -> dict[str, pd.DataFrame]:
    out, _ = default_run
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES}


def test_run_writes_every_table_as_parquet_and_csv_plus_meta(default_run):
    out, _ = default_run
    expected = {f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")} | {"meta.json",
                                                                               "run.log.json"}
    assert listing(out) == expected
    # Written through a temporary folder beside the output: none may be left.
    assert listing(out.parent) == {out.name} | {f"{out.name}/{f}" for f in expected}


def test_meta_records_seed_hash_version_controller(default_run):
    out, _ = default_run
    meta = read_meta(out)
    sc = read_scenario(TINY)
    assert meta["seed"] == sc.seed == 1
    assert meta["scenario_hash"] == scenario_hash(sc)
    assert meta["version"] == gpssignal.__version__
    assert meta["controller"] == "fixed"
    assert meta["scenario"] == "tiny"
    # tiny's default day: every vehicle could stop at red (the counts are
    # measured, see tests/sim/test_sim_physics.py for where they must not be 0).
    assert meta["red_crossings"] == 0
    summary = pd.read_csv(out / "summary.csv").set_index("kpi")
    assert summary.loc["emergency_brakings", "period"] == meta["emergency_brakings"]
    assert summary.loc["red_crossings", "period"] == meta["red_crossings"]
    assert meta["signal_checks"] > 0
    assert meta["program_switches"] == 0


@pytest.mark.parametrize("name", TABLES)
def test_parquet_schema_metadata_holds_meta_json(default_run, name):
    out, _ = default_run
    schema_meta = pq.read_schema(out / f"{name}.parquet").metadata
    assert json.loads(schema_meta[b"gpssignal"]) == read_meta(out)


@pytest.mark.parametrize("name", TABLES)
def test_tables_have_documented_columns_and_csv_matches_parquet(default_run, tables, name):
    out, _ = default_run
    df = tables[name]
    missing = set(COLUMNS[name]) - set(df.columns)
    assert not missing, f"{name}.parquet lacks {sorted(missing)}"
    csv = pd.read_csv(out / f"{name}.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(df.columns)
    # Strings come back as object, all-NaN or empty columns as float: compare values.
    assert_frame_equal(csv, df, check_dtype=False, check_column_type=False,
                       check_index_type=False)


def test_vehicles_content(tables):
    v = tables["vehicles"]
    # 800 veh/h for 15 min = 200 expected; the day factor (sd 5 %, truncated at
    # 3 sd) and Poisson noise (sd ~14) keep a real run well inside 150..250.
    assert 150 <= len(v) <= 250
    assert list(v["vehicle"]) == list(range(len(v)))
    assert set(v["entry_link"]) == {"W_in", "S_in"}
    assert set(v["first_movement"]) == {"through"}
    assert set(v["route"]) == {"W_in→E_out", "S_in→N_out"}
    # Under fixed timing tiny is under-saturated and 300 s of drain empty it.
    assert v["completed"].all()
    assert (v["arrival_s"] >= 0).all() and (v["arrival_s"] < 900).all()
    assert (v["depart_s"] >= v["arrival_s"]).all()
    assert (v["exit_s"] > v["depart_s"]).all()
    assert (v["stops"] >= 0).all()
    # Definitions (evaluate/definitions.py), to rounding.
    tol = 1e-9
    assert ((v["travel_time_s"] - (v["exit_s"] - v["depart_s"])).abs() < tol).all()
    assert ((v["entry_wait_s"] - (v["depart_s"] - v["arrival_s"])).abs() < tol).all()
    assert ((v["time_loss_s"] - (v["travel_time_s"] - v["free_flow_time_s"]
                                 + v["entry_wait_s"])).abs() < tol).all()
    # Free-flow time = route length / (speed limit x speed factor): one limit here.
    ff = v["route_length_m"] / (TINY_LIMIT_KMH / 3.6 * v["speed_factor"])
    assert ((v["free_flow_time_s"] - ff).abs() < 1e-6 * ff).all()
    length = {"W_in→E_out": 600.0, "S_in→N_out": 500.0}
    assert (v["route_length_m"] == v["route"].map(length)).all()
    # Time loss is never negative in continuous time. The exit time is
    # interpolated linearly within the 0.5 s step in which the vehicle passes
    # the end of its route, while the kernel's positions follow the (curved)
    # speed profile; the interpolation error is a fraction of one step, so
    # -0.5 s (one step_s) bounds it.
    assert (v["time_loss_s"] >= -0.5).all()
    # Side road vehicles wait out most of an 8 s / 60 s green split: some lose time.
    assert v["time_loss_s"].max() > 10


def test_summary_content(tables):
    v, s = tables["vehicles"], tables["summary"].set_index("kpi")
    for kpi in ("vehicles_arrived", "vehicles_completed", "mean_time_loss_s",
                "total_time_loss_veh_h", "mean_travel_time_s", "throughput_vph",
                "speed_main_eb_kmh"):
        assert kpi in s.index, kpi
    assert s.loc["mean_time_loss_s", "unit"] == "s/veh"
    assert s.loc["speed_main_eb_kmh", "unit"] == "km/h"
    # Every vehicle arrives within the period (and the peak hour covers it).
    assert s.loc["vehicles_arrived", "period"] == len(v)
    assert s.loc["vehicles_completed", "period"] == v["completed"].sum()
    assert s.loc["mean_time_loss_s", "period"] == pytest.approx(v["time_loss_s"].mean())
    assert s.loc["total_time_loss_veh_h", "period"] == pytest.approx(
        v["time_loss_s"].sum() / 3600)
    # Space-mean speed = length / mean traversal time; no vehicle outruns its
    # desired speed (limit x factor), so the mean can't exceed the fastest one's.
    speed = s.loc["speed_main_eb_kmh", "period"]
    assert 0 < speed <= TINY_LIMIT_KMH * v["speed_factor"].max() * 1.001
    # It is a harmonic mean of the vehicles' stretch speeds (those entering the
    # 300 m stretch in the period, a subset of the table's), so it lies between them.
    each = 300.0 / v["stretch_main_eb_s"].dropna() * 3.6
    assert each.min() - 1e-9 <= speed <= each.max() + 1e-9


def test_intervals_approaches_movements_switches_content(tables):
    v = tables["vehicles"]
    iv = tables["intervals"]
    assert len(iv) == 1 and iv.loc[0, "interval_start"] == "07:00"
    assert iv.loc[0, "arrivals"] == len(v) and iv.loc[0, "completed"] == len(v)

    a = tables["approaches"].set_index("approach_link")
    assert set(a.index) == {"W_in", "S_in"} and set(a["junction"]) == {"J1"}
    # Each vehicle crosses J1 exactly once.
    assert a["crossings"].sum() == len(v)
    assert a.loc["W_in", "crossings"] == (v["entry_link"] == "W_in").sum()
    for link, row in a.iterrows():
        assert 0 <= row["queue_mean_m"] <= row["queue_p95_m"] <= row["queue_max_m"]
        assert row["queue_max_m"] <= TINY_LENGTH_M[link] + 1e-6
        assert row["control_delay_s"] >= 0
        assert row["los"] in list("ABCDEF")

    m = tables["movements"]
    assert set(m["movement"]) == {"through"}
    assert m["vehicles"].sum() == len(v)

    sw = tables["switches"]
    assert len(sw) == 0  # fixed timing never switches


def test_run_prints_a_summary(default_run):
    out, stdout = default_run
    assert "mean_time_loss_s" in stdout
    assert "controller fixed" in stdout and "seed 1" in stdout
    assert str(out) in stdout


# ---------------------------------------------------------------------------
# Seeds, controllers, options
# ---------------------------------------------------------------------------

def test_same_seed_identical_different_seed_different(cli, default_run, tmp_path):
    out, _ = default_run
    base = pd.read_parquet(out / "vehicles.parquet")
    assert cli("run", TINY, "--seed", 1, "--out", tmp_path / "s1", "-q")[0] == 0
    assert cli("run", TINY, "--seed", 2, "--out", tmp_path / "s2", "-q")[0] == 0
    assert_frame_equal(pd.read_parquet(tmp_path / "s1" / "vehicles.parquet"), base)
    other = pd.read_parquet(tmp_path / "s2" / "vehicles.parquet")
    assert not other.equals(base)
    n = min(len(other), len(base))
    assert not other["arrival_s"].iloc[:n].equals(base["arrival_s"].iloc[:n])
    assert read_meta(tmp_path / "s2")["seed"] == 2
    # Same scenario, so the same hash, whatever the seed.
    assert read_meta(tmp_path / "s2")["scenario_hash"] == read_meta(out)["scenario_hash"]


def test_time_of_day_controller_records_the_scheduled_switch(cli, tmp_path):
    out = tmp_path / "tod"
    assert cli("run", TINY, "--controller", "tod", "--out", out, "-q")[0] == 0
    sw = pd.read_csv(out / "switches.csv")
    # Schedule: normal from 07:00, peak from 07:05. Both programs have a 60 s
    # cycle at offset 0, so 07:05:00 is a synchronisation point: no hold.
    assert len(sw) == 1
    row = sw.iloc[0]
    assert (row["junction"], row["from_program"], row["to_program"]) == ("J1", "normal", "peak")
    assert row["clock"] == "07:05"
    assert row["t_s"] == pytest.approx(300.0)
    assert row["hold_s"] == pytest.approx(0.0)
    meta = read_meta(out)
    assert meta["controller"] == "tod" and meta["program_switches"] == 1
    assert meta["red_crossings"] == 0


def test_fixed_program_option_runs_that_program(cli, tmp_path):
    out = tmp_path / "peak"
    assert cli("run", TINY, "--program", "peak", "--out", out, "-q")[0] == 0
    assert len(pd.read_parquet(out / "switches.parquet")) == 0
    # Peak gives the side road 6 s instead of 8 s of green: its delay grows.
    base = tmp_path / "normal"
    assert cli("run", TINY, "--program", "normal", "--out", base, "-q")[0] == 0
    d_peak = pd.read_parquet(out / "approaches.parquet").set_index("approach_link")
    d_norm = pd.read_parquet(base / "approaches.parquet").set_index("approach_link")
    assert d_peak.loc["S_in", "control_delay_s"] > d_norm.loc["S_in", "control_delay_s"]


def test_trajectories_option_writes_trajectories(cli, default_run, tmp_path):
    out = tmp_path / "traj"
    assert cli("run", TINY, "--trajectories", "--out", out, "-q")[0] == 0
    tr = pd.read_parquet(out / "trajectories.parquet")
    assert set(COLUMNS["trajectories"]) <= set(tr.columns)
    assert len(tr) > 0
    veh = pd.read_parquet(out / "vehicles.parquet")
    assert set(tr["vid"]) == set(veh["vehicle"])
    assert set(tr["link"].astype(str)) <= set(TINY_LENGTH_M)
    assert (tr["speed_mps"] >= 0).all()
    assert (tr["pos_m"] >= 0).all()
    # The default run did not write them.
    default_out, _ = default_run
    assert not (default_out / "trajectories.parquet").exists()


def test_trajectories_are_streamed_and_equal_the_runs(cli, tmp_path, monkeypatch):
    """--trajectories writes block by block (issue 18): the same rows as the run keeps in
    memory, the CSV byte for byte the whole table's, and no temporary file left."""
    from gpssignal.evaluate import io as evaluate_io
    from gpssignal.experiment.run import run_scenario
    from gpssignal.sim.records import TrajectoryLog

    # Small blocks and row groups, so that tiny's run streams many of each.
    monkeypatch.setattr(TrajectoryLog, "STREAM_ROWS", 1000)
    monkeypatch.setattr(evaluate_io, "STREAM_ROW_GROUP_ROWS", 3000)
    out = tmp_path / "traj"
    assert cli("run", TINY, "--trajectories", "--out", out, "-q")[0] == 0
    sc = read_scenario(TINY)
    result, _ = run_scenario(sc, "fixed", record_trajectories=True)
    want = pd.DataFrame(result.trajectories)
    want["link"] = pd.Categorical.from_codes(want["link"], result.network.link_ids)
    assert len(want) > 4 * 3000
    assert_frame_equal(pd.read_parquet(out / "trajectories.parquet"), want)
    assert (out / "trajectories.csv").read_bytes() == want.to_csv(index=False).encode()
    meta = pq.ParquetFile(out / "trajectories.parquet").metadata
    sizes = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sizes[:-1] == [3000] * (len(sizes) - 1) and 0 < sizes[-1] <= 3000
    assert json.loads(pq.read_schema(out / "trajectories.parquet").metadata[b"gpssignal"]) \
        == read_meta(out)
    assert {p.name for p in tmp_path.iterdir()} == {"traj"}


def test_a_failed_run_leaves_no_streamed_trajectories(cli, tmp_path, monkeypatch):
    from gpssignal.cli import simulate

    def fail(*args, **kwargs):
        raise RuntimeError("tables failed")

    monkeypatch.setattr(simulate, "_run_outputs", fail)
    with pytest.raises(RuntimeError, match="tables failed"):
        cli("run", TINY, "--trajectories", "--out", tmp_path / "out", "-q")
    assert listing(tmp_path) == set()


def test_no_csv_option_writes_parquet_only(cli, tmp_path):
    out = tmp_path / "nocsv"
    assert cli("run", TINY, "--no-csv", "--out", out, "-q")[0] == 0
    assert listing(out) == {f"{t}.parquet" for t in TABLES} | {"meta.json", "run.log.json"}


def test_existing_out_folder_keeps_the_users_files(cli, tmp_path):
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "README.txt").write_text("my notes\n", encoding="utf-8")
    (out / "notes" / "plot.png").write_bytes(b"\x89PNG not really")
    assert cli("run", TINY, "--out", out, "-q")[0] == 0
    assert (out / "README.txt").read_text(encoding="utf-8") == "my notes\n"
    assert (out / "notes" / "plot.png").read_bytes() == b"\x89PNG not really"
    assert (out / "vehicles.parquet").is_file() and (out / "meta.json").is_file()
    # No temporary folder left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_quiet_prints_nothing(cli, tmp_path, capsys):
    assert cli("run", TINY, "--out", tmp_path / "q", "-q")[0] == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ---------------------------------------------------------------------------
# Bad input: exit code 2, one line naming the field and value, no traceback,
# and nothing written (docs/architecture.md#conventions, bad input).
# ---------------------------------------------------------------------------

def _tiny_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = TINY.read_text(encoding="utf-8")
    # A replacement that matched nothing would test the valid file instead.
    assert text.count(old) == 1, old
    path = tmp_path / "scenario.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


BAD_INPUTS = {
    # id: (make argv from tmp_path -> list, substrings the error line must contain)
    "missing-scenario-file": (
        lambda d: ["run", d / "nope.toml"], ["scenario file", "nope.toml"]),
    "typo-key": (
        lambda d: ["run", _tiny_variant(d, "drain_s = 300", "drian_s = 300")],
        ["drian_s", "300"]),
    "negative-flow": (
        lambda d: ["run", _tiny_variant(d, "flow_vph = [600]", "flow_vph = [-600]")],
        ["flow_vph", "-600"]),
    "unknown-controller": (
        lambda d: ["run", TINY, "--controller", "nonsense"], ["--controller", "nonsense"]),
    "seed-not-a-number": (
        lambda d: ["run", TINY, "--seed", "notanumber"], ["--seed", "notanumber"]),
    "unknown-program": (
        lambda d: ["run", TINY, "--controller", "fixed", "--program", "nonexistent"],
        ["--program", "nonexistent"]),
    "out-is-a-file": (
        lambda d: ["run", TINY, "--out", d / "taken.txt"], ["--out", "taken.txt"]),
    # Were bugs: a traceback after the whole run, a traceback from numpy, and a
    # silently ignored option.
    "out-parent-is-a-file": (
        lambda d: ["run", TINY, "--out", d / "taken.txt" / "sub"], ["--out", "taken.txt"]),
    "negative-seed": (lambda d: ["run", TINY, "--seed", "-1"], ["--seed", "-1"]),
    "program-with-tod": (
        lambda d: ["run", TINY, "--controller", "tod", "--program", "peak"],
        ["--program", "peak"]),
}


def _check_bad_input(cli, tmp_path, monkeypatch, capsys, make_argv, expected):
    (tmp_path / "taken.txt").write_text("do not touch\n", encoding="utf-8")
    argv = [str(a) for a in make_argv(tmp_path)]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    monkeypatch.chdir(tmp_path)  # the default results/ folder would land here
    before = listing(tmp_path)
    code = cli(*argv)[0]
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert listing(tmp_path) == before
    assert (tmp_path / "taken.txt").read_text(encoding="utf-8") == "do not touch\n"


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_exit_2_nothing_written(cli, case, tmp_path, monkeypatch, capsys):
    make_argv, expected = BAD_INPUTS[case]
    _check_bad_input(cli, tmp_path, monkeypatch, capsys, make_argv, expected)


# ---------------------------------------------------------------------------
# validate, and the installed entry point
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", [TINY, VALLENSBAEK], ids=["tiny", "vallensbaek"])
def test_validate_accepts_the_shipped_scenarios(cli, path, capsys):
    assert cli("validate", path)[0] == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out
    assert read_scenario(path).name in captured.out
    assert captured.err == ""


def test_validate_rejects_a_bad_scenario(cli, tmp_path, capsys):
    path = _tiny_variant(tmp_path, "min_green_s = 6", "min_green_s = 9")
    assert cli("validate", path)[0] == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "min green" in err[0]


def test_help_of_the_installed_command():
    proc = subprocess.run([sys.executable, "-m", "gpssignal", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage: gpssignal" in proc.stdout
    assert "run" in proc.stdout and "validate" in proc.stdout
    assert proc.stderr == ""
