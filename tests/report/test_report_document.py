"""The evaluation report (templates): human labels, rounded values, per-movement v/c and LOS,
published figures only for the scenario that declares them."""

from __future__ import annotations

import dataclasses

import pytest

from gpssignal.estimate.capacity import SATURATION_FLOW_VPHPL
from gpssignal.experiment.evaluation import Evaluation, evaluate_controllers
from gpssignal.model.scenario import PublishedResult, Scenario
from gpssignal.report.document import approach_table, build_report, movement_table


@pytest.fixture(scope="module")
def evaluation(tiny_relief: Scenario) -> Evaluation:
    # Two fixed arms on two days: seconds, enough for every table of the report.
    return evaluate_controllers(tiny_relief, ["fixed:normal", "fixed:peak"], [1, 2])


def test_movement_v_c_is_flow_over_saturation_flow_times_green_share(
        tiny_relief: Scenario) -> None:
    mv = movement_table(tiny_relief).set_index("approach")
    # tiny.toml: W_in (group A) 600 veh/h at most, green 40 of 60 s under normal and 43 under
    # peak; S_in (group B) 200 veh/h, green 8 and 6 s. One lane each. Exact arithmetic.
    assert mv.loc["W_in", "v/c, normal"] == f"{600 / (SATURATION_FLOW_VPHPL * 40 / 60):.2f}"
    assert mv.loc["W_in", "v/c, peak"] == f"{600 / (SATURATION_FLOW_VPHPL * 43 / 60):.2f}"
    assert mv.loc["S_in", "v/c, peak"] == f"{200 / (SATURATION_FLOW_VPHPL * 6 / 60):.2f}"
    assert mv.loc["S_in", "lanes"] == 1 and mv.loc["S_in", "movement"] == "through"


def test_approach_table_gives_delay_los_and_queue_per_controller(
        evaluation: Evaluation) -> None:
    at = approach_table(evaluation).set_index("approach")
    am = evaluation.approach_means()
    row = am[(am["controller"] == "fixed:peak") & (am["approach_link"] == "S_in")].iloc[0]
    cell = at.loc["S_in", "peak fixed: delay [s/veh] (LOS)"]
    assert cell.startswith(f"{row['control_delay_s']:.0f} (") and cell.endswith(")")
    assert at.loc["S_in", "peak fixed: 95 % queue [m]"] == f"{row['queue_p95_m']:.0f}"


def test_report_is_rendered_from_templates_with_human_labels(evaluation: Evaluation) -> None:
    files = build_report(evaluation)
    page, md = files["report.html"].decode(), files["report.md"].decode()
    for text in (page, md):
        assert "Per movement: demand and v/c" in text
        assert "Per approach: control delay, level of service and 95 % queue" in text
        assert "time loss per vehicle" in text
    # The KPI keys appear only in the definitions table's key column, not as labels.
    assert page.count(">mean_time_loss_s<") == 1 and "<td>mean_time_loss_s</td>" in page
    assert '<td class="num">' in page and "<th>v/c, normal</th>" in page
    # One timing diagram per program, drawn in HTML (no image), listed in Markdown.
    assert page.count('<table class="timing">') == 2 and "J1: peak (relief)" in md
    assert "Published" not in page and "Published" not in md


def test_published_figures_appear_only_where_the_scenario_declares_them(
        evaluation: Evaluation) -> None:
    pub = PublishedResult(quantity="waste time, morning rush", value="-21 %",
                          source="docs/references.md#vallensbaek-pilot")
    declared = dataclasses.replace(evaluation, scenario=dataclasses.replace(
        evaluation.scenario, published=(pub,)))
    page = build_report(declared)["report.html"].decode()
    assert "Published results of this junction" in page and "-21 %" in page
    assert "-21 %" not in build_report(evaluation)["report.html"].decode()


def test_timing_diagram_segments_cover_the_cycle_in_state_order(tiny_relief: Scenario) -> None:
    from gpssignal.report.pages import timing_diagrams

    (normal, _peak) = timing_diagrams(tiny_relief)
    assert normal["title"] == "J1: normal (default), cycle 60 s, offset 0 s"
    rows = {r["group"]: r for r in normal["rows"]}
    # tiny.toml normal: B green 36-44 s; red-amber 2 s before, amber 4 s after.
    assert [s["text"] for s in rows["B"]["segments"]] == [
        "red 0–34 s", "red-amber 34–36 s", "green 36–44 s", "amber 44–48 s", "red 48–60 s"]
    for r in normal["rows"]:   # the bars fill the cycle (widths rounded to 0.001 %)
        assert abs(sum(float(s["width_pct"]) for s in r["segments"]) - 100) < 0.01
    # A wraps over the cycle end (50 -> 30): green at both ends of the bar.
    assert rows["A"]["segments"][0]["state"] == rows["A"]["segments"][-1]["state"] == "green"
