"""Paired evaluation (gpssignal.experiment.evaluation) and the `evaluate` command.

The scenario is ``scenarios/tiny.toml`` (15 min) with ``relief_program =
"peak"`` so the GPS controller has something to switch to; its model is the
untrained one of :func:`model_from_scenario` (thresholds from the limit),
which is enough to exercise switching without a training run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.control.gps import model_from_scenario
from gpssignal.errors import ScenarioError
from gpssignal.evaluate.statistics import mean_ci
from gpssignal.experiment.evaluation import check_model, evaluate_controllers
from gpssignal.experiment.parallel import LocalBackend
from gpssignal.model.io import read_scenario, scenario_hash
from gpssignal.model.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
SEEDS = [11, 12, 13]
#: tiny.toml's default program fixed all period, and its existing plan (the
#: time-of-day schedule: no [evaluation] table), the baseline of comparisons.
FIXED, BASE = "fixed:normal", "tod"


@pytest.fixture(scope="module")
def evaluations(tiny_relief: Scenario):
    tiny = tiny_relief
    model = model_from_scenario(tiny, low_fraction=0.9)
    one = evaluate_controllers(tiny, ["fixed", "tod", "gps"], SEEDS, model=model)
    two = evaluate_controllers(tiny, ["fixed", "tod", "gps"], SEEDS, model=model,
                               backend=LocalBackend(2))
    return one, two


def test_results_do_not_depend_on_the_number_of_workers(evaluations) -> None:
    one, two = evaluations
    assert_frame_equal(one.runs(), two.runs())  # runs() holds no wall time: byte-identical
    assert_frame_equal(one.kpi_table(), two.kpi_table())
    assert_frame_equal(one.difference_table(), two.difference_table())
    assert_frame_equal(one.switches(), two.switches())


def test_tables_over_days_stack_the_labelled_per_day_tables(evaluations) -> None:
    # The per-day tables are stacked once, labels added after: the same frame,
    # dtypes included, as labelling a copy of each day's table first.
    ev = evaluations[0]
    reps = ev.replications

    def labelled(name: str, **labels) -> pd.DataFrame:
        frames = []
        for r in reps:
            if not len(getattr(r, name)):   # days without a switch add no rows
                continue
            df = getattr(r, name).copy()
            for k, (col, attr) in enumerate(labels.items()):
                df.insert(k, col, getattr(r, attr))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    allr = labelled("intervals", controller="controller", seed="seed")
    num = [c for c in allr.columns if c not in ("controller", "seed", "interval_start")
           and pd.api.types.is_numeric_dtype(allr[c])]
    want = allr.groupby(["controller", "t0_s", "interval_start"], sort=False)[num].mean() \
        .drop(columns=["t0_s"]).reset_index()
    assert_frame_equal(ev.interval_means(), want)
    allr = labelled("approaches", controller="controller")
    num = [c for c in allr.columns if pd.api.types.is_numeric_dtype(allr[c])]
    assert_frame_equal(ev.approach_means(), allr.groupby(
        ["controller", "junction", "approach_link"], sort=False)[num].mean().reset_index())
    sw = labelled("switches", controller="controller", seed="seed")
    assert len(sw) > 0
    assert_frame_equal(ev.switches(), sw[ev.switches().columns].reset_index(drop=True))


def test_every_controller_sees_the_same_demand_each_day(evaluations) -> None:
    runs = evaluations[0].runs()
    per_day = runs.pivot(index="seed", columns="controller", values="vehicles_arrived")
    assert (per_day.nunique(axis=1) == 1).all()
    # ... and the days differ from each other (otherwise the check above is empty).
    assert per_day[FIXED].nunique() > 1


def test_paired_differences_use_matching_days(evaluations) -> None:
    ev = evaluations[0]
    runs = ev.runs().set_index(["controller", "seed"])
    diff = ev.difference_table()
    for kpi in ("mean_time_loss_s", "co2_kg", "stretch_speed_peak_kmh"):
        d = np.array([runs.loc[("gps", s), kpi] - runs.loc[(BASE, s), kpi] for s in SEEDS])
        iv = mean_ci(d)
        row = diff[(diff["kpi"] == kpi) & (diff["controller"] == "gps")
                   & (diff["baseline"] == BASE)].iloc[0]
        # Same numbers computed two ways: only float rounding may differ.
        assert row["difference"] == pytest.approx(iv.mean, rel=1e-12, abs=1e-12)
        assert row["ci95_high"] == pytest.approx(iv.high, rel=1e-12, abs=1e-12)
        assert row["n"] == len(SEEDS)


def test_annual_saving_is_the_paired_saving_times_working_days(evaluations, tiny_relief) -> None:
    tiny = tiny_relief
    ev = evaluations[0]
    runs = ev.runs().set_index(["controller", "seed"])
    an = ev.annual_table()
    row = an[(an["controller"] == "gps") & (an["baseline"] == BASE)
             & (an["quantity"] == "co2_kg")].iloc[0]
    saving_kg = np.mean([runs.loc[(BASE, s), "co2_kg"] - runs.loc[("gps", s), "co2_kg"]
                         for s in SEEDS])
    expected_t = saving_kg * tiny.working_days_per_year / 1000.0
    assert row["saving_per_year"] == pytest.approx(expected_t, rel=1e-12, abs=1e-12)
    assert row["unit"] == "t CO2/year"
    assert str(tiny.working_days_per_year) in row["counted"]


def test_the_gps_controller_switched_and_fixed_never_did(evaluations) -> None:
    runs = evaluations[0].runs()
    assert (runs.loc[runs["controller"] == FIXED, "switches"] == 0).all()
    assert runs.loc[runs["controller"] == "gps", "switches"].sum() > 0


def test_model_for_another_scenario_or_on_training_days_is_refused(tiny_relief: Scenario
                                                                  ) -> None:
    tiny = tiny_relief
    model = model_from_scenario(tiny)
    other = model.with_params(provenance={"scenario_hash": "0" * 16})
    with pytest.raises(ScenarioError, match="trained for scenario hash"):
        check_model(tiny, other, SEEDS)
    seen = model.with_params(provenance={"scenario_hash": scenario_hash(tiny),
                                         "training_seeds": [12]})
    with pytest.raises(ScenarioError, match=r"evaluation days \[12\]"):
        check_model(tiny, seen, SEEDS)
    with pytest.raises(ScenarioError, match="needs a model"):
        evaluate_controllers(tiny, ["fixed", "gps"], SEEDS, model=None)


@pytest.mark.parametrize("args, field", [
    (["--controllers", "fixed,magic"], "--controllers"),
    (["--replications", "0"], "--replications"),
    (["--workers", "0"], "--workers"),
    (["--model", "m.json", "--controllers", "fixed,tod"], "--model"),
])
def test_bad_arguments_give_one_line_and_exit_2(cli, tmp_path: Path, monkeypatch, args, field
                                                ) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = cli("evaluate", str(TINY), "--out", str(tmp_path / "ev"), *args)
    assert code == 2
    assert err.count("\n") == 1 and field in err and "Traceback" not in err
    assert not (tmp_path / "ev").exists()
    assert list(tmp_path.iterdir()) == []


def test_evaluate_command_writes_report_and_tables(cli, tmp_path: Path, tiny_relief_toml: Path
                                                    ) -> None:
    scen = tiny_relief_toml
    model = tmp_path / "model.json"
    from gpssignal.control.io import write_model
    sc = read_scenario(scen)
    from gpssignal.model.io import scenario_hash  # the model must say its scenario
    write_model(model_from_scenario(sc, low_fraction=0.9, provenance={
        "scenario_hash": scenario_hash(sc)}), model)
    out = tmp_path / "ev"
    code, stdout, err = cli("evaluate", str(scen), "--model", str(model),
                            "--replications", "2", "--workers", "1", "--out", str(out),
                            "--first-seed", "5")
    assert code == 0, err
    for name in ("report.html", "report.md", "speed.png", "time_loss.png", "queues.png",
                 "time_space.png", "co2.png", "purdue.png", "kpis.csv", "differences.csv",
                 "annual.csv", "runs.csv", "intervals.csv", "approaches.csv", "movements.csv",
                 "switches.csv",
                 "capture.csv", "day_types.csv", "meta.json"):
        assert (out / name).is_file(), name
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["seed"].unique()) == [5, 6]
    # By default every program fixed, the clock plan, GPS and the hindsight bound.
    assert set(runs["controller"]) == {"fixed:normal", "fixed:peak", "tod", "gps", "oracle"}
    assert "report.html" in stdout and "mean_time_loss_s" in stdout
    html = (out / "report.html").read_text(encoding="utf-8")
    # Self-contained: the only sources are embedded images, nothing fetched.
    assert "http://" not in html and "https://" not in html
    assert html.count('src="data:image/png;base64,') == 6
    assert "<script" not in html and "<link" not in html
    # tiny.toml declares no published results: no pilot figures in its report.
    assert "Published" not in html and "32 → 38" not in html and "−21 %" not in html
    assert "The answer" in html and "hindsight bound" in html
