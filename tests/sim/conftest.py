"""Small scenarios built from TOML text for the simulator's verification tests."""

from __future__ import annotations

import pytest

from gpssignal.model import Scenario, parse_scenario


def one_approach_scenario(*, flow_vph: float, cycle_s: float = 60.0,
                          green: tuple[float, float] = (0.0, 30.0), lanes: int = 1,
                          duration_s: float = 3600.0, drain_s: float = 300.0,
                          speed_limit_kmh: float = 50.0, approach_m: float = 400.0,
                          time_headway_s: float = 1.1, max_accel_mps2: float = 2.0,
                          comfortable_decel_mps2: float = 2.5,
                          speed_factor_sd: float = 0.0, permanent: bool = False) -> Scenario:
    """A junction with one signalised approach (west to east), cars only.

    ``permanent=True`` makes the approach's group green all cycle (no signal).
    A second, conflicting group on an unused side approach keeps the signal
    plan realistic when ``permanent`` is false.
    """
    g0, g1 = green
    lane_rows = ",\n  ".join('{ movements = ["through"], group = "A" }' for _ in range(lanes))
    exit_rows = ",\n  ".join("{ movements = [] }" for _ in range(lanes))
    if permanent:
        groups = '["A"]'
        greens = f"{{ A = [0, {cycle_s:g}] }}"
        intergreen = ""
        side = ""
        arms = '{ id = "W", bearing_deg = 270 }, { id = "E", bearing_deg = 90 }'
    else:
        groups = '["A", "B"]'
        b0, b1 = (g1 + 5) % cycle_s, (g1 + 5 + 8) % cycle_s
        greens = f"{{ A = [{g0:g}, {g1:g}], B = [{b0:g}, {b1:g}] }}"
        intergreen = "[junction.intergreen_s]\nA = { B = 5 }\nB = { A = 6 }"
        arms = ('{ id = "W", bearing_deg = 270 }, { id = "E", bearing_deg = 90 }, '
                '{ id = "S", bearing_deg = 180 }, { id = "N", bearing_deg = 0 }')
        side = '''
[[link]]
id = "S_in"
to = "J.S"
length_m = 200
speed_limit_kmh = 50
lane = [ { movements = ["through"], group = "B" } ]

[[link]]
id = "N_out"
from = "J.N"
length_m = 200
speed_limit_kmh = 50
lane = [ { movements = [] } ]
'''
    text = f'''
[scenario]
name = "one-approach"
start = "07:00"
duration_s = {duration_s:g}
drain_s = {drain_s:g}
step_s = 0.5

[[vehicle_class]]
name = "car"
share = 1.0
length_m = 4.5
max_accel_mps2 = {max_accel_mps2:g}
comfortable_decel_mps2 = {comfortable_decel_mps2:g}
time_headway_s = {time_headway_s:g}
min_gap_m = 2.0
speed_factor_mean = 1.0
speed_factor_sd = {speed_factor_sd:g}

[[junction]]
id = "J"
lat_deg = 55.65
lon_deg = 12.38
default_program = "p"
groups = {groups}
arm = [ {arms} ]
{intergreen}

[[junction.program]]
name = "p"
cycle_s = {cycle_s:g}
greens = {greens}

[[link]]
id = "W_in"
to = "J.W"
length_m = {approach_m:g}
speed_limit_kmh = {speed_limit_kmh:g}
lane = [
  {lane_rows}
]

[[link]]
id = "E_out"
from = "J.E"
length_m = 300
speed_limit_kmh = {speed_limit_kmh:g}
lane = [
  {exit_rows}
]
{side}
[demand]
interval_s = {duration_s:g}
flow = [ {{ link = "W_in", movement = "through", flow_vph = [{flow_vph:g}] }} ]

[[stretch]]
id = "approach"
links = ["W_in"]
'''
    return parse_scenario(text)


@pytest.fixture
def make_one_approach():
    """The :func:`one_approach_scenario` builder."""
    return one_approach_scenario
