"""Day types: what makes one weekday morning unlike another, with its frequency.

A scenario may declare a mix of day types (``[[day_type]]``): ordinary days,
heavy days, early or late peaks, incident days and diversion days. Each
simulated day (seed) draws its type from the mix, from a random stream of its
own, so every controller run on that seed sees the same type (common random
numbers). Each type scales or shifts the day's demand, and may add incidents
(a capacity drop on a link for a period) and extra flows (traffic diverted
onto the network for a period).

Ranges (``[low, high]``) are drawn uniformly per day; a single value is a
fixed one. Units are in the names; clock times are seconds after midnight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpssignal.model.checks import MOVEMENTS, check_positive, fail, is_number

__all__ = ["DayType", "ExtraFlow", "Incident", "check_range", "day_type_names"]

#: Frequencies of a mix must sum to 1 within this tolerance (rounding of
#: published shares written with a few decimals).
FREQUENCY_SUM_TOLERANCE = 1e-6
#: Clock times and durations stay within one day [s].
SECONDS_PER_DAY = 86_400
#: The largest shift of a day's demand profile a day type may add [s]: two
#: hours either way is far beyond any published early/late peak.
MAX_PEAK_SHIFT_S = 7_200
#: The largest demand factor of a day type [-]: three times the normal demand
#: is far beyond any observed day and would only exhaust memory and time.
MAX_DEMAND_FACTOR = 3.0


def check_range(fieldname: str, value: tuple[float, float], *, positive: bool = False) -> None:
    """Refuse a range that is not two finite numbers ``low <= high`` within one day.

    With ``positive``, ``low`` must be > 0 too.
    """
    ok = (isinstance(value, tuple) and len(value) == 2
          and all(is_number(x) and math.isfinite(x) and 0 <= x <= SECONDS_PER_DAY
                  for x in value) and value[0] <= value[1])
    shown = list(value) if isinstance(value, tuple) else value
    if not ok:
        fail(fieldname, shown, f"must be [low, high] with 0 <= low <= high <= {SECONDS_PER_DAY}")
    if positive and value[0] <= 0:
        fail(fieldname, shown, "must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """A capacity drop at the end of one link for a period of the day.

    From the incident's start to its end, at most ``capacity_vph`` vehicles
    per hour pass the end of ``link`` (spread evenly over its lanes: each
    lane lets one vehicle pass every ``lanes × 3600 / capacity_vph``
    seconds), as behind a blocked lane where traffic merges past a breakdown
    or a crash. Vehicles wait at the link's end for their turn, so a queue
    builds there and spills back upstream, through junctions.

    Parameters
    ----------
    link : str
        The link's id.
    start_clock_s : tuple[float, float]
        Range of the start [s after midnight]; drawn uniformly per day.
    duration_s : tuple[float, float]
        Range of the duration [s]; drawn uniformly per day.
    capacity_vph : float
        What passes the incident, all lanes together [veh/h].
    """

    link: str
    start_clock_s: tuple[float, float]
    duration_s: tuple[float, float]
    capacity_vph: float

    def validate(self, where: str) -> None:
        """Check the values; ``where`` names the incident in messages."""
        check_range(f"{where}.start", self.start_clock_s)
        check_range(f"{where}.duration_s", self.duration_s, positive=True)
        check_positive(f"{where}.capacity_vph", self.capacity_vph)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtraFlow:
    """Extra traffic on an entry link for a period (a diversion).

    Parameters
    ----------
    link : str
        The entry link's id.
    movement : str
        The movement at its end (``left``, ``through``, ``right``).
    flow_vph : float
        Extra flow while it lasts [veh/h].
    start_clock_s : tuple[float, float]
        Range of the start [s after midnight]; drawn uniformly per day.
    duration_s : tuple[float, float]
        Range of the duration [s]; drawn uniformly per day.
    """

    link: str
    movement: str
    flow_vph: float
    start_clock_s: tuple[float, float]
    duration_s: tuple[float, float]

    def validate(self, where: str) -> None:
        """Check the values; ``where`` names the flow in messages."""
        if self.movement not in MOVEMENTS:
            fail(f"{where}.movement", self.movement, f"must be one of {', '.join(MOVEMENTS)}")
        check_positive(f"{where}.flow_vph", self.flow_vph)
        check_range(f"{where}.start", self.start_clock_s)
        check_range(f"{where}.duration_s", self.duration_s, positive=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class DayType:
    """One kind of day and how often it occurs.

    Parameters
    ----------
    name : str
        E.g. ``ordinary``, ``heavy``, ``early_peak``, ``incident``.
    frequency : float
        Share of working days of this type [-]; a scenario's shares sum to 1.
    demand_factor : float
        Multiplies every flow on top of the day's random level [-].
    peak_shift_s : tuple[float, float]
        Range of an extra shift of the demand profile [s] (negative =
        earlier), added to the day's random shift; drawn uniformly.
    incidents : tuple[Incident, ...]
    extra_flows : tuple[ExtraFlow, ...]
    description : str
        What the type stands for and where its frequency comes from.
    """

    name: str
    frequency: float
    demand_factor: float = 1.0
    peak_shift_s: tuple[float, float] = (0.0, 0.0)
    incidents: tuple[Incident, ...] = ()
    extra_flows: tuple[ExtraFlow, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"day_type[{self.name}]"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            fail("day_type.name", self.name, "must be a name (letters, digits, _)")
        if not (is_number(self.frequency) and 0 < self.frequency <= 1):
            fail(f"{p}.frequency", self.frequency, "must be a share in (0, 1]")
        check_positive(f"{p}.demand_factor", self.demand_factor)
        if self.demand_factor > MAX_DEMAND_FACTOR:
            fail(f"{p}.demand_factor", self.demand_factor, f"must be <= {MAX_DEMAND_FACTOR:g}")
        if (not isinstance(self.peak_shift_s, tuple) or len(self.peak_shift_s) != 2
                or not all(is_number(x) and abs(x) <= MAX_PEAK_SHIFT_S
                           for x in self.peak_shift_s)
                or self.peak_shift_s[0] > self.peak_shift_s[1]):
            fail(f"{p}.peak_shift_s", self.peak_shift_s,
                 f"must be [low, high] within ±{MAX_PEAK_SHIFT_S} s, low <= high")
        for k, inc in enumerate(self.incidents):
            inc.validate(f"{p}.incident[{k}]")
        for k, ef in enumerate(self.extra_flows):
            ef.validate(f"{p}.extra_flow[{k}]")


def day_type_names(day_types: tuple[DayType, ...]) -> list[str]:
    """Return the names of a mix, checking they are unique and their shares sum to 1."""
    names = [d.name for d in day_types]
    if len(set(names)) != len(names):
        fail("day_type.name", names, "names must be unique")
    total = sum(d.frequency for d in day_types)
    if day_types and abs(total - 1.0) > FREQUENCY_SUM_TOLERANCE:
        fail("day_type.frequency", round(total, 9), "the shares of all day types must sum to 1")
    return names
