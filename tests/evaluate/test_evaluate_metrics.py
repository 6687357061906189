"""KPI tables of one run (evaluate/metrics.py) against their written definitions.

The KPIs are computed on numpy columns; here they are recomputed from the
vehicle table with pandas, as docs/definitions.md states them, and the
evaluation's shortcut (:func:`replication_record`) must give exactly what
the tables give. Exact equality throughout: the same numbers summed in the
same order must give the same bits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.evaluate.metrics import (
    approach_table,
    movement_table,
    replication_kpis,
    replication_record,
    run_tables,
    summary_table,
)
from gpssignal.experiment.run import run_scenario
from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import MOVEMENTS
from gpssignal.sim.engine import SimResult

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["tiny.toml", "vallensbaek.toml"])
def result(request: pytest.FixtureRequest) -> SimResult:
    """One day of tiny (cars only) and of the default scenario (buses, cyclists, pedestrians)."""
    sc = read_scenario(ROOT / "scenarios" / request.param)
    return run_scenario(sc, "fixed", seed=2, record_trajectories=False)[0]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_replication_record_gives_what_the_tables_give(result: SimResult) -> None:
    tables = run_tables(result, routes=False)
    kpis, small = replication_record(result)
    expected = replication_kpis(result, tables)
    assert list(kpis) == list(expected)
    assert all(_same(kpis[k], expected[k]) for k in kpis), (kpis, expected)
    assert set(small) == {"intervals", "approaches", "movements", "switches"}
    for name, table in small.items():
        assert_frame_equal(table, tables[name], check_exact=True)


def test_summary_kpis_follow_their_definitions(result: SimResult) -> None:
    """Period KPIs recomputed from the vehicle table with pandas."""
    veh = run_tables(result, routes=False)["vehicles"]
    summ = summary_table(result, veh).set_index("kpi")["period"]
    t1 = result.scenario.duration_s
    motor = veh[veh["mode"] != "bicycle"]
    arriving = motor[(motor["arrival_s"] >= 0) & (motor["arrival_s"] < t1)]
    done = arriving[arriving["completed"]]
    assert summ["vehicles_arrived"] == len(arriving)
    assert summ["vehicles_completed"] == len(done)
    assert summ["mean_time_loss_s"] == done["time_loss_s"].mean()
    assert summ["total_time_loss_veh_h"] == done["time_loss_s"].sum() / 3600.0
    assert summ["stops_per_veh"] == done["stops"].mean()
    assert summ["co2_kg"] == arriving["co2_g"].sum() / 1000.0
    assert summ["fuel_l"] == arriving["fuel_l"].sum()
    every = veh[(veh["arrival_s"] >= 0) & (veh["arrival_s"] < t1) & veh["completed"]]
    person_h = (every["time_loss_s"] * every["occupancy"]).sum() / 3600.0
    peds = result.pedestrians
    if peds is not None:
        delay = peds["delay_s"][(peds["arrival_s"] >= 0) & (peds["arrival_s"] < t1)]
        person_h += np.nansum(delay) / 3600.0
    # Summed in another order than the metric (by group): a few ulps [person·h].
    assert summ["total_time_loss_person_h"] == pytest.approx(person_h, rel=1e-12)
    if (veh["mode"] == "bicycle").any():
        bikes = veh[(veh["mode"] == "bicycle") & (veh["arrival_s"] < t1)]
        assert summ["cyclists_arrived"] == len(bikes)
        assert summ["cyclist_mean_time_loss_s"] == bikes.loc[bikes["completed"],
                                                             "time_loss_s"].mean()


def test_approach_and_movement_tables_count_every_passage(result: SimResult) -> None:
    p = pd.DataFrame(result.passages)
    mv = movement_table(result)
    names = result.network.link_ids
    expect = p.groupby(["link", "movement"]).agg(
        vehicles=("vid", "size"), control_delay_s=("control_delay_s", "mean")).reset_index()
    assert mv["approach_link"].tolist() == [names[k] for k in expect["link"]]
    assert mv["movement"].tolist() == [MOVEMENTS[m] for m in expect["movement"]]
    assert mv["vehicles"].tolist() == expect["vehicles"].tolist()
    # pandas' groupby mean sums in its own order: a few ulps [s].
    np.testing.assert_allclose(mv["control_delay_s"], expect["control_delay_s"], rtol=1e-12)
    ap = approach_table(result)
    assert ap["crossings"].sum() == len(p)
    in_period = result.queue_t_s <= result.scenario.duration_s
    lane_link = result.network.lane_link[result.queue_lanes]
    for row in ap.itertuples():
        cols = np.flatnonzero(lane_link == names.index(row.approach_link))
        q = result.queue_m[in_period][:, cols].max(axis=1)
        assert row.queue_mean_m == q.mean()
        assert row.queue_max_m == q.max()
        assert row.queue_p95_m == np.percentile(q, 95)
