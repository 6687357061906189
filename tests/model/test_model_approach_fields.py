"""Short lanes, give-way rules, platoon feeds and lane-change settings: valid and bad input.

Each bad value must be refused with one message naming the field and the
value (the README's promise), never accepted or turned into a traceback.
"""

from __future__ import annotations

import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model import parse_scenario
from gpssignal.model.io import dump_scenario, scenario_hash

W_IN_LANE = 'lane = [ { movements = ["through"], group = "A" } ]'
S_IN_LANE = 'lane = [ { movements = ["through"], group = "B" } ]'
#: W_in with a 60 m left-turn pocket (left from the west arm leads north).
POCKET = ('lane = [ { movements = ["through"], group = "A" }, '
          '{ movements = ["left"], group = "A", length_m = 60 } ]')
W_FLOW = '{ link = "W_in", movement = "through", flow_vph = [600] }'


def _pocket(extra: str = "") -> tuple[str, str]:
    return W_IN_LANE, POCKET + ("\n" + extra if extra else "")


def test_the_new_fields_round_trip_and_change_the_hash(tiny_variant) -> None:
    """A scenario with every new field dumps and reads back equal, with its own hash."""
    plain = parse_scenario(tiny_variant())
    text = tiny_variant(
        _pocket('give_way = [ { movement = "left", to = ["S_in.through"], critical_gap_s = 5 } ]\n'
                'upstream_signal = { cycle_s = 60, green_s = 30, offset_s = 10, '
                'distance_m = 200 }'),
        ("seed = 1", "seed = 1\n[driver]\nlc_discretionary = true\nlc_politeness = 0.3"))
    sc = parse_scenario(text)
    w_in = sc.link("W_in")
    assert w_in.lanes[1].length_m == 60 and w_in.lanes[1].start_m(w_in.length_m) == 340
    assert w_in.give_way[0].to == ("S_in.through",) and w_in.give_way[0].critical_gap_s == 5
    assert w_in.upstream_signal is not None and w_in.upstream_signal.offset_s == 10
    assert sc.driver.lc_discretionary and sc.driver.lc_politeness == 0.3
    again = parse_scenario(dump_scenario(sc))
    assert again == sc
    assert scenario_hash(again) == scenario_hash(sc) != scenario_hash(plain)


