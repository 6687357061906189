"""``gpssignal train --method`` on the command line: the data-driven and
reconstruction methods on recorded points, what they print and write, and
their one-line errors."""

from __future__ import annotations

import json

import pandas as pd

from gpssignal.control.io import read_model


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def _recorded_csv(history_dir, tmp_path):
    """The history's first day as a plain CSV export (UTC timestamps with an offset)."""
    path = sorted((history_dir / "probes").glob("date=*/probes.parquet"))[0]
    df = pd.read_parquet(path)
    csv = tmp_path / "export.csv"
    df.to_csv(csv, index=False)
    return csv


def test_data_driven_on_a_csv(cli, tiny_relief_toml, history_dir, tmp_path) -> None:
    out = tmp_path / "m.json"
    code, printed, err = cli("train", tiny_relief_toml, "--history",
                             _recorded_csv(history_dir, tmp_path), "--method", "data-driven",
                             "--out", out)
    assert code == 0, err
    prov = read_model(out).provenance
    assert prov["method"]["name"] == "data-driven"
    assert "method: data-driven (no simulation" in printed
    assert not out.with_name("m.search.csv").exists()          # nothing searched
    assert json.loads(out.with_name("m.log.json").read_text(encoding="utf-8"))["command"] \
        == "train"


def test_reconstruct_prints_the_day_fits(cli, tiny_relief_toml, history_dir, tmp_path) -> None:
    out = tmp_path / "m.json"
    code, printed, err = cli("train", tiny_relief_toml, "--history", history_dir, "--out", out,
                             "--candidates", 2, "--grid", "3x3", "-q")
    assert code == 0, err
    assert printed == ""
    prov = read_model(out).provenance
    assert prov["method"]["name"] == "reconstruct"                # the default
    assert "training_seeds" not in prov
    code, printed, err = cli("train", tiny_relief_toml, "--history", history_dir, "--out",
                             tmp_path / "m2.json", "--candidates", 2, "--grid", "3x3")
    assert code == 0, err
    assert "day reconstruction" in printed
    for fit in prov["reconstruction"]["fits"]:
        assert fit["date"] in printed
    assert "on the reconstructed days (simulated, fresh seeds)" in printed


def test_bad_options_are_one_line_errors(cli, tiny_relief_toml, history_dir, tmp_path,
                                         capsys) -> None:
    out = tmp_path / "m.json"
    for grid in ("1x5", "3", "axb", "30x30"):
        assert cli("train", tiny_relief_toml, "--history", history_dir, "--out", out,
                   "--grid", grid)[0] == 2
        assert f"--grid = {grid!r}" in _one_line(capsys)
    assert cli("train", tiny_relief_toml, "--history", tmp_path / "none.csv", "--out", out,
               "--method", "data-driven")[0] == 2
    assert "not found" in _one_line(capsys)
    log = tmp_path / "log.csv"
    log.write_text("time,program\n07:00,rush\n", encoding="utf-8")
    assert cli("train", tiny_relief_toml, "--history", history_dir, "--out", out,
               "--program-log", log, "--grid", "3x3", "--candidates", 1)[0] == 2
    assert "program = 'rush'" in _one_line(capsys)
    assert not out.exists()
