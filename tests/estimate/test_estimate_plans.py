"""The existing plan from a program file (column ``program_file``, docs/estimate.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpssignal.estimate import build_scenario, read_junctions, read_template
from gpssignal.estimate.capacity import capacity_check
from gpssignal.model.signals import greens_at_zero
from tests.estimate.lists import CROSS, HEADER

TEMPLATE = read_template()
#: A plan with a late release of S (it keeps green 4 s after N ends) and a
#: wrapping cycle: the kind of plan a two-phase split cannot describe.
PLAN = "cycle_s = 60\n[greens]\nN = [0, 30]\nS = [0, 34]\nE = [40, 54]\nW = [40, 54]\n"


def _list(tmp_path: Path, *rows: tuple[str, str]) -> Path:
    """A junction list with ``program_file`` cells, each ``(row, cell)``."""
    p = tmp_path / "j.csv"
    p.write_text(HEADER + ",program_file\n" + "".join(f"{r},{c}\n" for r, c in rows),
                 encoding="utf-8")
    return p


def test_a_plan_file_is_the_normal_program_and_its_clearances_the_intergreens(
        tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "cross.toml").write_text(PLAN, encoding="utf-8")
    # cycle_s may be left empty: the file gives it.
    (spec,), errors = read_junctions(_list(tmp_path, (CROSS.replace(",60,07:00", ",,07:00"),
                                                      "plans/cross.toml")), TEMPLATE)
    assert errors == [] and spec.cycle_s == 60 and spec.plan_label == (
        "program file plans/cross.toml")
    sc, text = build_scenario(spec, TEMPLATE)
    j = sc.junctions[0]
    normal, peak = j.program("normal"), j.program("peak")
    # Turned, not changed: every green keeps its length, and the gaps between
    # conflicting groups (N end 30 -> E start 40, S end 34 -> E 40) are the intergreens.
    assert {g: normal.green_duration_s(g) for g in "NESW"} == {"N": 30, "S": 34, "E": 14,
                                                               "W": 14}
    assert j.intergreen_s[("N", "E")] == 10 and j.intergreen_s[("S", "W")] == 6
    assert j.intergreen_s[("E", "N")] == 6 and ("N", "S") not in j.intergreen_s
    # The relief program gives the monitored arm's axis (S: N-S) the template's 6 s.
    assert peak.green_duration_s("S") == 40 and peak.green_duration_s("E") == 8
    assert greens_at_zero(normal) == greens_at_zero(peak) == {"N", "S"}
    assert "the current plan from plans/cross.toml" in text


def test_a_generated_scenario_as_program_file_gives_the_same_programs(tmp_path: Path) -> None:
    (plain,), _ = read_junctions(_list(tmp_path, (CROSS, "")), TEMPLATE)
    sc0, text = build_scenario(plain, TEMPLATE)
    (tmp_path / "cross.toml").write_text(text, encoding="utf-8")
    (spec,), errors = read_junctions(_list(tmp_path, (CROSS, "cross.toml")), TEMPLATE)
    assert errors == []
    sc, _ = build_scenario(spec, TEMPLATE)
    for name in ("normal", "peak"):
        assert sc.junctions[0].program(name) == sc0.junctions[0].program(name)
    assert sc.junctions[0].intergreen_s == sc0.junctions[0].intergreen_s


def test_the_capacity_check_sees_the_plan_of_the_file(tmp_path: Path) -> None:
    # E-W gets 8 s of green in 60 s: the E approach's 190 veh/h on one lane is
    # 190 / (1,850 x 8/60) = 0.77 before the busy-day factor.
    (tmp_path / "p.toml").write_text(PLAN.replace("[40, 54]", "[48, 56]"), encoding="utf-8")
    (spec,), errors = read_junctions(_list(tmp_path, (CROSS, "p.toml")), TEMPLATE)
    assert errors == []
    sc, _ = build_scenario(spec, TEMPLATE)
    c = capacity_check(sc, float(TEMPLATE["saturation_flow_vphpl"]),
                       float(TEMPLATE["busy_day_factor"]), float(TEMPLATE["undersaturated_x"]))
    assert c.existing_x == pytest.approx(190 * 1.05 * float(TEMPLATE["busy_day_factor"])
                                         / (1850 * 8 / 60), rel=1e-9)


@pytest.mark.parametrize("text, reason", [
    (None, "no such file"),
    ("cycle_s = 60\ngreen = 3\n", "expected cycle_s = ... and a [greens] table"),
    (PLAN.replace("W = [40, 54]", 'W = [40, "x"]'), "greens.W = [40, 'x']: must be"),
    (PLAN.replace("W = [40, 54]\n", ""), "greens.W: missing (arm W has an approach)"),
    (PLAN.replace("E = [40, 54]", "E = [25, 50]"), "conflicting groups green together"),
    (PLAN.replace("[40, 54]", "[32, 54]"), "2 s from the end of N's green to the start of "
     "E's; it must be 4-20 s"),
    (PLAN.replace("N = [0, 30]", "N = [0, 3]"), "shorter than the minimum green (6 s)"),
    (PLAN.replace("[greens]", "[greens]\nX = [1, 2]"), "greens.X: groups must be named"),
    ("cycle_s = 60\n[greens\n", "TOML syntax"),
])
def test_a_bad_program_file_names_row_column_and_value(tmp_path: Path, text: str | None,
                                                       reason: str) -> None:
    if text is not None:
        (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    specs, (error,) = read_junctions(_list(tmp_path, (CROSS, "p.toml")), TEMPLATE)
    assert specs == []
    assert str(error).startswith("row 1 (Cross): program_file = 'p.toml': ")
    assert reason in str(error)


def test_a_cycle_that_differs_from_the_file_or_greens_beside_it_are_refused(
        tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PLAN, encoding="utf-8")
    p = tmp_path / "j.csv"
    p.write_text(HEADER + ",green_ns_s,green_ew_s,program_file\n"
                 + CROSS.replace(",60,07:00", ",70,07:00") + ",,,p.toml\n"
                 + CROSS.replace("Cross", "Other") + ",30,18,p.toml\n", encoding="utf-8")
    specs, errors = read_junctions(p, TEMPLATE)
    assert specs == []
    assert "cycle_s = '70': the program file 'p.toml' has cycle_s = 60" in str(errors[0])
    assert "program_file = 'p.toml': give the current plan either" in str(errors[1])