BAD = [
    ("pocket_as_long_as_the_link", [(W_IN_LANE, POCKET.replace("length_m = 60",
                                                               "length_m = 400"))],
     ["link[W_in].lanes[1].length_m = 400", "shorter than the link"]),
    ("pocket_negative", [(W_IN_LANE, POCKET.replace("length_m = 60", "length_m = -5"))],
     ["link[W_in].lanes[1].length_m = -5", "> 0"]),
    ("pocket_not_a_number", [(W_IN_LANE, POCKET.replace("length_m = 60",
                                                        'length_m = "60"'))],
     ["length_m = '60'", "must be int/float"]),
    ("only_short_lanes",
     [(W_IN_LANE, 'lane = [ { movements = ["through"], group = "A", length_m = 50 } ]')],
     ["link[W_in].lanes", "at least one lane must run the whole link"]),
    ("short_lane_between_full_lanes",
     [(W_IN_LANE, 'lane = [ { movements = ["through"], group = "A" }, '
                  '{ movements = ["through"], group = "A", length_m = 50 }, '
                  '{ movements = ["left"], group = "A" } ]')],
     ["link[W_in].lanes[1].length_m = 50", "kerb or the centre side"]),
    ("short_lanes_not_nested",
     [(W_IN_LANE, 'lane = [ { movements = ["through"], group = "A" }, '
                  '{ movements = ["through"], group = "A", length_m = 50 }, '
                  '{ movements = ["left"], group = "A", length_m = 80 } ]')],
     ["link[W_in].lanes[2].length_m = 80", "get shorter away from the full lanes"]),
    ("give_way_unknown_movement",
     [_pocket('give_way = [ { movement = "uturn", to = ["S_in.through"] } ]')],
     ["link[W_in].give_way[0].movement = 'uturn'", "must be one of"]),
    ("give_way_movement_not_on_link",
     [_pocket('give_way = [ { movement = "right", to = ["S_in.through"] } ]')],
     ["link[W_in].give_way[0].movement = 'right'", "no lane of the link carries it"]),
    ("give_way_to_unknown_link",
     [_pocket('give_way = [ { movement = "left", to = ["X_in.through"] } ]')],
     ["link[W_in].give_way[0].to = 'X_in.through'", "unknown link 'X_in'"]),
    ("give_way_to_itself",
     [_pocket('give_way = [ { movement = "left", to = ["W_in.through"] } ]')],
     ["link[W_in].give_way[0].to = 'W_in.through'", "cannot yield to itself"]),
    ("give_way_to_a_missing_movement",
     [_pocket('give_way = [ { movement = "left", to = ["S_in.left"] } ]')],
     ["link[W_in].give_way[0].to = 'S_in.left'", "no lane of S_in carries 'left'"]),
    ("give_way_to_an_exit_link",
     [_pocket('give_way = [ { movement = "left", to = ["E_out.through"] } ]')],
     ["link[W_in].give_way[0].to = 'E_out.through'", "does not lead into the junction"]),
    ("give_way_malformed_reference",
     [_pocket('give_way = [ { movement = "left", to = ["S_in"] } ]')],
     ["link[W_in].give_way[0].to = 'S_in'", "must be 'LINK.MOVEMENT'"]),
    ("give_way_empty", [_pocket('give_way = [ { movement = "left", to = [] } ]')],
     ["link[W_in].give_way[0].to = []", "at least one"]),
    ("give_way_twice_for_one_movement",
     [_pocket('give_way = [ { movement = "left", to = ["S_in.through"] }, '
              '{ movement = "left", to = ["S_in.through"] } ]')],
     ["link[W_in].give_way[1].movement = 'left'", "one give-way rule"]),
    ("critical_gap_huge",
     [_pocket('give_way = [ { movement = "left", to = ["S_in.through"], '
              'critical_gap_s = 1e6 } ]')],
     ["link[W_in].give_way[0].critical_gap_s = 1000000.0", "<= 30 s"]),
    ("give_way_unknown_key",
     [_pocket('give_way = [ { movement = "left", to = ["S_in.through"], gap = 4 } ]')],
     ["link[W_in].give_way[0].gap = 4", "unknown field"]),
    ("feed_on_a_link_between_junctions_or_exit",
     [("id = \"E_out\"", "id = \"E_out\"\nupstream_signal = { cycle_s = 60, green_s = 30, "
                         "distance_m = 0 }")],
     ["link[E_out].upstream_signal", "only an entry link"]),
    ("feed_green_longer_than_cycle",
     [_pocket("upstream_signal = { cycle_s = 60, green_s = 90, distance_m = 0 }")],
     ["link[W_in].upstream_signal.green_s = 90", "<= cycle_s = 60"]),
    ("feed_offset_outside_cycle",
     [_pocket("upstream_signal = { cycle_s = 60, green_s = 30, offset_s = 60, "
              "distance_m = 0 }")],
     ["link[W_in].upstream_signal.offset_s = 60", "[0, cycle_s=60)"]),
    ("feed_far_away",
     [_pocket("upstream_signal = { cycle_s = 60, green_s = 30, distance_m = 1e7 }")],
     ["link[W_in].upstream_signal.distance_m = 10000000.0", "<= 5000 m"]),
    ("feed_below_the_peak_demand",
     [_pocket("upstream_signal = { cycle_s = 60, green_s = 5, distance_m = 0 }")],
     ["link[W_in].upstream_signal.green_s = 5", "at most 150 veh/h",
      "peak demand 600 veh/h"]),
    ("feed_missing_field",
     [_pocket("upstream_signal = { cycle_s = 60, green_s = 30 }")],
     ["link[W_in].upstream_signal.distance_m", "missing"]),
    ("driver_politeness_out_of_range", [("seed = 1", "seed = 1\n[driver]\nlc_politeness = 2")],
     ["driver.lc_politeness = 2", "[0, 1]"]),
    ("driver_discretionary_not_bool",
     [("seed = 1", 'seed = 1\n[driver]\nlc_discretionary = "yes"')],
     ["driver.lc_discretionary = 'yes'", "must be bool"]),
    ("driver_safe_decel_beyond_emergency",
     [("seed = 1", "seed = 1\n[driver]\nlc_safe_decel_mps2 = 12")],
     ["driver.lc_safe_decel_mps2 = 12", "<= max_decel_mps2 = 9"]),
    ("driver_follow_up_zero", [("seed = 1", "seed = 1\n[driver]\nfollow_up_s = 0")],
     ["driver.follow_up_s = 0", "> 0"]),
]


@pytest.mark.parametrize(("edits", "expected"), [pytest.param(e, x, id=i) for i, e, x in BAD])
def test_bad_approach_fields_name_field_and_value(tiny_variant, edits, expected) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(tiny_variant(*edits))
    msg = str(exc.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_a_pocket_on_the_side_road_with_its_own_movement_is_valid(tiny_variant) -> None:
    """S_in gets a right-turn flare at the kerb: valid, nested outward."""
    text = tiny_variant((S_IN_LANE, 'lane = [ { movements = ["right"], group = "B", '
                                    'length_m = 30 }, { movements = ["through"], group = "B" } ]'))
    sc = parse_scenario(text)
    assert sc.link("S_in").lanes[0].length_m == 30
