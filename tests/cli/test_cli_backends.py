"""``--workers``, ``--backend`` and ``--scheduler`` on the commands that run many
simulations (``history``, ``train``, ``evaluate``, ``tune``, ``estimate``).

A run's result depends only on its task, so the files a command writes must
not depend on the backend: each command runs on the tiny variant with a
relief program (``tiny_relief_toml``, tests/conftest.py) once locally in this
process and once on Dask, and the tables are compared. ``evaluate`` starts its
own ``LocalCluster`` (``--workers 2``); ``history`` and ``train`` use one
running scheduler (``--scheduler``) shared by the module, which keeps the
cluster start-ups to two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.cli import build_parser
from gpssignal.cli.common import BACKEND_NAMES
from gpssignal.control.gps import model_from_scenario
from gpssignal.control.io import read_model, write_model
from gpssignal.experiment.parallel import BACKENDS
from gpssignal.model.io import read_scenario

#: Commands that run many simulations, and so offer the parallel options.
MANY_RUNS = ("history", "train", "evaluate", "tune", "estimate")


def one_error_line(err: str, command: str, *words: str) -> None:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gpssignal {command}: error:"), err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a running two-worker Dask scheduler on this machine."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


# ---------------------------------------------------------------------------
# The options themselves
# ---------------------------------------------------------------------------

def test_backend_choices_are_the_librarys() -> None:
    assert BACKEND_NAMES == BACKENDS


@pytest.mark.parametrize("command", MANY_RUNS)
def test_every_many_run_command_has_the_parallel_options(command: str) -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"--workers", "--backend", "--scheduler", "-q", "--quiet"} <= options
    required = {"history": ["--out", "h", "--days", "1"], "train": ["--out", "m.json",
                                                                   "--history", "h"]}
    args = parser.parse_args([command, "x", *required.get(command, [])])
    assert args.workers is None and args.backend == "local" and args.scheduler is None


@pytest.mark.parametrize("command, extra", [
    ("history", ["--days", "1"]),
    ("train", ["--history", "h"]),
    ("evaluate", []),
    ("tune", ["--grid", "window_s=60,120"]),
])
@pytest.mark.parametrize("option, words", [
    (["--workers", "0"], ["--workers = 0", "at least 1"]),
    (["--scheduler", "tcp://127.0.0.1:1"], ["--scheduler", "only with --backend dask"]),
])
def test_bad_parallel_options_are_one_line_and_nothing_written(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_relief_toml: Path,
        command: str, extra: list[str], option: list[str], words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / ("m.json" if command == "train" else "out")
    code, stdout, err = cli(command, tiny_relief_toml, "--out", out, *extra, *option)
    assert code == 2
    one_error_line(err, command, *words)
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_unknown_backend_is_a_usage_error(cli, tiny_relief_toml: Path) -> None:
    code, _, err = cli("history", tiny_relief_toml, "--days", 1, "--out", "h",
                       "--backend", "spark")
    assert code == 2
    assert "--backend" in err and "spark" in err


def test_python_dash_m_gpssignal_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "gpssignal.cli", "history", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage: gpssignal history" in proc.stdout and "--backend" in proc.stdout


# ---------------------------------------------------------------------------
# Same files on every backend
# ---------------------------------------------------------------------------

def test_evaluate_on_dask_gives_the_same_kpi_tables_as_local(cli, tmp_path: Path,
                                                             tiny_relief_toml: Path) -> None:
    pytest.importorskip("dask.distributed")
    sc = read_scenario(tiny_relief_toml)
    from gpssignal.model.io import scenario_hash  # the model must say its scenario
    model = write_model(model_from_scenario(sc, low_fraction=0.9, provenance={
        "scenario_hash": scenario_hash(sc)}), tmp_path / "model.json")
    common = ["evaluate", tiny_relief_toml, "--model", model, "--controllers", "fixed,gps",
              "--replications", 2, "--first-seed", 5]
    code, local_out, err = cli(*common, "--backend", "local", "--workers", 1,
                               "--out", tmp_path / "local")
    assert code == 0, err
    code, dask_out, err = cli(*common, "--backend", "dask", "--workers", 2,
                              "--out", tmp_path / "dask")
    assert code == 0, err
    assert "| 1 worker(s)" in local_out and "| 2 worker(s)" in dask_out
    for name in ("kpis", "differences", "annual", "switches"):
        assert_frame_equal(pd.read_csv(tmp_path / "dask" / f"{name}.csv"),
                           pd.read_csv(tmp_path / "local" / f"{name}.csv"), obj=name)
    runs = [pd.read_csv(tmp_path / b / "runs.csv")
            for b in ("local", "dask")]
    assert_frame_equal(runs[1], runs[0])


@pytest.fixture(scope="module")
def histories(cli, tmp_path_factory: pytest.TempPathFactory, tiny_relief_toml: Path,
              scheduler: str) -> dict[str, Path]:
    """The same 2-day history, written locally and on the Dask scheduler."""
    root = tmp_path_factory.mktemp("histories")
    runs = {"local": ["--backend", "local", "--workers", 1],
            "dask": ["--backend", "dask", "--scheduler", scheduler]}
    for name, options in runs.items():
        code, _, err = cli("history", tiny_relief_toml, "--days", 2, "--penetration", 0.3,
                           "--out", root / name, "-q", *options)
        assert code == 0, err
    return {name: root / name for name in runs}


def test_history_on_dask_writes_the_same_days(histories: dict[str, Path]) -> None:
    manifests = {name: json.loads((path / "manifest.json").read_text(encoding="utf-8"))
                 for name, path in histories.items()}
    assert manifests["dask"] == manifests["local"]
    for day in manifests["local"]["days"]:
        for part in ("probes/date={}/probes.parquet", "truth/date={}/vehicles.parquet"):
            rel = part.format(day["date"])
            assert_frame_equal(pd.read_parquet(histories["dask"] / rel),
                               pd.read_parquet(histories["local"] / rel), obj=rel)
    # Nothing left beside the output by the workers.
    assert sorted(p.name for p in histories["local"].parent.iterdir()) == ["dask", "local"]


def test_train_on_dask_finds_the_same_model(cli, tmp_path: Path, tiny_relief_toml: Path,
                                            histories: dict[str, Path], scheduler: str) -> None:
    runs = {"local": ["--backend", "local", "--workers", 1],
            "dask": ["--backend", "dask", "--scheduler", scheduler]}
    for name, options in runs.items():
        code, _, err = cli("train", tiny_relief_toml, "--history", histories["local"],
                           "--out", tmp_path / f"{name}.json", "--candidates", 2,
                           "--search-seed", 9, "-q", *options)
        assert code == 0, err
    assert_frame_equal(pd.read_csv(tmp_path / "dask.search.csv"),
                       pd.read_csv(tmp_path / "local.search.csv"))
    local, dask = read_model(tmp_path / "local.json"), read_model(tmp_path / "dask.json")
    assert dask.stretches == local.stretches
    assert dask.with_params(provenance={}) == local.with_params(provenance={})
