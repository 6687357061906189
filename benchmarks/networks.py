"""Generated signalised networks for the scale benchmark: arterials and grids.

A network is a grid of ``rows × cols`` identical signalised junctions,
``spacing_m`` apart, on one-way streets: every row is an eastbound street,
every column a northbound street (the one-way grid of many city centres). An
*arterial* is one row: an eastbound main road crossed by ``cols`` northbound
side roads. Every junction has four arms (W and S in, E and N out), one lane
per link, two signal groups (A: eastbound, B: northbound) and one program.
Every vehicle goes straight on: it enters at the west end of a row or the
south end of a column and drives the whole street.

Volumes are set by a **degree of saturation** ``x`` (flow ÷ capacity) at
every junction: flow = x · s · g / C per entry, with s the saturation flow
per lane (:data:`gpssignal.estimate.capacity.SATURATION_FLOW_VPHPL`,
1,850 veh/h, docs/references.md#saturation-flow), g the displayed green of
the street's group and C the cycle. The displayed green stands for the
effective green (start-up lost time and the used part of amber taken to
cancel out, as in Webster's method). Flows are constant over the period.

Program: cycle 60 s, A green 0-32 s, B green 38-54 s, intergreens 6 s, Danish
amber 4 s and red-amber 2 s, all offsets 0 (no green wave: a stated
simplification). The defaults below (spacing, speed, period) are benchmark
settings, not observations.

Usage: :func:`scenario_toml` returns the TOML text; :func:`write_scenario`
writes it. ``python benchmarks/scale.py`` times gpssignal against SUMO on
these networks.
"""

from __future__ import annotations

import math
from pathlib import Path

from gpssignal.estimate.capacity import SATURATION_FLOW_VPHPL

#: Cycle and displayed greens [s] (module docstring).
CYCLE_S = 60
GREEN_A = (0, 32)
GREEN_B = (38, 54)
#: Distance between neighbouring junctions [m] and the speed limit [km/h].
SPACING_M = 300.0
SPEED_KMH = 50
#: Length of an entry link and an exit link [m].
ENTRY_M = 400.0
EXIT_M = 200.0
#: Origin of the grid (near Vallensbæk) [deg] and metres per degree of latitude.
ORIGIN = (55.63, 12.38)
M_PER_DEG_LAT = 111_195.0


def shape(kind: str, junctions: int) -> tuple[int, int]:
    """Return ``(rows, cols)`` of an ``arterial`` (1 × n) or a ``grid`` (about √n × √n)."""
    if junctions < 1:
        raise ValueError(f"junctions = {junctions}: must be >= 1")
    if kind == "arterial":
        return 1, junctions
    if kind == "grid":
        rows = max(1, math.isqrt(junctions))
        return rows, math.ceil(junctions / rows)
    raise ValueError(f"kind = {kind!r}: must be 'arterial' or 'grid'")


def entry_flows_vph(x: float) -> tuple[float, float]:
    """Return the eastbound and northbound entry flows [veh/h] at degree of saturation ``x``."""
    s = SATURATION_FLOW_VPHPL
    return (x * s * (GREEN_A[1] - GREEN_A[0]) / CYCLE_S,
            x * s * (GREEN_B[1] - GREEN_B[0]) / CYCLE_S)


def _junction(r: int, c: int) -> str:
    lat0, lon0 = ORIGIN
    lat = lat0 + r * SPACING_M / M_PER_DEG_LAT
    lon = lon0 + c * SPACING_M / (M_PER_DEG_LAT * math.cos(math.radians(lat0)))
    return f"""
[[junction]]
id = "J{r}_{c}"
lat_deg = {lat:.7f}
lon_deg = {lon:.7f}
default_program = "fixed"
groups = ["A", "B"]
arm = [{{ id = "W", bearing_deg = 270 }}, {{ id = "E", bearing_deg = 90 }},
       {{ id = "S", bearing_deg = 180 }}, {{ id = "N", bearing_deg = 0 }}]
[junction.timing]
amber_s = 4
red_amber_s = 2
min_green_s = 6
[junction.intergreen_s]
A = {{ B = 6 }}
B = {{ A = 6 }}
[[junction.program]]
name = "fixed"
cycle_s = {CYCLE_S}
offset_s = 0
greens = {{ A = [{GREEN_A[0]}, {GREEN_A[1]}], B = [{GREEN_B[0]}, {GREEN_B[1]}] }}
"""


