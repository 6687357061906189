"""Scenario file I/O: ``parse_scenario(dump_scenario(s)) == s`` and the scenario hash.

The property test builds random *valid* one-junction scenarios by construction
(see ``scenarios`` in conftest.py): its signal programs respect every rule of
:mod:`gpssignal.model.signals`, so a rejection by the validator is a finding,
not a filtered example.
"""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpssignal.errors import ScenarioError
from gpssignal.model import (
    Driver,
    Scenario,
    SignalTiming,
    dump_scenario,
    format_clock,
    parse_clock,
    parse_scenario,
    read_scenario,
    scenario_hash,
    scenario_to_dict,
)

# ---------------------------------------------------------------------------
# tiny.toml
# ---------------------------------------------------------------------------


def test_tiny_round_trip(tiny: Scenario) -> None:
    again = parse_scenario(dump_scenario(tiny))
    assert again == tiny
    assert scenario_hash(again) == scenario_hash(tiny)


def test_tiny_dump_is_a_fixed_point(tiny: Scenario) -> None:
    text = dump_scenario(tiny)
    assert dump_scenario(parse_scenario(text)) == text


def test_tiny_values(tiny: Scenario) -> None:
    """Spot checks that parsing maps the file's fields to the right attributes."""
    assert tiny.start_clock_s == 7 * 3600
    assert tiny.peak_clock_s == (7 * 3600, 7 * 3600 + 900)
    assert tiny.duration_s == 900 and tiny.drain_s == 300 and tiny.step_s == 0.5
    j = tiny.junction("J1")
    assert j.groups == ("A", "B")
    assert j.intergreen_s == {("A", "B"): 5, ("B", "A"): 6}
    assert j.program("peak").greens == {"A": (51, 34), "B": (39, 45)}
    assert j.timing == SignalTiming(amber_s=4, red_amber_s=2, min_green_s=6)
    assert tiny.link("W_in").to_arm == "J1.W" and tiny.link("E_out").from_arm == "J1.E"
    assert [(e.at_clock_s, e.program) for e in tiny.schedule] == [
        (25200.0, "normal"), (25500.0, "peak")]
    assert tiny.stretches[0].end_m == 400
    assert tiny.driver == Driver()  # no [driver] table: defaults


def test_hash_ignores_comments_and_layout(tiny: Scenario, tiny_text: str) -> None:
    reformatted = "\n".join(line.split("#")[0].rstrip() for line in tiny_text.splitlines())
    assert scenario_hash(parse_scenario(reformatted)) == scenario_hash(tiny)


def test_hash_changes_with_any_value(tiny: Scenario) -> None:
    h = scenario_hash(tiny)
    assert len(h) == 16 and all(c in string.hexdigits for c in h)
    assert scenario_hash(dataclasses.replace(tiny, seed=2)) != h
    assert scenario_hash(dataclasses.replace(tiny, description="other")) != h
    link = dataclasses.replace(tiny.links[0], length_m=401)
    assert scenario_hash(dataclasses.replace(tiny, links=(link, *tiny.links[1:]))) != h


def test_read_scenario_missing_file_names_the_path(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match="scenario file") as exc:
        read_scenario(missing)
    assert "nope.toml" in str(exc.value)


def test_read_scenario_not_utf8(tmp_path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("name = 'Vallensbæk'".encode("latin-1"))
    with pytest.raises(ScenarioError, match="not UTF-8"):
        read_scenario(bad)


def test_demand_csv_file_relative_to_scenario(tmp_path, tiny_variant) -> None:
    text = tiny_variant(
        ('  { link = "S_in", movement = "through", flow_vph = [200] },\n', ""),
        ("interval_s = 900\n", 'interval_s = 900\nfile = "demand.csv"\n'))
    (tmp_path / "demand.csv").write_text("link,movement,07:00\n# comment\nS_in,through,250\n")
    (tmp_path / "s.toml").write_text(text)
    s = read_scenario(tmp_path / "s.toml")
    assert {(f.link, f.movement): f.flow_vph for f in s.demand.flows} == {
        ("W_in", "through"): (600,), ("S_in", "through"): (250.0,)}
    # Dumping inlines the CSV demand; the result reads back without the file.
    assert parse_scenario(dump_scenario(s)) == s


# ---------------------------------------------------------------------------
# Clock times
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:00", 0.0), ("07:05", 25500.0), ("07:05:09", 25509.0), ("23:59:59", 86399.0),
    ("24:00", 86400.0),
])
def test_parse_clock(text: str, seconds: float) -> None:
    assert parse_clock(text, "f") == seconds


@pytest.mark.parametrize("seconds", [0, 60, 25509, 86399, 86400])
def test_format_clock_round_trip(seconds: int) -> None:
    assert parse_clock(format_clock(seconds), "f") == seconds


def test_format_clock_whole_minutes_short() -> None:
    assert format_clock(25500) == "07:05"
    assert format_clock(25509) == "07:05:09"


def test_fractional_start_clock_is_rejected(tiny: Scenario) -> None:
    # Clock times are whole seconds in files ("HH:MM:SS"), so the model refuses
    # fractions rather than letting dump_scenario round them silently.
    with pytest.raises(ScenarioError, match=r"scenario.start = 25200.5"):
        dataclasses.replace(tiny, start_clock_s=25200.5, peak_clock_s=None)


def test_period_past_midnight_is_rejected(tiny: Scenario) -> None:
    # A period running past 24:00 could not be written back as clock times.
    start = 23 * 3600 + 1800
    with pytest.raises(ScenarioError, match=r"scenario.duration_s = 3600.*midnight"):
        dataclasses.replace(
            tiny, start_clock_s=start, duration_s=3600, peak_clock_s=None,
            schedule=(), demand=dataclasses.replace(tiny.demand, interval_s=3600))


# ---------------------------------------------------------------------------
# Random valid scenarios (strategies in conftest.py)
# ---------------------------------------------------------------------------

@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_scenario_round_trip(scenario_strategy, data) -> None:
    s = data.draw(scenario_strategy, label="scenario")
    text = dump_scenario(s)
    again = parse_scenario(text)
    assert again == s
    assert scenario_hash(again) == scenario_hash(s)
    assert scenario_to_dict(again) == scenario_to_dict(s)
    assert dump_scenario(again) == text


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_programs_keep_the_synchronisation_rule(junction_strategy, data) -> None:
    """Guards the strategy itself: every program has the same green set at
    second 0, and it is exactly the first group."""
    j = data.draw(junction_strategy, label="junction")
    from gpssignal.model.signals import greens_at_zero

    assert {greens_at_zero(p) for p in j.programs} == {frozenset({j.groups[0]})}
