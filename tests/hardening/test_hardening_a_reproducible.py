"""Byte-reproducible outputs: the same command with the same seed writes the same bytes.

Wall times and worker counts go to the run log only (``run.log.json`` in an
output folder, ``NAME.log.json`` beside an output file): every other file
must be byte-identical between two runs, even with another ``--workers``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
LOG = "run.log.json"


@pytest.fixture
def assert_identical_but_log(snapshot):
    """``assert_identical_but_log(a, b, log)``: the two folders hold the same bytes but the log."""
    return lambda a, b, log=LOG: _identical_but_log(snapshot, a, b, log)


def _identical_but_log(snapshot, a: Path, b: Path, log: str) -> None:
    fa, fb = snapshot(a), snapshot(b)
    assert set(fa) == set(fb)
    assert log in fa
    differ = sorted(name for name in fa if fa[name] != fb[name] and name != log)
    assert differ == []
    for name, data in fa.items():
        if name == log:
            continue
        if name.endswith(".json"):
            assert b'"wall_s"' not in data and b'"workers"' not in data, name
        if name.endswith(".parquet"):
            meta = (pq.read_schema(a / name).metadata or {}).get(b"gpssignal", b"")
            assert b"wall_s" not in meta and b"workers" not in meta, name


def test_run_twice_is_byte_identical_except_the_log(
        cli, assert_identical_but_log, tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, _, err = cli("run", TINY, "--out", tmp_path / name, "-q")
        assert code == 0, err
    assert_identical_but_log(tmp_path / "a", tmp_path / "b")
    log = json.loads((tmp_path / "a" / LOG).read_text(encoding="utf-8"))
    assert log["command"] == "run" and log["wall_s"] > 0


def test_evaluate_twice_is_byte_identical_except_the_log(
        cli, snapshot, assert_identical_but_log, tmp_path: Path) -> None:
    for name, workers in (("a", 1), ("b", 2)):
        code, _, err = cli("evaluate", TINY, "--replications", 2, "--controllers",
                           "fixed,tod", "--out", tmp_path / name, "-q",
                           "--workers", workers)
        assert code == 0, err
    assert_identical_but_log(tmp_path / "a", tmp_path / "b")
    assert "report.html" in snapshot(tmp_path / "a")
    log = json.loads((tmp_path / "b" / LOG).read_text(encoding="utf-8"))
    assert log["workers"] == 2 and "wall_s" in log


def test_history_twice_is_byte_identical_except_the_log(
        cli, assert_identical_but_log, tmp_path: Path) -> None:
    for name, workers in (("a", 1), ("b", 2)):
        code, _, err = cli("history", TINY, "--days", 2, "--out", tmp_path / name,
                           "-q", "--workers", workers)
        assert code == 0, err
    assert_identical_but_log(tmp_path / "a", tmp_path / "b")


def test_probes_twice_is_byte_identical_except_the_log(cli, snapshot, tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, _, err = cli("probes", TINY, "--out", tmp_path / name / "p.parquet", "-q")
        assert code == 0, err
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert list(a) == ["p.parquet"] and a == b  # a single file: no log beside it
    meta = pq.read_schema(tmp_path / "a" / "p.parquet").metadata[b"gpssignal"]
    assert b"wall_s" not in meta


def test_train_twice_is_byte_identical_except_the_log(
        cli, assert_identical_but_log, tmp_path: Path, tiny_relief_toml: Path) -> None:
    hist = tmp_path / "history"
    code, _, err = cli("history", tiny_relief_toml, "--days", 2, "--out", hist, "-q",
                       "--workers", 1, "--period", 30, "--penetration", 0.5)
    assert code == 0, err
    for name, workers in (("a", 1), ("b", 2)):
        code, _, err = cli("train", tiny_relief_toml, "--history", hist, "--out",
                           tmp_path / name / "model.json", "--candidates", 2, "-q",
                           "--workers", workers)
        assert code == 0, err
    assert_identical_but_log(tmp_path / "a", tmp_path / "b", log="model.log.json")
    assert "train_wall_s" not in (tmp_path / "a" / "model.json").read_text(encoding="utf-8")
