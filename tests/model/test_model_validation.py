"""Bad input: every ScenarioError names the field and the bad value.

Bad variants are tiny.toml with one or more text edits (each must match exactly
once, see ``tiny_variant`` in conftest.py) or tiny's dataclasses changed with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses

import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model import (
    Arm,
    Demand,
    DemandFlow,
    Lane,
    Link,
    Program,
    Scenario,
    ScheduleEntry,
    SignalTiming,
    Stretch,
    VehicleClass,
    parse_scenario,
)

NORMAL_GREENS = "greens = { A = [50, 30], B = [36, 44] }"
PEAK_GREENS = "greens = { A = [51, 34], B = [39, 45] }"
W_IN_LANE = 'lane = [ { movements = ["through"], group = "A" } ]'
S_IN_LANE = 'lane = [ { movements = ["through"], group = "B" } ]'
W_FLOW = '{ link = "W_in", movement = "through", flow_vph = [600] }'
S_FLOW = '{ link = "S_in", movement = "through", flow_vph = [200] }'
N_OUT_BLOCK = '''[[link]]
id = "N_out"
name = "Side road northbound, exit"
from = "J1.N"
length_m = 200
speed_limit_kmh = 50
lane = [ { movements = [] } ]
'''

# (id, edits, substrings the message must contain)
TEXT_CASES = [
    ("negative_flow", [("flow_vph = [600]", "flow_vph = [-600]")],
     ["demand.flow[W_in.through].flow_vph[0]", "-600", ">= 0"]),
    ("nan_flow", [("flow_vph = [600]", "flow_vph = [nan]")],
     ["demand.flow[W_in.through].flow_vph[0]", "nan"]),
    ("too_many_flow_intervals", [("flow_vph = [200]", "flow_vph = [200, 150]")],
     ["demand.flow[S_in.through].flow_vph", "2 values", "needs 1 intervals"]),
    ("too_few_flow_intervals", [("duration_s = 900 ", "duration_s = 1800 ")],
     ["demand.flow[W_in.through].flow_vph", "1 values", "needs 2 intervals"]),
    ("conflicting_greens_overlap",
     [(NORMAL_GREENS, "greens = { A = [50, 30], B = [20, 44] }")],
     ["junction[J1].program[normal]", "conflicting groups A and B both green at t=20"]),
    ("intergreen_shorter_than_matrix", [("A = { B = 5 }", "A = { B = 10 }")],
     ["junction[J1].program[normal]", "intergreen A->B 6 s", "< 10 s"]),
    ("green_shorter_than_min_green",
     [(NORMAL_GREENS, "greens = { A = [50, 30], B = [36, 40] }")],
     ["junction[J1].program[normal].greens.B = [36, 40]", "green 4 s",
      "min green 6 s"]),
    ("cycle_shorter_than_greens",
     [('name = "normal"\ncycle_s = 60', 'name = "normal"\ncycle_s = 40'),
      (NORMAL_GREENS, "greens = { A = [0, 38], B = [10, 20] }")],
     ["junction[J1].program[normal].cycle_s = 40", "green of A (38 s)"]),
    ("amber_spans_second_0",
     [(NORMAL_GREENS, "greens = { A = [50, 58], B = [36, 44] }")],
     ["junction[J1].program[normal].greens.A = [50, 58]", "amber or red-amber spans",
      "second 0"]),
    ("red_amber_spans_second_0",
     [(NORMAL_GREENS, "greens = { A = [1, 30], B = [36, 44] }")],
     ["junction[J1].program[normal].greens.A = [1, 30]", "amber or red-amber spans",
      "second 0"]),
    ("programs_differ_at_second_0",
     [(PEAK_GREENS, "greens = { A = [5, 34], B = [39, 45] }")],
     ["junction[J1].program[peak] greens at cycle second 0 = []",
      "program normal ['A']"]),
    ("demand_movement_without_lane",
     [(W_FLOW, W_FLOW.replace('"through"', '"left"'))],
     ["demand.flow[W_in].movement = 'left'", "no lane of link W_in allows it"]),
    ("lane_unknown_group", [(W_IN_LANE, W_IN_LANE.replace('"A"', '"C"'))],
     ["link[W_in].lanes[0].group = 'C'", "no such signal group"]),
    ("intergreen_one_way_only", [("B = { A = 6 }\n", "")],
     ["junction[J1].intergreen_s.A.B = 5", "both ways", "missing B.A"]),
    ("intergreen_unknown_group", [("A = { B = 5 }", "A = { B = 5, C = 5 }")],
     ["junction[J1].intergreen_s.A.C", "'C'", "unknown signal group"]),
    ("program_unknown_group",
     [(PEAK_GREENS, "greens = { A = [51, 34], B = [39, 45], C = [1, 9] }")],
     ["junction[J1].program[peak].greens = ['C']", "unknown signal groups"]),
    ("program_missing_group", [(PEAK_GREENS, "greens = { A = [51, 34] }")],
     ["junction[J1].program[peak].greens = ['B']", "groups without green"]),
    ("shares_not_summing_to_1", [("share = 1.0", "share = 0.9")],
     ["vehicle_class.share = 0.9", "sum to 1"]),
    ("share_above_1", [("share = 1.0", "share = 1.5")],
     ["vehicle_class[car].share = 1.5", "between 0 and 1"]),
    ("stretch_end_beyond_link", [("end_m = 400", "end_m = 450")],
     ["stretch[main_eb].end_m = 450", "beyond the end of link W_in (400 m)"]),
    ("stretch_start_beyond_link", [("start_m = 100", "start_m = 400"), ("end_m = 400\n", "")],
     ["stretch[main_eb].start_m = 400", "beyond the end of link W_in"]),
    ("stretch_unknown_link", [('links = ["W_in"]', 'links = ["W_inn"]')],
     ["stretch[main_eb].links = 'W_inn'", "unknown link"]),
    ("stretch_links_not_following",
     [('links = ["W_in"]', 'links = ["W_in", "N_out"]')],
     ["stretch[main_eb].links = 'N_out'", "does not follow W_in"]),
    ("movement_to_arm_without_outgoing_link",
     [(W_IN_LANE, W_IN_LANE.replace('["through"]', '["through", "right"]'))],
     ["link[W_in].lanes.movements = 'right'", "J1.S", "no outgoing link"]),
    ("route_loop",
     [('to = "J1.S"', 'from = "J1.N"\nto = "J1.S"\nturn_shares = { through = 1.0 }'),
      (N_OUT_BLOCK, ""), (f"  {S_FLOW},\n", "")],
     ["link[S_in].turn_shares", "loop", "S_in -> S_in"]),
    ("internal_link_without_turn_shares",
     [('to = "J1.S"', 'from = "J1.N"\nto = "J1.S"'), (N_OUT_BLOCK, ""),
      (f"  {S_FLOW},\n", "")],
     ["link[S_in].turn_shares = {}", "needs turn shares"]),
    ("demand_on_internal_link",
     [('to = "J1.S"', 'from = "J1.N"\nto = "J1.S"\nturn_shares = { through = 1.0 }'),
      (N_OUT_BLOCK, "")],
     ["demand.flow.link = 'S_in'", "not an entry link"]),
    ("demand_unknown_link", [(W_FLOW, W_FLOW.replace('"W_in"', '"X_in"'))],
     ["demand.flow.link = 'X_in'", "unknown link"]),
    ("link_to_unknown_arm", [('to = "J1.S"', 'to = "J1.Q"')],
     ["link[S_in].to = 'J1.Q'", "no arm 'Q'"]),
    ("link_to_unknown_junction", [('to = "J1.S"', 'to = "J9.S"')],
     ["link[S_in].to = 'J9.S'", "unknown junction 'J9'"]),
    ("two_links_into_one_arm", [('to = "J1.S"', 'to = "J1.W"')],
     ["link[S_in].to = 'J1.W'", "already has incoming link W_in"]),
    ("schedule_unknown_program", [('program = "peak"\n', 'program = "rush"\n')],
     ["schedule.program = 'rush'", "J1"]),
    ("schedule_not_increasing", [('at = "07:05"', 'at = "06:55"')],
     ["schedule.at = [25200.0, 24900.0]", "strictly increasing"]),
    ("peak_outside_period", [('peak = ["07:00", "07:15"]', 'peak = ["07:00", "07:30"]')],
     ["scenario.peak = [25200.0, 27000.0]", "inside the simulated period"]),
    ("step_too_long", [("step_s = 0.5", "step_s = 2")], ["scenario.step_s = 2", "<= 1 s"]),
    ("wrong_type", [("length_m = 400", 'length_m = "400"')],
     ["link[W_in].length_m = '400'", "must be int/float"]),
    ("bool_is_not_a_number", [("seed = 1", "seed = true")],
     ["scenario.seed = True", "must be int"]),
    ("missing_required", [("duration_s = 900 ", "")],
     ["scenario.duration_s", "missing"]),
    ("bad_default_program", [('default_program = "normal"', 'default_program = "nrmal"')],
     ["junction[J1].default_program = 'nrmal'", "not one of ['normal', 'peak']"]),
    ("bearing_out_of_range",
     [('{ id = "N", bearing_deg = 0 }', '{ id = "N", bearing_deg = 360 }')],
     ["arm[N].bearing_deg = 360", "[0, 360)"]),
]


@pytest.mark.parametrize(("edits", "expected"), [pytest.param(e, x, id=i)
                                                 for i, e, x in TEXT_CASES])
def test_bad_toml_names_field_and_value(tiny_variant, edits, expected) -> None:
    text = tiny_variant(*edits)
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text)
    msg = str(exc.value)
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


# An unknown key anywhere is an error naming the key (a typo of an optional
# key must never fall back to the default silently).
TYPO_CASES = [
    ("top_level", ("[variability]", "[variabilty]"), ".variabilty"),
    ("scenario", ("drain_s = 300", "drian_s = 300"), "scenario.drian_s = 300"),
    ("variability", ("peak_shift_sd_s = 120", "peak_shift_s = 120"),
     "variability.peak_shift_s = 120"),
    ("driver", ("[variability]", "[driver]\nidm_delt = 4\n\n[variability]"),
     "driver.idm_delt = 4"),
    ("vehicle_class", ("min_gap_m = 2.0", "min_gap = 2.0"), "vehicle_class[car].min_gap = 2.0"),
    ("junction", ('name = "Main road x Side road"', 'nmae = "Main road x Side road"'),
     "junction[J1].nmae = 'Main road x Side road'"),
    ("timing", ("min_green_s = 6", "min_gren_s = 6"), "junction[J1].timing.min_gren_s = 6"),
    ("arm", ('{ id = "W", bearing_deg = 270 }', '{ id = "W", bearing_deg = 270, nmae = "w" }'),
     "junction[J1].arm[0].nmae = 'w'"),
    ("program", ('name = "peak"            # longer main-road green\ncycle_s = 60\noffset_s',
                 'name = "peak"\ncycle_s = 60\nofset_s'),
     "junction[J1].program[peak].ofset_s = 0"),
    ("link", ('name = "Main road eastbound, exit"',
              'name = "Main road eastbound, exit"\nspeed_limt_kmh = 30'),
     "link[E_out].speed_limt_kmh = 30"),
    ("lane", (S_IN_LANE, S_IN_LANE.replace("group =", "groups =")),
     "link[S_in].lane[0].groups = 'B'"),
    ("demand", ("interval_s = 900", "intervall_s = 900"), "demand.intervall_s = 900"),
    ("demand_flow", (S_FLOW, S_FLOW.replace(" }", ", flow_vhp = [1] }")),
     "demand.flow[1].flow_vhp = [1]"),
    ("stretch", ("start_m = 100", "start = 100"), "stretch[main_eb].start = 100"),
    ("schedule", ('program = "peak"\n', 'program = "peak"\nnote = "x"\n'),
     "schedule[1].note = 'x'"),
]


@pytest.mark.parametrize(("edit", "expected"), [pytest.param(e, x, id=i)
                                                for i, e, x in TYPO_CASES])
def test_unknown_key_is_an_error(tiny_variant, edit, expected) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(edit))
    msg = str(exc.value)
    assert expected in msg and "unknown field" in msg, msg


@pytest.mark.parametrize("value", ['"7h"', '"25:00"', '"07:60"', '"07:00:60"', '"07"',
                                   '"07:00:00:00"', '"-1:00"', '""', "700"])
def test_bad_start_clock(tiny_variant, value: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(('start = "07:00"', f"start = {value}")))
    msg = str(exc.value)
    assert "scenario.start = " in msg
    assert value.strip('"') in msg


def test_bad_schedule_clock(tiny_variant) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(('at = "07:05"', 'at = "7.05"')))
    assert "schedule[1].at = '7.05'" in str(exc.value)


def test_bad_peak_clock(tiny_variant) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(('"07:15"]', '"07:75"]')))
    assert "scenario.peak = '07:75'" in str(exc.value)


def test_start_at_midnight_end_is_rejected(tiny_variant) -> None:
    with pytest.raises(ScenarioError, match=r"scenario.start = 86400\.0"):
        parse_scenario(tiny_variant(('start = "07:00"', 'start = "24:00"')))


@pytest.mark.parametrize(("edit", "line"), [
    (("duration_s = 900 ", "duration_s = = 900 "), 9),
    (('name = "tiny"', 'name = "tiny'), 6),
    (("[variability]", "[variability"), 16),
    (("seed = 1", "seed = 1\nseed = 2"), 15),  # duplicate key
])
def test_toml_syntax_error(tiny_variant, edit, line: int) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(edit))
    msg = str(exc.value)
    assert msg.startswith("TOML syntax:")
    assert f"line {line}" in msg, msg


def test_scenario_error_is_a_value_error() -> None:
    assert issubclass(ScenarioError, ValueError)


def test_tiny_is_valid(tiny_variant) -> None:
    parse_scenario(tiny_variant())


# ---------------------------------------------------------------------------
# The same rules on the dataclasses (dataclasses.replace)
# ---------------------------------------------------------------------------


def _replace_program(s: Scenario, name: str, **changes) -> Scenario:
    j = s.junctions[0]
    progs = tuple(dataclasses.replace(p, **changes) if p.name == name else p
                  for p in j.programs)
    return dataclasses.replace(s, junctions=(dataclasses.replace(j, programs=progs),))


REPLACE_CASES = [
    ("negative_flow",
     lambda s: dataclasses.replace(s.demand.flows[0], flow_vph=(-1.0,)),
     ["demand.flow[W_in.through].flow_vph[0] = -1.0"]),
    ("infinite_flow",
     lambda s: dataclasses.replace(s.demand.flows[0], flow_vph=(float("inf"),)),
     ["demand.flow[W_in.through].flow_vph[0] = inf"]),
    ("bad_movement", lambda s: DemandFlow(link="W_in", movement="uturn", flow_vph=(1.0,)),
     ["demand.flow[W_in.uturn].movement = 'uturn'"]),
    ("duplicate_flow",
     lambda s: dataclasses.replace(s, demand=Demand(flows=s.demand.flows[:1] * 2)),
     ["demand.flow = 'W_in.through'", "listed twice"]),
    ("no_flows", lambda s: Demand(flows=()), ["demand.flow = []"]),
    ("min_green",
     lambda s: _replace_program(s, "peak", greens={"A": (51, 34), "B": (39, 43)}),
     ["junction[J1].program[peak].greens.B = [39, 43]", "min green 6 s"]),
    ("offset_not_below_cycle",
     lambda s: dataclasses.replace(s.junctions[0].programs[0], offset_s=60),
     ["program[normal].offset_s = 60", "[0, cycle_s=60)"]),
    ("window_outside_cycle",
     lambda s: Program(name="x", cycle_s=60, greens={"A": (50, 70)}),
     ["program[x].greens.A = [50, 70]", "[0, 60]"]),
    ("empty_window", lambda s: Program(name="x", cycle_s=60, greens={"A": (10, 10)}),
     ["program[x].greens.A = [10, 10]", "empty or a full cycle"]),
    ("full_cycle_not_at_zero", lambda s: Program(name="x", cycle_s=60, greens={"A": (10, 70)}),
     ["program[x].greens.A = [10, 70]"]),
    ("negative_cycle", lambda s: Program(name="x", cycle_s=-60),
     ["program[x].cycle_s = -60"]),
    ("zero_amber", lambda s: SignalTiming(amber_s=0), ["amber_s = 0"]),
    ("bearing", lambda s: Arm(id="X", bearing_deg=-10), ["arm[X].bearing_deg = -10"]),
    ("speed_factor_sd",
     lambda s: VehicleClass(name="car", share=1.0, speed_factor_mean=1.0,
                            speed_factor_sd=0.5),
     ["vehicle_class[car].speed_factor_sd = 0.5"]),
    ("shares_sum", lambda s: dataclasses.replace(s, vehicle_classes=(
        VehicleClass(name="car", share=0.7), VehicleClass(name="van", share=0.4))),
     ["vehicle_class.share = 1.1", "sum to 1"]),
    ("duplicate_class", lambda s: dataclasses.replace(s, vehicle_classes=(
        VehicleClass(name="car", share=0.5), VehicleClass(name="car", share=0.5))),
     ["vehicle_class = ['car', 'car']", "unique"]),
    ("link_too_long", lambda s: dataclasses.replace(s.links[0], length_m=25_000),
     ["link[W_in].length_m = 25000"]),
    ("exit_lane_with_movement",
     lambda s: dataclasses.replace(s.links[2], lanes=(Lane(movements=("through",)),)),
     ["link[E_out].lanes[0] = ('through',)", "leaving the network"]),
    ("lane_without_group",
     lambda s: dataclasses.replace(s.links[0], lanes=(Lane(movements=("through",)),)),
     ["link[W_in].lanes[0].group = None"]),
    ("turn_shares_sum",
     lambda s: Link(id="L", from_arm="J.A", to_arm="J.B", length_m=10, speed_limit_kmh=50,
                    lanes=(Lane(movements=("through",), group="A"),),
                    turn_shares={"through": 0.5}),
     ["link[L].turn_shares = {'through': 0.5}", "sum to 1"]),
    ("stretch_end_before_start", lambda s: Stretch(id="x", links=("W_in",), start_m=100,
                                                   end_m=50),
     ["stretch[x].end_m = 50", "start_m=100"]),
    ("stretch_end_beyond_link",
     lambda s: dataclasses.replace(s, stretches=(dataclasses.replace(s.stretches[0],
                                                                     end_m=401),)),
     ["stretch[main_eb].end_m = 401", "W_in (400 m)"]),
    ("schedule_unknown_program", lambda s: dataclasses.replace(
        s, schedule=(ScheduleEntry(at_clock_s=25200, program="night"),)),
     ["schedule.program = 'night'"]),
    ("step", lambda s: dataclasses.replace(s, step_s=1.5), ["scenario.step_s = 1.5"]),
    ("working_days", lambda s: dataclasses.replace(s, working_days_per_year=0),
     ["scenario.working_days_per_year = 0"]),
    ("negative_seed", lambda s: dataclasses.replace(s, seed=-1), ["scenario.seed = -1"]),
    ("start_after_midnight", lambda s: dataclasses.replace(s, start_clock_s=90_000),
     ["scenario.start = 90000"]),
]


@pytest.mark.parametrize(("build", "expected"), [pytest.param(b, x, id=i)
                                                 for i, b, x in REPLACE_CASES])
def test_bad_dataclass_names_field_and_value(tiny: Scenario, build, expected) -> None:
    with pytest.raises(ScenarioError) as exc:
        build(tiny)
    msg = str(exc.value)
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_boolean_flow_is_rejected(tiny_variant) -> None:
    with pytest.raises(ScenarioError, match=r"flow_vph\[0\] = True"):
        parse_scenario(tiny_variant(("flow_vph = [600]", "flow_vph = [true]")))


def test_permanent_green_needs_a_group_without_conflicts(tiny_variant) -> None:
    # [0, cycle] is a permanent green; group A conflicts with B in tiny.toml.
    text = tiny_variant(("greens = { A = [50, 30], B = [36, 44] }",
                         "greens = { A = [0, 60], B = [36, 44] }"))
    with pytest.raises(ScenarioError, match=r"greens.A = \[0, 60\].*without conflicts"):
        parse_scenario(text)


def test_non_number_turn_share_is_a_scenario_error(tiny: Scenario) -> None:
    # Used to escape as a raw TypeError from the sum of shares.
    with pytest.raises(ScenarioError, match=r"turn_shares.through = 'x'"):
        dataclasses.replace(tiny.links[0], turn_shares={"through": "x"})


def test_boolean_seed_is_rejected(tiny: Scenario) -> None:
    with pytest.raises(ScenarioError, match=r"scenario.seed = True"):
        dataclasses.replace(tiny, seed=True)