def _link(lid: str, frm: str | None, to: str | None, length_m: float, group: str | None
          ) -> str:
    ends = (f'from = "{frm}"\n' if frm else "") + (f'to = "{to}"\n' if to else "")
    lane = f'{{ movements = ["through"], group = "{group}" }}' if group else \
        "{ movements = [] }"
    shares = 'turn_shares = { through = 1.0 }\n' if frm and to else ""
    return (f'\n[[link]]\nid = "{lid}"\n{ends}length_m = {length_m:g}\n'
            f"speed_limit_kmh = {SPEED_KMH}\n{shares}lane = [ {lane} ]\n")


def scenario_toml(kind: str, junctions: int, x: float = 0.6, duration_s: int = 900,
                  drain_s: int = 600, seed: int = 1) -> str:
    """Return the scenario TOML of a generated network (module docstring).

    Parameters
    ----------
    kind : {"arterial", "grid"}
    junctions : int
        Junctions wanted; a grid gets ``rows × cols >= junctions`` of them.
    x : float
        Degree of saturation at every junction [-].
    duration_s, drain_s : int
        Demand period and the time after it that vehicles may finish [s].
    seed : int
    """
    rows, cols = shape(kind, junctions)
    q_east, q_north = entry_flows_vph(x)
    parts = [f"""[scenario]
name = "{kind}_{rows}x{cols}"
description = "Generated {kind}: {rows} x {cols} junctions, degree of saturation {x:g}."
start = "07:00"
duration_s = {duration_s}
drain_s = {drain_s}
step_s = 0.5
peak = ["07:00", "07:15"]
working_days_per_year = 250
seed = {seed}

[[vehicle_class]]
name = "car"
share = 1.0
length_m = 4.5
max_accel_mps2 = 2.0
comfortable_decel_mps2 = 2.5
time_headway_s = 1.2
min_gap_m = 2.0
speed_factor_mean = 1.0
speed_factor_sd = 0.1
emission_class = "PC_petrol_Euro-6ab"
"""]
    parts += [_junction(r, c) for r in range(rows) for c in range(cols)]
    flows = []
    for r in range(rows):
        parts.append(_link(f"row{r}_in", None, f"J{r}_0.W", ENTRY_M, "A"))
        for c in range(cols - 1):
            parts.append(_link(f"row{r}_{c}", f"J{r}_{c}.E", f"J{r}_{c + 1}.W", SPACING_M,
                               "A"))
        parts.append(_link(f"row{r}_out", f"J{r}_{cols - 1}.E", None, EXIT_M, None))
        flows.append(f'  {{ link = "row{r}_in", movement = "through", '
                     f"flow_vph = [{q_east:.1f}] }},")
    for c in range(cols):
        parts.append(_link(f"col{c}_in", None, f"J0_{c}.S", ENTRY_M, "B"))
        for r in range(rows - 1):
            parts.append(_link(f"col{c}_{r}", f"J{r}_{c}.N", f"J{r + 1}_{c}.S", SPACING_M,
                               "B"))
        parts.append(_link(f"col{c}_out", f"J{rows - 1}_{c}.N", None, EXIT_M, None))
        flows.append(f'  {{ link = "col{c}_in", movement = "through", '
                     f"flow_vph = [{q_north:.1f}] }},")
    parts.append(f"\n[demand]\ninterval_s = {duration_s}\nflow = [\n" + "\n".join(flows)
                 + "\n]\n")
    parts.append(f'\n[[stretch]]\nid = "row0"\nlinks = ["row0_in"]\nstart_m = 100\n'
                 f"end_m = {ENTRY_M:g}\n")
    return "".join(parts)


def write_scenario(path: str | Path, kind: str, junctions: int, **kwargs: float) -> Path:
    """Write :func:`scenario_toml` to ``path``; return the path."""
    p = Path(path)
    p.write_text(scenario_toml(kind, junctions, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return p
