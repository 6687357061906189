"""Hardening D: sweeps and estimates write byte-identical files for the same command.

``tune --out DIR`` writes ``points``/``runs`` (CSV, Parquet), ``meta.json``,
the figures (PNG), ``sweep.html`` and ``sweep.md`` beside the result store
``runs.duckdb`` and the run log. Each run's wall time and finish time stay in
the store (a DuckDB file is never byte-identical: it holds them, and its
pages are laid out as the inserts arrive); the worker count, the backend,
the command's wall time and how many runs a resume found stored go to the
run log. Every other file is byte-identical: for another ``--workers``, and
for a sweep resumed in the same folder. ``estimate``'s models carry neither
their temporary history folder nor their training time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.estimate.lists import CROSS, HEADER, TEE

LOG = "run.log.json"
STORE = "runs.duckdb"
GRID = ["--grid", "threshold_low_kmh=20,30", "--replications", 2, "--first-seed", 41]
TIMING = (b"wall_s", b"finished_at", b"workers")


def _differing(snapshot, a: Path, b: Path, skip: set[str]) -> list[str]:
    fa, fb = snapshot(a), snapshot(b)
    assert set(fa) == set(fb)
    return sorted(n for n in fa if n not in skip and fa[n] != fb[n])


def _no_timing(snapshot, folder: Path, skip: set[str]) -> None:
    for name, data in snapshot(folder).items():
        if name in skip or name.endswith(".png"):
            continue
        if name.endswith(".parquet"):
            pf = pq.ParquetFile(folder / name)
            data = pf.metadata.metadata.get(b"gpssignal", b"") + \
                ",".join(pf.schema_arrow.names).encode()
        for word in TIMING:
            assert word not in data, (name, word)


def test_a_sweep_twice_and_a_resumed_sweep_are_byte_identical_but_store_and_log(
        cli, snapshot, tiny_relief_toml: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = cli("tune", tiny_relief_toml, *GRID, "--workers", 1, "--out", a, "-q")
    assert code == 0, err
    # b: first one point (as if stopped there), then resumed with both, on 2 workers.
    code, _, err = cli("tune", tiny_relief_toml, "--grid", "threshold_low_kmh=20",
                       *GRID[2:], "--workers", 1, "--out", b, "-q")
    assert code == 0, err
    code, _, err = cli("tune", tiny_relief_toml, *GRID, "--workers", 2, "--out", b, "-q")
    assert code == 0, err
    skip = {LOG, STORE}
    files = set(snapshot(a))
    assert {"points.csv", "points.parquet", "runs.csv", "runs.parquet", "meta.json",
            "sweep.html", "sweep.md", LOG, STORE} <= files
    assert any(n.endswith(".png") for n in files)
    assert _differing(snapshot, a, b, skip) == []
    _no_timing(snapshot, a, skip)
    logs = [json.loads((d / LOG).read_text(encoding="utf-8")) for d in (a, b)]
    assert logs[0]["command"] == "tune" and logs[0]["workers"] == 1
    assert logs[1]["workers"] == 2 and logs[1]["skipped"] > 0 and logs[1]["run"] > 0
    assert logs[0]["skipped"] == 0 and logs[0]["run"] == logs[1]["skipped"] + logs[1]["run"]


def test_an_estimate_twice_is_byte_identical_but_the_log(cli, snapshot,
                                                         tmp_path: Path) -> None:
    csv = tmp_path / "junctions.csv"
    csv.write_text("\n".join([HEADER, CROSS, TEE]) + "\n", encoding="utf-8")
    for name, workers in (("a", 1), ("b", 2)):
        code, _, err = cli("estimate", csv, "--replications", 2, "--train-days", 1,
                           "--candidates", 2, "--no-oracle", "--workers", workers,
                           "--out", tmp_path / name, "-q")
        assert code == 0, err
    a = tmp_path / "a"
    assert {"models/cross.json", "models/tee.json", "junctions.csv", "estimate.html",
            LOG} <= set(snapshot(a))
    # The store (estimate.duckdb, the resumable record with its timestamps) differs
    # like the sweep's runs.duckdb; every output made from it is identical.
    assert _differing(snapshot, a, tmp_path / "b", {LOG, "estimate.duckdb"}) == []
    _no_timing(snapshot, a, {LOG, "estimate.duckdb"})
    model = (a / "models" / "cross.json").read_text(encoding="utf-8")
    assert "gpssignal-estimate-" not in model and "train_wall_s" not in model
    log = json.loads((tmp_path / "b" / LOG).read_text(encoding="utf-8"))
    assert log["workers"] == 2 and set(log["train_wall_s"]) == {"cross", "tee"}
