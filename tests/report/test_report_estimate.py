"""The estimate report: a plain answer per junction and municipality, rounded savings, caveats."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gpssignal.estimate.run import JUNCTION_COLUMNS
from gpssignal.report.estimate import estimate_report, municipality_verdict


def _junction(row: int, name: str, saved: float, low: float, high: float, verdict: str,
              **more: object) -> dict[str, object]:
    base = {c: math.nan for c in JUNCTION_COLUMNS}
    base.update({"row": row, "name": name, "municipality": "Town", "status": "ok",
                 "junction_id": name.lower(), "verdict": verdict,
                 "time_loss_saved_veh_h_per_year": saved, "time_loss_ci95_low": low,
                 "time_loss_ci95_high": high, "co2_saved_t_per_year": saved / 100,
                 "co2_ci95_low": low / 100, "co2_ci95_high": high / 100,
                 "person_h_saved_per_year": saved * 1.3, "person_h_ci95_low": low * 1.3,
                 "person_h_ci95_high": high * 1.3, "gps_switches_per_day": 3.0,
                 "plan": "from the list", "capacity_check": "switching may help: ...",
                 "error": ""})
    base.update(more)
    return base


@pytest.fixture()
def report() -> dict[str, str]:
    jt = pd.DataFrame([
        _junction(1, "Saver", 1366.66, 1056.0, 1677.3, "saves"),
        _junction(2, "Unclear", 120.0, -300.0, 540.0, "no detectable difference",
                  gps_switches_per_day=0.0, plan="Webster split (assumed)"),
        _junction(3, "Loser", -800.0, -1200.0, -400.0, "costs"),
        {**{c: math.nan for c in JUNCTION_COLUMNS}, "row": 4, "name": "Quiet",
         "municipality": "Town", "status": "skipped", "junction_id": "quiet",
         "capacity_check": "under-saturated: highest X normal 0.55", "plan":
         "Webster split (assumed)", "error": ""},
    ], columns=JUNCTION_COLUMNS)
    mt = pd.DataFrame([{"municipality": "Town", "junctions": 3,
                        "time_loss_saved_veh_h_per_year": 686.66, "time_loss_ci95_low": 100.0,
                        "time_loss_ci95_high": 1270.0, "co2_saved_t_per_year": 6.9,
                        "co2_ci95_low": 1.0, "co2_ci95_high": 12.7}])
    files = estimate_report(jt, mt, "header")
    return {k: v.decode() for k, v in files.items() if k != "estimate.png"}


def test_the_verdict_is_worded_plainly_for_a_saving_an_unclear_and_a_costing_junction(
        report: dict[str, str]) -> None:
    page, md = report["estimate.html"], report["estimate.md"]
    assert '<td class="saves">saves</td>' in page
    assert '<td class="none">no detectable difference</td>' in page
    assert '<td class="costs">costs</td>' in page
    assert "not simulated: under-saturated, no queue for plan selection to relieve" in page
    assert ("3 junction(s) simulated: 1 save time with GPS plan selection, 1 show no "
            "detectable difference and 1 cost time") in md
    assert "1 junction(s) not simulated: under-saturated" in md
    assert "At 1 junction(s) the trained controller never switched" in md


def test_savings_are_rounded_to_their_interval_and_labelled_with_units(
        report: dict[str, str]) -> None:
    md = report["estimate.md"]
    # 1,366.66 with an interval of half-width ≈ 310: tens (docs/definitions.md).
    assert "1,370 [1,060, 1,680]" in md and "1,366.66" not in md
    assert "time loss saved [veh·h/year, 95 % CI]" in md
    assert "person-hours saved [person·h/year, 95 % CI]" in md


def test_the_caveats_name_the_assumed_plan_and_the_missing_road_users(
        report: dict[str, str]) -> None:
    md = report["estimate.md"]
    assert "The existing plan of 2 junction(s) was not given" in md
    assert "no cyclists and no pedestrian crossings" in md
    # The models' training is labelled for what it is: an upper bound.
    assert "(the same-seed search): an upper bound" in md


@pytest.mark.parametrize("low, high, verdict", [
    (100.0, 500.0, "saves"), (-100.0, 500.0, "no detectable difference"),
    (-500.0, -100.0, "costs"), (math.nan, math.nan, "no detectable difference")])
def test_municipality_verdict(low: float, high: float, verdict: str) -> None:
    assert municipality_verdict(low, high) == verdict


def test_the_movement_table_shows_v_c_delay_los_and_queue_when_given() -> None:
    jt = pd.DataFrame([_junction(1, "Saver", 1366.66, 1056.0, 1677.3, "saves")],
                      columns=JUNCTION_COLUMNS)
    mt = pd.DataFrame([{"municipality": "Town", "junctions": 1,
                        "time_loss_saved_veh_h_per_year": 1366.66, "time_loss_ci95_low": 1056.0,
                        "time_loss_ci95_high": 1677.3, "co2_saved_t_per_year": 13.7,
                        "co2_ci95_low": 10.6, "co2_ci95_high": 16.8}])
    mv = pd.DataFrame([{"row": 1, "name": "Saver", "junction_id": "saver", "approach": "S_in",
                        "movement": "through", "group": "S", "lanes": 2, "flow_vph": 735.0,
                        "vc_existing": 0.9149, "vc_relief": 0.8012,
                        "existing_delay_s": 41.6, "existing_los": "D",
                        "existing_queue_p95_m": 88.2, "gps_delay_s": 33.9, "gps_los": "C",
                        "gps_queue_p95_m": 61.0}])
    with_mv = estimate_report(jt, mt, "header", mv)
    page, md = with_mv["estimate.html"].decode(), with_mv["estimate.md"].decode()
    assert "<h2>Per junction and movement</h2>" in page
    assert "| Saver | S_in | through | 735 | 0.91 | 0.80 | 42 (D) | 88 | 34 (C) | 61 |" in md
    without = estimate_report(jt, mt, "header")["estimate.html"].decode()
    assert "Per junction and movement" not in without
