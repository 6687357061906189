"""Frozen, validated dataclasses that describe a scenario.

A scenario is a network of signalised junctions joined by links, the signal
groups and programs of each junction, the demand, the vehicle fleet and the
simulation settings. Every object validates itself in ``__post_init__`` and
raises :class:`ScenarioError` naming the field and the bad value.

Units are in the names (``_s``, ``_m``, ``_kmh``, ``_mps2``, ``_vph``,
``_deg``). Clock times are seconds after midnight (``*_clock_s``).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import date as _date

from dateutil.tz import gettz as _gettz

from gpssignal.model.approach import GiveWay, UpstreamSignal
from gpssignal.model.checks import (
    MOVEMENTS,
    check_non_negative,
    check_positive,
    fail,
    is_number,
)
from gpssignal.model.days import DayType, day_type_names
from gpssignal.model.pedestrians import Crossing, PedestrianSettings

__all__ = [
    "ANONYMISATION_MODES",
    "CLASS_MODES",
    "DEFAULT_LIMITS",
    "LINK_MODES",
    "MOVEMENTS",
    "Arm",
    "Crossing",
    "Demand",
    "DemandFlow",
    "Driver",
    "GiveWay",
    "Junction",
    "Lane",
    "Link",
    "PedestrianSettings",
    "ProbeSettings",
    "Program",
    "PublishedResult",
    "Scenario",
    "ScenarioLimits",
    "ScheduleEntry",
    "SignalTiming",
    "Stretch",
    "UpstreamSignal",
    "Variability",
    "VehicleClass",
    "check_limits",
    "expected_vehicles",
    "link_mode",
]

#: What an IANA time-zone name looks like (``Europe/Copenhagen``, ``Etc/GMT+1``,
#: ``UTC``): no ``..`` and no leading ``/``, so a name cannot point the zone
#: lookup at an arbitrary file.
_TZ_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,40}(/[A-Za-z0-9_+\-]{1,40}){0,3}")


def _known_timezone(name: object) -> bool:
    """Tell whether ``name`` is an IANA time-zone name the system knows."""
    if not isinstance(name, str) or not _TZ_NAME.fullmatch(name):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _gettz(name) is not None
        except (ValueError, OSError):
            return False


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalTiming:
    """Fixed signal transition times of a junction.

    Defaults are the Danish rules (Bekendtgørelse om vejafmærkning §238):
    red-amber 2 s, amber 4 s, minimum green 6 s.
    """

    amber_s: float = 4.0
    red_amber_s: float = 2.0
    min_green_s: float = 6.0

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        check_positive("amber_s", self.amber_s)
        check_non_negative("red_amber_s", self.red_amber_s)
        check_positive("min_green_s", self.min_green_s)


#: Vehicle class modes: ``bus`` is a motor vehicle whose occupants are counted
#: as bus passengers.
CLASS_MODES = ("motor", "bus", "bicycle")
#: Link modes: what a link carries (motor vehicles and buses, or bicycles).
LINK_MODES = ("motor", "bicycle")
#: The emission class of vehicles without tailpipe emissions (SUMO's ``Zero``).
ZERO_EMISSION = "Zero"
#: Most persons a vehicle may carry (an articulated bus at crush load) [-].
MAX_OCCUPANCY = 200.0


def link_mode(class_mode: str) -> str:
    """Return the link mode a vehicle class of ``class_mode`` rides on."""
    return "bicycle" if class_mode == "bicycle" else "motor"


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleClass:
    """A vehicle class: size, driving behaviour (IDM) and share of the fleet.

    Parameters
    ----------
    name : str
        Class name, e.g. ``car_petrol``.
    share : float
        Share of all vehicles [-]; the shares of a scenario sum to 1.
    length_m : float
        Vehicle length [m].
    max_accel_mps2 : float
        IDM maximum acceleration ``a`` [m/s²].
    comfortable_decel_mps2 : float
        IDM comfortable deceleration ``b`` [m/s²].
    time_headway_s : float
        IDM desired time headway ``T`` [s].
    min_gap_m : float
        IDM jam distance ``s0`` [m].
    speed_factor_mean, speed_factor_sd : float
        Desired speed = speed limit × factor, factor ~ N(mean, sd) truncated to
        mean ± 2 sd [-].
    emission_class : str
        HBEFA4 emission class name (used by the emission model), as in
        Eclipse SUMO (``HBEFA4/<name>``), e.g. ``PC_petrol_Euro-6ab``.
    emergency_decel_mps2 : float, optional
        The most this class can brake [m/s²] (no vehicle ever brakes harder);
        default ``driver.max_decel_mps2`` (SUMO's ``emergencyDecel``, 9).
    mass_kg, width_m, height_m : float
        Vehicle mass and size; they set the coasting deceleration below which
        the engine burns no fuel (gpssignal.emissions.hbefa4). Defaults are
        Eclipse SUMO's passenger-car defaults (1500 kg, 1.8 m, 1.5 m).
    mode : str
        ``motor`` (default), ``bus`` (a motor vehicle whose occupants count as
        bus passengers) or ``bicycle`` (rides on cycle links only, emits
        nothing: ``emission_class = "Zero"``). Shares sum to 1 among the
        motor and bus classes, and among the bicycle classes.
    occupancy : float
        Persons per vehicle, driver included [-]: weights its time loss in the
        person-hour KPIs.
    max_speed_kmh : float or None
        Desired-speed cap: desired speed = factor × min(speed limit, cap), as
        SUMO's ``desiredMaxSpeed`` (bicycles ride at their own pace whatever the
        road's limit) [km/h]; ``None``: no cap.
    """

    name: str
    share: float
    length_m: float = 4.5
    max_accel_mps2: float = 2.0
    comfortable_decel_mps2: float = 2.5
    time_headway_s: float = 1.2
    min_gap_m: float = 2.0
    speed_factor_mean: float = 1.0
    speed_factor_sd: float = 0.1
    emission_class: str = "PC_petrol_Euro-6ab"
    emergency_decel_mps2: float | None = None
    mass_kg: float = 1500.0
    width_m: float = 1.8
    height_m: float = 1.5
    mode: str = "motor"
    occupancy: float = 1.0
    max_speed_kmh: float | None = None

    def _check_mode(self, p: str) -> None:
        """Check the mode, occupancy, speed cap and a bicycle's emission class."""
        if self.mode not in CLASS_MODES:
            fail(f"{p}.mode", self.mode, f"must be one of {CLASS_MODES}")
        check_positive(f"{p}.occupancy", self.occupancy)
        if self.occupancy > MAX_OCCUPANCY:
            fail(f"{p}.occupancy", self.occupancy, f"must be <= {MAX_OCCUPANCY:g} persons")
        if self.max_speed_kmh is not None:
            check_positive(f"{p}.max_speed_kmh", self.max_speed_kmh)
        if self.mode == "bicycle" and self.emission_class != ZERO_EMISSION:
            fail(f"{p}.emission_class", self.emission_class,
                 f"bicycles emit nothing: must be {ZERO_EMISSION!r}")

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"vehicle_class[{self.name}]"
        self._check_mode(p)
        if not self.name:
            fail("vehicle_class.name", self.name, "must not be empty")
        if not (is_number(self.share) and 0 <= self.share <= 1):
            fail(f"{p}.share", self.share, "must be between 0 and 1")
        for f in ("length_m", "max_accel_mps2", "comfortable_decel_mps2", "time_headway_s",
                  "speed_factor_mean", "mass_kg", "width_m", "height_m"):
            check_positive(f"{p}.{f}", getattr(self, f))
        check_non_negative(f"{p}.min_gap_m", self.min_gap_m)
        check_non_negative(f"{p}.speed_factor_sd", self.speed_factor_sd)
        if self.speed_factor_mean - 2 * self.speed_factor_sd <= 0:
            fail(f"{p}.speed_factor_sd", self.speed_factor_sd,
                  "mean - 2 sd must stay > 0 (desired speed must be positive)")
        if self.emergency_decel_mps2 is not None:
            check_positive(f"{p}.emergency_decel_mps2", self.emergency_decel_mps2)
            if self.emergency_decel_mps2 < self.comfortable_decel_mps2:
                fail(f"{p}.emergency_decel_mps2", self.emergency_decel_mps2,
                     f"must be >= comfortable_decel_mps2 = {self.comfortable_decel_mps2:g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm:
    """One arm of a junction: the direction a road leaves the junction centre.

    ``bearing_deg`` is measured clockwise from north, pointing from the
    junction centre outward along the arm.
    """

    id: str
    bearing_deg: float
    name: str = ""

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        if not (is_number(self.bearing_deg) and 0 <= self.bearing_deg < 360):
            fail(f"arm[{self.id}].bearing_deg", self.bearing_deg, "must be in [0, 360)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """A fixed-time signal program.

    Parameters
    ----------
    name : str
        Program name, e.g. ``normal`` or ``peak``.
    cycle_s : float
        Cycle time [s].
    offset_s : float
        The program's cycle second 0 falls on clock times ``offset_s + k·cycle_s``
        [s]; equal offsets on neighbouring junctions give a simultaneous start,
        differences give the green wave.
    greens : dict[str, tuple[float, float]]
        Per signal group the green window ``(start_s, end_s)`` in cycle seconds.
        A window with ``start_s > end_s`` wraps over the cycle end. Red-amber
        precedes the start, amber follows the end. ``(0, cycle_s)`` is a
        permanent green, allowed only for a group without conflicts.
    """

    name: str
    cycle_s: float
    offset_s: float = 0.0
    greens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"program[{self.name}]"
        check_positive(f"{p}.cycle_s", self.cycle_s)
        if not (is_number(self.offset_s) and 0 <= self.offset_s < self.cycle_s):
            fail(f"{p}.offset_s", self.offset_s, f"must be in [0, cycle_s={self.cycle_s})")
        for g, win in self.greens.items():
            if len(win) != 2:
                fail(f"{p}.greens.{g}", win, "must be [start_s, end_s]")
            for x in win:
                if not (is_number(x) and 0 <= x <= self.cycle_s):
                    fail(f"{p}.greens.{g}", list(win), f"times must be in [0, {self.cycle_s}]")
            if self.is_permanent(g):
                continue
            if win[0] == win[1] or (win[0] % self.cycle_s) == (win[1] % self.cycle_s):
                fail(f"{p}.greens.{g}", list(win), "green window is empty or a full cycle "
                      f"(permanent green is written [0, {self.cycle_s:g}])")

    def is_permanent(self, group: str) -> bool:
        """Whether ``group`` is green all cycle (window ``[0, cycle_s]``)."""
        start, end = self.greens[group]
        return start == 0 and end == self.cycle_s

    def green_duration_s(self, group: str) -> float:
        """Length of the green window of ``group`` [s]."""
        if self.is_permanent(group):
            return float(self.cycle_s)
        start, end = self.greens[group]
        return (end - start) % self.cycle_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Junction:
    """A signalised junction: arms, signal groups, matrices and programs.

    Parameters
    ----------
    id, name : str
        Identifier and human name.
    lat_deg, lon_deg : float
        WGS84 position of the junction centre [deg].
    arms : tuple[Arm, ...]
        The arms (at least two).
    groups : tuple[str, ...]
        Signal group identifiers.
    intergreen_s : dict[tuple[str, str], float]
        Conflict and intergreen matrix in one: an entry ``(i, j): I`` says that
        groups ``i`` and ``j`` conflict and that green of ``j`` may start no
        earlier than ``I`` seconds after green of ``i`` ended [s]. Every
        conflict is listed in both directions; pairs not listed do not conflict.
    programs : tuple[Program, ...]
        Named signal programs.
    default_program : str
        The program run when nothing else is asked for (and the fail-safe).
    relief_program : str or None
        The program the GPS speed-threshold controller switches to when the
        monitored speeds drop (``None``: the junction is not GPS-controlled).
    coordination_group : str
        Junctions with the same non-empty group form a coordinated corridor:
        every program of every junction of the group has the same cycle, so
        offsets (the green wave) stay meaningful whichever programs run.
    timing : SignalTiming
        Amber, red-amber and minimum green.
    crossings : tuple[Crossing, ...]
        Signalised pedestrian crossings, at most one per arm
        (:mod:`gpssignal.model.pedestrians`).
    """

    id: str
    name: str = ""
    lat_deg: float
    lon_deg: float
    arms: tuple[Arm, ...]
    groups: tuple[str, ...]
    intergreen_s: dict[tuple[str, str], float]
    programs: tuple[Program, ...]
    default_program: str
    relief_program: str | None = None
    coordination_group: str = ""
    timing: SignalTiming = field(default_factory=SignalTiming)
    crossings: tuple[Crossing, ...] = ()

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"junction[{self.id}]"
        if not (is_number(self.lat_deg) and -90 <= self.lat_deg <= 90):
            fail(f"{p}.lat_deg", self.lat_deg, "must be in [-90, 90]")
        if not (is_number(self.lon_deg) and -180 <= self.lon_deg <= 180):
            fail(f"{p}.lon_deg", self.lon_deg, "must be in [-180, 180]")
        if len(self.arms) < 2:
            fail(f"{p}.arms", len(self.arms), "a junction needs at least two arms")
        arm_ids = [a.id for a in self.arms]
        if len(set(arm_ids)) != len(arm_ids):
            fail(f"{p}.arms", arm_ids, "arm ids must be unique")
        if len(set(self.groups)) != len(self.groups) or not self.groups:
            fail(f"{p}.groups", list(self.groups), "group ids must be unique and non-empty")
        self._validate_intergreens()
        self._validate_programs()
        self._validate_crossings()
        # Local import: signals.py builds on these classes.
        from gpssignal.model.signals import validate_junction_programs

        validate_junction_programs(self)

    def _validate_intergreens(self) -> None:
        """Check that each conflict joins two known groups and is listed both ways."""
        p = f"junction[{self.id}]"
        groups = set(self.groups)
        for (i, j), val in self.intergreen_s.items():
            where = f"{p}.intergreen_s.{i}.{j}"
            if i not in groups:
                fail(where, i, "unknown signal group")
            if j not in groups:
                fail(where, j, "unknown signal group")
            if i == j:
                fail(where, val, "a group cannot conflict with itself")
            check_non_negative(where, val)
            if (j, i) not in self.intergreen_s:
                fail(where, val, f"conflict must be listed both ways: missing {j}.{i}")

    def _validate_programs(self) -> None:
        """Check the program names, the default and relief programs and their greens."""
        p = f"junction[{self.id}]"
        groups = set(self.groups)
        names = [pr.name for pr in self.programs]
        if not names:
            fail(f"{p}.programs", names, "a junction needs at least one program")
        if len(set(names)) != len(names):
            fail(f"{p}.programs", names, "program names must be unique")
        if self.default_program not in names:
            fail(f"{p}.default_program", self.default_program, f"not one of {names}")
        if self.relief_program is not None and (self.relief_program not in names
                                                or self.relief_program == self.default_program):
            fail(f"{p}.relief_program", self.relief_program,
                  f"must be one of {names} other than the default program")
        for pr in self.programs:
            missing = groups - set(pr.greens)
            extra = set(pr.greens) - groups
            if missing:
                fail(f"{p}.program[{pr.name}].greens", sorted(missing), "groups without green")
            if extra:
                fail(f"{p}.program[{pr.name}].greens", sorted(extra), "unknown signal groups")

    def _validate_crossings(self) -> None:
        """Check each crossing's arm and group (one crossing per arm, its own group)."""
        p = f"junction[{self.id}]"
        arms = {a.id for a in self.arms}
        seen_arms: set[str] = set()
        seen_groups: set[str] = set()
        for k, c in enumerate(self.crossings):
            where = f"{p}.crossing[{k}]"
            c.check(where)
            if c.arm not in arms:
                fail(f"{where}.arm", c.arm, f"not an arm of the junction ({sorted(arms)})")
            if c.arm in seen_arms:
                fail(f"{where}.arm", c.arm, "one crossing per arm")
            if c.group not in self.groups:
                fail(f"{where}.group", c.group, "not a signal group of the junction")
            if c.group in seen_groups:
                fail(f"{where}.group", c.group, "each crossing needs its own group")
            seen_arms.add(c.arm)
            seen_groups.add(c.group)

    def crossing_groups(self) -> set[str]:
        """Return the signal groups of the pedestrian crossings."""
        return {c.group for c in self.crossings}

    def program(self, name: str) -> Program:
        """Return the program called ``name``."""
        for pr in self.programs:
            if pr.name == name:
                return pr
        raise KeyError(name)

    def conflicts(self, i: str, j: str) -> bool:
        """Whether signal groups ``i`` and ``j`` conflict."""
        return (i, j) in self.intergreen_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Lane:
    """A lane of a link, numbered from the kerb (0) toward the centre.

    ``movements`` are the turns allowed at the downstream end; ``group`` is the
    signal group controlling the lane at the stop line (``None`` on links that
    leave the network). ``length_m`` makes a short lane (a turn pocket or a
    flare) that starts this far before the stop line; ``None``: the lane runs
    the whole link. Vehicles reach a short lane by changing into it from the
    neighbouring lane once it begins.
    """

    movements: tuple[str, ...] = ()
    group: str | None = None
    length_m: float | None = None

    def start_m(self, link_length_m: float) -> float:
        """Where the lane begins, from the start of the link [m]."""
        return 0.0 if self.length_m is None else link_length_m - self.length_m


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A one-way road section between junction arms or the network boundary.

    ``from_arm`` / ``to_arm`` are ``"JUNCTION.ARM"`` references; ``None`` means the
    network boundary (an entry link has no ``from_arm``, an exit link no
    ``to_arm``). ``turn_shares`` gives the movement split at the downstream
    junction for vehicles that did not enter on this link (links between
    junctions). ``give_way`` lists the movements of this link that yield to
    others while both have green; ``upstream_signal`` (entry links only)
    feeds the link in platoons (:mod:`gpssignal.model.approach`). ``mode =
    "bicycle"`` makes a cycle track: only bicycle classes ride on it, and it
    connects to the cycle links of the other arms.
    """

    id: str
    name: str = ""
    from_arm: str | None = None
    to_arm: str | None = None
    length_m: float
    speed_limit_kmh: float
    lanes: tuple[Lane, ...]
    turn_shares: dict[str, float] = field(default_factory=dict)
    lane_width_m: float = 3.25
    give_way: tuple[GiveWay, ...] = ()
    upstream_signal: UpstreamSignal | None = None
    mode: str = "motor"

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"link[{self.id}]"
        check_positive(f"{p}.lane_width_m", self.lane_width_m)
        check_positive(f"{p}.length_m", self.length_m)
        if self.length_m > 20_000:
            fail(f"{p}.length_m", self.length_m, "links longer than 20 km are not supported")
        check_positive(f"{p}.speed_limit_kmh", self.speed_limit_kmh)
        if not self.lanes:
            fail(f"{p}.lanes", [], "a link needs at least one lane")
        if self.from_arm is None and self.to_arm is None:
            fail(f"{p}", self.id, "a link must touch a junction (from_arm or to_arm)")
        self._validate_lanes()
        for m, share in self.turn_shares.items():
            if m not in MOVEMENTS:
                fail(f"{p}.turn_shares", m, f"must be one of {MOVEMENTS}")
            if not (is_number(share) and 0 <= share <= 1):
                fail(f"{p}.turn_shares.{m}", share, "must be a number between 0 and 1")
        if self.turn_shares and abs(sum(self.turn_shares.values()) - 1) > 1e-6:
            fail(f"{p}.turn_shares", self.turn_shares, "shares must sum to 1")
        self._validate_short_lanes()
        self._validate_give_way_and_feed()
        if self.mode not in LINK_MODES:
            fail(f"{p}.mode", self.mode, f"must be one of {LINK_MODES}")

    def _validate_lanes(self) -> None:
        """Check each lane's movements and signal group."""
        p = f"link[{self.id}]"
        for k, lane in enumerate(self.lanes):
            where = f"{p}.lanes[{k}]"
            if self.to_arm is None:
                if lane.movements or lane.group:
                    fail(where, lane.movements, "lanes leaving the network have no movements")
                continue
            if not lane.movements:
                fail(f"{where}.movements", [], "a lane into a junction needs movements")
            for m in lane.movements:
                if m not in MOVEMENTS:
                    fail(f"{where}.movements", m, f"must be one of {MOVEMENTS}")
            if not lane.group:
                fail(f"{where}.group", lane.group, "a lane into a junction needs a signal group")

    def _validate_give_way_and_feed(self) -> None:
        """Check the give-way rules and the upstream signal."""
        p = f"link[{self.id}]"
        moves = set()
        for k, gw in enumerate(self.give_way):
            gw.check(f"{p}.give_way[{k}]")
            if gw.movement not in self.lane_movements():
                fail(f"{p}.give_way[{k}].movement", gw.movement, "no lane of the link carries it")
            if gw.movement in moves:
                fail(f"{p}.give_way[{k}].movement", gw.movement, "a movement has one give-way rule")
            moves.add(gw.movement)
        if self.upstream_signal is not None:
            if self.from_arm is not None:
                fail(f"{p}.upstream_signal", "...", "only an entry link (no 'from') can be fed "
                     "by an upstream signal")
            self.upstream_signal.check(f"{p}.upstream_signal")

    def _validate_short_lanes(self) -> None:
        """Check short lanes: shorter than the link, at the edges, nested, beside a full lane."""
        p = f"link[{self.id}]"
        full = [k for k, ln in enumerate(self.lanes) if ln.length_m is None]
        for k, lane in enumerate(self.lanes):
            if lane.length_m is None:
                continue
            where = f"{p}.lanes[{k}].length_m"
            check_positive(where, lane.length_m)
            if self.to_arm is None:
                fail(where, lane.length_m, "short lanes end at a stop line: only on links "
                     "into a junction")
            if lane.length_m >= self.length_m:
                fail(where, lane.length_m, f"a short lane must be shorter than the link "
                     f"({self.length_m:g} m); leave length_m out for a full lane")
        if not full:
            fail(f"{p}.lanes", "...", "at least one lane must run the whole link")
        lengths = [ln.length_m if ln.length_m is not None else math.inf for ln in self.lanes]
        first, last = full[0], full[-1]
        if any(ln.length_m is not None for ln in self.lanes[first:last + 1]):
            k = next(i for i in range(first, last + 1) if self.lanes[i].length_m is not None)
            fail(f"{p}.lanes[{k}].length_m", self.lanes[k].length_m,
                 "a short lane must lie at the kerb or the centre side, outside the full lanes")
        for k in range(first):            # kerb side: shorter toward the kerb
            if lengths[k] > lengths[k + 1]:
                fail(f"{p}.lanes[{k}].length_m", lengths[k], "short lanes must get shorter "
                     "away from the full lanes (each starts beside a longer one)")
        for k in range(last + 1, len(lengths)):  # centre side: shorter toward the centre
            if lengths[k] > lengths[k - 1]:
                fail(f"{p}.lanes[{k}].length_m", lengths[k], "short lanes must get shorter "
                     "away from the full lanes (each starts beside a longer one)")

    @property
    def speed_limit_mps(self) -> float:
        """Speed limit [m/s]."""
        return self.speed_limit_kmh / 3.6

    def lane_movements(self) -> set[str]:
        """All movements some lane of this link allows."""
        return {m for lane in self.lanes for m in lane.movements}

    def full_lanes(self) -> int:
        """Lanes that run the whole link (short lanes begin further on)."""
        return sum(1 for ln in self.lanes if ln.length_m is None)

    def upstream_capacity_vph(self) -> float:
        """Return what the upstream signal passes at most: s × full lanes × g / C [veh/h].

        A demand above it makes the queue at the upstream signal grow without
        bound. ``inf`` for a link without an upstream signal.
        """
        sig = self.upstream_signal
        if sig is None:
            return math.inf
        return sig.saturation_flow_vph * self.full_lanes() * sig.green_s / sig.cycle_s


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandFlow:
    """Demand entering on ``link`` that takes ``movement`` at the first junction.

    ``flow_vph`` holds one mean flow rate per demand interval [veh/h].
    """

    link: str
    movement: str
    flow_vph: tuple[float, ...]

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"demand.flow[{self.link}.{self.movement}]"
        if self.movement not in MOVEMENTS:
            fail(f"{p}.movement", self.movement, f"must be one of {MOVEMENTS}")
        if not self.flow_vph:
            fail(f"{p}.flow_vph", [], "needs at least one interval")
        for k, q in enumerate(self.flow_vph):
            if not (is_number(q) and math.isfinite(q) and q >= 0):
                fail(f"{p}.flow_vph[{k}]", q, "flows must be finite and >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """Time-varying demand: a profile of ``interval_s`` steps from scenario start."""

    interval_s: float = 900.0
    flows: tuple[DemandFlow, ...] = ()

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        check_positive("demand.interval_s", self.interval_s)
        if not self.flows:
            fail("demand.flow", [], "a scenario needs at least one demand flow")
        seen = set()
        for f in self.flows:
            key = (f.link, f.movement)
            if key in seen:
                fail("demand.flow", f"{f.link}.{f.movement}", "listed twice")
            seen.add(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Variability:
    """Day-to-day variability: what makes seed N a different day from seed M.

    ``demand_level_sd`` is the standard deviation of a per-day factor on all
    flows, factor ~ N(1, sd) truncated to [1 - 3 sd, 1 + 3 sd] [-];
    ``peak_shift_sd_s`` the standard deviation of a per-day shift of the whole
    demand profile in time [s].
    """

    demand_level_sd: float = 0.0
    peak_shift_sd_s: float = 0.0

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        check_non_negative("variability.demand_level_sd", self.demand_level_sd)
        if self.demand_level_sd >= 1 / 3:
            fail("variability.demand_level_sd", self.demand_level_sd, "must be < 1/3")
        check_non_negative("variability.peak_shift_sd_s", self.peak_shift_sd_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stretch:
    """A monitored stretch of road.

    It runs from ``start_m`` on the first of ``links`` to ``end_m`` on the
    last, following the links in order.
    """

    id: str
    links: tuple[str, ...]
    start_m: float = 0.0
    end_m: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        p = f"stretch[{self.id}]"
        if not self.links:
            fail(f"{p}.links", [], "needs at least one link")
        check_non_negative(f"{p}.start_m", self.start_m)
        if self.end_m is not None:
            check_positive(f"{p}.end_m", self.end_m)
            if len(self.links) == 1 and self.end_m <= self.start_m:
                fail(f"{p}.end_m", self.end_m, f"must be > start_m={self.start_m}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleEntry:
    """Time-of-day schedule: from ``at_clock_s`` on, run ``program``."""

    at_clock_s: float
    program: str

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        if not (is_number(self.at_clock_s) and 0 <= self.at_clock_s <= 86_400
                and float(self.at_clock_s).is_integer()):
            fail("schedule.at", self.at_clock_s, "must be a whole-second clock time "
                  "within one day")


#: Anonymisation modes of a probe feed (see :mod:`gpssignal.probes`).
ANONYMISATION_MODES = ("idless", "rotating", "raw")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeSettings:
    """The GPS probe feed: who reports, how often, how well, how late.

    Parameters
    ----------
    penetration : float
        Share of vehicles that report [-], drawn per vehicle per seed.
    period_s : float
        Reporting period of a probe vehicle [s].
    position_sigma_m : float
        Standard deviation of the position error, per axis [m].
    speed_sigma_kmh : float
        Standard deviation of the speed error [km/h]; reported speeds are >= 0.
    heading_sigma_deg : float
        Standard deviation of the heading error [deg].
    dropout : float
        Probability that a report is lost [-].
    latency_fixed_s, latency_jitter_s : float
        Delivery delay = fixed + uniform(0, jitter) [s]; reports arrive late
        and out of order.
    anonymisation : str
        ``idless`` (no identifier at all), ``rotating`` (pseudonyms replaced
        every ``rotation_s``, unlinkable across rotations) or ``raw`` (vehicle
        ids; for tests only).
    rotation_s : float
        Pseudonym lifetime in ``rotating`` mode [s].
    trim_m : float
        The first and last ``trim_m`` metres of every trip are never reported [m].
    """

    penetration: float = 0.05
    period_s: float = 5.0
    position_sigma_m: float = 5.0
    speed_sigma_kmh: float = 2.0
    heading_sigma_deg: float = 5.0
    dropout: float = 0.02
    latency_fixed_s: float = 5.0
    latency_jitter_s: float = 25.0
    anonymisation: str = "idless"
    rotation_s: float = 300.0
    trim_m: float = 100.0

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        for f in ("penetration", "dropout"):
            v = getattr(self, f)
            if not (is_number(v) and 0 <= v <= 1):
                fail(f"probes.{f}", v, "must be between 0 and 1")
        for f in ("period_s", "rotation_s"):
            check_positive(f"probes.{f}", getattr(self, f))
        for f in ("position_sigma_m", "speed_sigma_kmh", "heading_sigma_deg", "latency_fixed_s",
                  "latency_jitter_s", "trim_m"):
            check_non_negative(f"probes.{f}", getattr(self, f))
        if self.anonymisation not in ANONYMISATION_MODES:
            fail("probes.anonymisation", self.anonymisation,
                  f"must be one of {', '.join(ANONYMISATION_MODES)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Driver:
    """Driving-model settings shared by all classes.

    ``idm_delta`` is the IDM acceleration exponent [-]; ``amber_max_decel_mps2``
    the deceleration a driver accepts to stop at amber: a driver who would need
    more goes on [m/s²]; ``max_decel_mps2`` is the emergency deceleration, which
    no vehicle ever exceeds (a vehicle that would need more to stop at red
    crosses on red, and is counted) [m/s²]; ``emergency_braking_mps2`` the
    deceleration beyond which a braking counts as an emergency braking [m/s²].
    Defaults of the last two: Eclipse SUMO's passenger-car ``emergencyDecel``
    (9) and ``decel`` (4.5), docs/references.md#sumo-vehicle-defaults.

    Give-way turns (:class:`~gpssignal.model.approach.GiveWay`) default to
    ``critical_gap_s`` and ``follow_up_s`` [s], the HCM's permitted left-turn
    values (docs/references.md#permitted-left-turn).

    Lane changes follow MOBIL (docs/references.md#lane-change-model): a change
    needs a positive gap to the new leader and follower, and neither may then
    have to brake harder than ``lc_safe_decel_mps2`` [m/s²]. Changes a vehicle
    must make to reach a lane of its movement (into a turn pocket) are always
    on; ``lc_discretionary`` adds changes to a faster lane when the vehicle
    gains more than ``lc_threshold_mps2`` [m/s²] of acceleration after
    weighing the others' losses by ``lc_politeness`` [-].
    """

    idm_delta: float = 4.0
    amber_max_decel_mps2: float = 3.5
    max_decel_mps2: float = 9.0
    emergency_braking_mps2: float = 4.5
    critical_gap_s: float = 4.5
    follow_up_s: float = 2.5
    lc_safe_decel_mps2: float = 4.0
    lc_discretionary: bool = False
    lc_politeness: float = 0.2
    lc_threshold_mps2: float = 0.2

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        for f in ("idm_delta", "amber_max_decel_mps2", "max_decel_mps2",
                  "emergency_braking_mps2", "critical_gap_s", "follow_up_s",
                  "lc_safe_decel_mps2"):
            check_positive(f"driver.{f}", getattr(self, f))
        for f in ("critical_gap_s", "follow_up_s"):
            if getattr(self, f) > 30:
                fail(f"driver.{f}", getattr(self, f), "must be <= 30 s")
        if self.lc_safe_decel_mps2 > self.max_decel_mps2:
            fail("driver.lc_safe_decel_mps2", self.lc_safe_decel_mps2,
                 f"must be <= max_decel_mps2 = {self.max_decel_mps2:g}")
        if not isinstance(self.lc_discretionary, bool):
            fail("driver.lc_discretionary", self.lc_discretionary, "must be true or false")
        if not (is_number(self.lc_politeness) and 0 <= self.lc_politeness <= 1):
            fail("driver.lc_politeness", self.lc_politeness, "must be in [0, 1]")
        check_non_negative("driver.lc_threshold_mps2", self.lc_threshold_mps2)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedResult:
    """A field result published for the real junction a scenario models.

    Parameters
    ----------
    quantity : str
        What was measured, in words (e.g. ``waste time in the morning rush``).
    value : str
        The published figure as published (e.g. ``-21 %``, ``32 -> 38 km/h``).
    source : str
        Where it was published (a reference in the repository's docs).
    """

    quantity: str
    value: str
    source: str

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        for f in ("quantity", "value", "source"):
            if not isinstance(getattr(self, f), str) or not getattr(self, f).strip():
                fail(f"published.{f}", getattr(self, f), "must be a non-empty text")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A complete scenario: network, signals, demand, fleet and settings.

    Parameters
    ----------
    name, description : str
        Identification.
    start_clock_s : float
        Clock time of simulation time 0 [s after midnight].
    duration_s : float
        Demand period [s]; no vehicles arrive after it.
    drain_s : float
        Extra simulated time after the demand period so vehicles inside can
        finish their trips [s].
    step_s : float
        Time step of the vehicle kernel [s].
    peak_clock_s : tuple[float, float]
        The peak hour reported separately [clock s].
    working_days_per_year : int
        Days per year the simulated period occurs, for annualisation [d].
    seed : int
        Default seed.
    probes : ProbeSettings
        The GPS probe feed.
    date : str
        ISO date of a single run (``YYYY-MM-DD``); probe timestamps use it.
    timezone : str
        IANA time zone of the clock times (probe files store UTC).
    day_types : tuple[DayType, ...]
        The mix of day types each simulated day draws from (empty: every
        day is ordinary, varying only by ``variability``).
    existing_plan : str
        How the junctions run today, the baseline savings are reported
        against: ``tod`` (the clock schedule) or ``fixed:PROGRAM``. Empty:
        ``tod`` when there is a schedule, else ``fixed:`` the default program.
    published : tuple[PublishedResult, ...]
        Field results published for this very scenario (shown only in its
        own reports).
    pedestrians : PedestrianSettings
        Walking speeds and the minimum-green rule of the crossings.
    """

    name: str
    description: str = ""
    start_clock_s: float
    duration_s: float
    drain_s: float = 600.0
    step_s: float = 0.5
    peak_clock_s: tuple[float, float] | None = None
    working_days_per_year: int = 250
    seed: int = 1
    junctions: tuple[Junction, ...]
    links: tuple[Link, ...]
    vehicle_classes: tuple[VehicleClass, ...]
    demand: Demand
    variability: Variability = field(default_factory=Variability)
    stretches: tuple[Stretch, ...] = ()
    schedule: tuple[ScheduleEntry, ...] = ()
    driver: Driver = field(default_factory=Driver)
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    date: str = "2019-05-06"
    timezone: str = "Europe/Copenhagen"
    day_types: tuple[DayType, ...] = ()
    existing_plan: str = ""
    published: tuple[PublishedResult, ...] = ()
    pedestrians: PedestrianSettings = field(default_factory=PedestrianSettings)
    #: Junctions and links by id, filled on first lookup (not part of the
    #: scenario: excluded from equality, hashing and ``repr``).
    _junction_by_id: dict[str, Junction] = field(default_factory=dict, init=False, repr=False,
                                                 compare=False, hash=False)
    _link_by_id: dict[str, Link] = field(default_factory=dict, init=False, repr=False,
                                         compare=False, hash=False)

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        self._validate_period()
        self._validate_settings()
        self._validate_parts()
        # Topology checks (arms, movements, routes) need the whole network.
        from gpssignal.model.network import validate_network

        validate_network(self)
        self._validate_coordination()
        self._validate_upstream_signals()
        self._validate_schedule()
        self._validate_day_types()
        self._validate_existing_plan()
        self._validate_road_users()

    def _validate_period(self) -> None:
        """Check the start, duration, drain, step and peak hour."""
        if not (is_number(self.start_clock_s) and 0 <= self.start_clock_s < 86_400
                and float(self.start_clock_s).is_integer()):
            fail("scenario.start", self.start_clock_s,
                  "must be a whole-second clock time within one day")
        check_positive("scenario.duration_s", self.duration_s)
        if self.start_clock_s + self.duration_s > 86_400:
            fail("scenario.duration_s", self.duration_s,
                  "the demand period must end by midnight (24:00)")
        check_non_negative("scenario.drain_s", self.drain_s)
        check_positive("scenario.step_s", self.step_s)
        if self.step_s > 1.0:
            fail("scenario.step_s", self.step_s, "must be <= 1 s for the car-following model")
        if self.peak_clock_s is not None:
            a, b = self.peak_clock_s
            end = self.start_clock_s + self.duration_s
            if not (is_number(a) and is_number(b) and float(a).is_integer()
                    and float(b).is_integer() and self.start_clock_s <= a < b <= end):
                fail("scenario.peak", list(self.peak_clock_s),
                      "must be an interval inside the simulated period")

    def _validate_settings(self) -> None:
        """Check the working days, seed, date and time zone."""
        if (not isinstance(self.working_days_per_year, int)
                or isinstance(self.working_days_per_year, bool)
                or not 0 < self.working_days_per_year <= 366):
            fail("scenario.working_days_per_year", self.working_days_per_year,
                  "must be in 1..366")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            fail("scenario.seed", self.seed, "must be an integer >= 0")
        try:
            _date.fromisoformat(self.date)
        except (TypeError, ValueError):
            fail("scenario.date", self.date, "must be an ISO date YYYY-MM-DD")
        if not _known_timezone(self.timezone):
            fail("scenario.timezone", self.timezone, "unknown time zone (use an IANA name "
                  "such as 'Europe/Copenhagen')")

    def _validate_parts(self) -> None:
        """Check the vehicle classes, and that junction and link ids are unique."""
        if not self.vehicle_classes:
            fail("vehicle_class", [], "at least one vehicle class is needed")
        names = [c.name for c in self.vehicle_classes]
        if len(set(names)) != len(names):
            fail("vehicle_class", names, "class names must be unique")
        for mode in ("motor", "bicycle"):
            shares = [c.share for c in self.vehicle_classes if link_mode(c.mode) == mode]
            if mode == "motor" and not shares:
                fail("vehicle_class", names, "at least one motor (or bus) class is needed")
            if shares and abs(sum(shares) - 1) > 1e-6:
                what = "motor and bus" if mode == "motor" else "bicycle"
                fail("vehicle_class.share", round(sum(shares), 6),
                     f"the shares of the {what} classes must sum to 1")
        ids = [j.id for j in self.junctions]
        if not ids or len(set(ids)) != len(ids):
            fail("junction", ids, "junction ids must be unique and there must be at least one")
        link_ids = [lk.id for lk in self.links]
        if len(set(link_ids)) != len(link_ids):
            fail("link", link_ids, "link ids must be unique")

    def _validate_upstream_signals(self) -> None:
        """Refuse an upstream signal that cannot pass the link's mean peak demand.

        Its queue would grow without bound outside the network, hiding delay
        (and on the busiest days vehicles could not enter before the end).
        """
        for lk in self.links:
            if lk.upstream_signal is None:
                continue
            flows = [f.flow_vph for f in self.demand.flows if f.link == lk.id]
            peak = max((sum(x) for x in zip(*flows, strict=True)), default=0.0)
            cap = lk.upstream_capacity_vph()
            if peak > cap:
                fail(f"link[{lk.id}].upstream_signal.green_s", lk.upstream_signal.green_s,
                     f"the upstream signal passes at most {cap:.0f} veh/h (saturation flow x "
                     f"{lk.full_lanes()} lanes x green/cycle), below the link's peak demand "
                     f"{peak:.0f} veh/h")

    def _validate_coordination(self) -> None:
        """Check that every program of a coordination group has the group's cycle."""
        cycles: dict[str, tuple[str, float]] = {}
        for j in self.junctions:
            if not j.coordination_group:
                continue
            for pr in j.programs:
                first = cycles.setdefault(j.coordination_group, (f"{j.id}.{pr.name}",
                                                                 pr.cycle_s))
                if pr.cycle_s != first[1]:
                    fail(f"junction[{j.id}].program[{pr.name}].cycle_s", pr.cycle_s,
                          f"coordination group {j.coordination_group!r} runs {first[1]:g} s "
                          f"({first[0]}); all its programs need one cycle")

    def _validate_schedule(self) -> None:
        """Check that scheduled programs exist everywhere and times increase."""
        for s in self.schedule:
            for j in self.junctions:
                if s.program not in [p.name for p in j.programs]:
                    fail("schedule.program", s.program, f"junction {j.id} has no such program")
        at = [s.at_clock_s for s in self.schedule]
        if at != sorted(at) or len(set(at)) != len(at):
            fail("schedule.at", at, "schedule times must be strictly increasing")

    def _validate_day_types(self) -> None:
        day_type_names(self.day_types)
        by_id = {lk.id: lk for lk in self.links}
        for d in self.day_types:
            for k, inc in enumerate(d.incidents):
                lk = by_id.get(inc.link)
                if lk is None or lk.to_arm is not None:
                    fail(f"day_type[{d.name}].incident[{k}].link", inc.link,
                         "must be an exit link of the network (incidents sit downstream)")
            for k, ef in enumerate(d.extra_flows):
                where = f"day_type[{d.name}].extra_flow[{k}]"
                lk = by_id.get(ef.link)
                if lk is None or lk.from_arm is not None or lk.to_arm is None:
                    fail(f"{where}.link", ef.link, "must be an entry link of the network")
                if ef.movement not in lk.lane_movements():
                    fail(f"{where}.movement", ef.movement, f"no lane of link {ef.link} "
                         "allows it")

    def _validate_road_users(self) -> None:
        """Check cycle demand, the crossings' profiles and the pedestrian minimum greens."""
        modes = {lk.id: lk.mode for lk in self.links}
        has_bikes = any(c.mode == "bicycle" for c in self.vehicle_classes)
        for f in self.demand.flows:
            if modes.get(f.link) == "bicycle" and not has_bikes:
                fail(f"demand.flow[{f.link}.{f.movement}].link", f.link,
                     "a cycle link's demand needs a vehicle class with mode = 'bicycle'")
        n_int = len(self.demand.flows[0].flow_vph)
        for j in self.junctions:
            lane_groups = {ln.group for lk in self.links for ln in lk.lanes
                           if lk.to_arm is not None and lk.to_arm.split(".")[0] == j.id}
            for k, c in enumerate(j.crossings):
                where = f"junction[{j.id}].crossing[{k}]"
                if len(c.flow_pph) != n_int:
                    fail(f"{where}.flow_pph", f"{len(c.flow_pph)} values",
                         f"the demand profile has {n_int} intervals")
                if c.group in lane_groups:
                    fail(f"{where}.group", c.group, "a lane uses this group: a crossing "
                         "needs a pedestrian group of its own")
                clear = min((v for (a, _), v in j.intergreen_s.items() if a == c.group),
                            default=0.0)
                walk = self.pedestrians.walk_and_clear_s(c)
                need = max(j.timing.min_green_s, walk - clear)
                for pr in j.programs:
                    g = pr.green_duration_s(c.group)
                    if g + 1e-9 < need:
                        part = "to the island" if c.island else "across"
                        fail(f"junction[{j.id}].program[{pr.name}].greens.{c.group}",
                             list(pr.greens[c.group]),
                             f"{g:g} s of green is below the pedestrian minimum {need:.1f} s: "
                             f"green + shortest intergreen after it ({clear:g} s) must cover "
                             f"{self.pedestrians.start_up_s:g} s + {c.part_length_m:g} m "
                             f"{part} / {self.pedestrians.design_speed_mps:g} m/s = {walk:.1f} s "
                             f"(crossing over arm {c.arm})")

    def _validate_existing_plan(self) -> None:
        plan = self.existing_plan
        if plan in ("", "tod"):
            if plan == "tod" and not self.schedule:
                fail("evaluation.existing_plan", plan, "the scenario has no [[schedule]]")
            return
        kind, _, program = plan.partition(":")
        if kind != "fixed" or not program:
            fail("evaluation.existing_plan", plan, "must be 'tod' or 'fixed:PROGRAM'")
        for j in self.junctions:
            if program not in [pr.name for pr in j.programs]:
                fail("evaluation.existing_plan", plan, f"junction {j.id} has no program "
                     f"{program!r}")

    @property
    def baseline_plan(self) -> str:
        """The declared existing plan, or the one implied (``tod`` or ``fixed:DEFAULT``)."""
        if self.existing_plan:
            return self.existing_plan
        if self.schedule:
            return "tod"
        return f"fixed:{self.junctions[0].default_program}"

    @property
    def program_names(self) -> tuple[str, ...]:
        """Program names every junction has, in the first junction's order."""
        common = set.intersection(*({p.name for p in j.programs} for j in self.junctions))
        return tuple(p.name for p in self.junctions[0].programs if p.name in common)

    @property
    def end_clock_s(self) -> float:
        """Clock time at which demand stops [s after midnight]."""
        return self.start_clock_s + self.duration_s

    def junction(self, jid: str) -> Junction:
        """Return the junction with id ``jid`` (the first one, were two to share it)."""
        index = self._junction_by_id
        if not index:   # built once: a scan per call made large networks quadratic
            for j in self.junctions:
                index.setdefault(j.id, j)
        return index[jid]

    def link(self, lid: str) -> Link:
        """Return the link with id ``lid`` (the first one, were two to share it)."""
        index = self._link_by_id
        if not index:
            for lk in self.links:
                index.setdefault(lk.id, lk)
        return index[lid]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioLimits:
    """The resource budget a scenario must stay within (engineering bounds).

    A scenario that passes every value check can still ask for more memory
    or time than any machine has (a drain of 10⁹ s, a flow of 10⁹ veh/h, a
    step of 1 ns). These bounds refuse such a scenario at load, with the
    figure and the limit; a caller who means it raises a limit (e.g.
    ``ScenarioLimits(max_vehicles=10**6)``; on the command line ``--max-...``).

    Parameters
    ----------
    max_vehicles : float
        Expected vehicles of the heaviest day: Σ flow × interval over the demand
        profile, × the largest day-type demand factor and the top of the daily
        level (1 + 3 sd), plus extra flows [veh]. Memory and run time grow with
        it; the largest shipped scenario (vallensbaek_corridor) has about
        10,000, so 100,000 leaves a factor of ten.
    max_steps : float
        Vehicle steps of one run, ``(duration_s + drain_s) / step_s`` [-]. The
        per-step records grow with it; 500,000 covers a whole day at 0.2 s.
    max_cycle_s : float
        Longest signal cycle [s]. Practice keeps cycles within 60–120 s and
        rarely above 150–180 s (Highway Capacity Manual; Danish Vejregler);
        300 s is an engineering bound well above any real program: a longer
        cycle means the controller practically never switches.
    max_file_bytes : int
        Largest scenario TOML or demand CSV read [bytes]; 16 MiB is hundreds of
        times the shipped files and keeps a wrong path (a disk image, a log)
        from being read into memory.
    """

    max_vehicles: float = 100_000
    max_steps: float = 500_000
    max_cycle_s: float = 300.0
    max_file_bytes: int = 16 * 2**20

    def __post_init__(self) -> None:
        """Check that every limit is a positive number."""
        for f in ("max_vehicles", "max_steps", "max_cycle_s", "max_file_bytes"):
            check_positive(f"limits.{f}", getattr(self, f))


#: The limits a scenario is read with unless the caller passes others.
DEFAULT_LIMITS = ScenarioLimits()


def _day_peaks(s: Scenario) -> list[tuple[float, float]]:
    """Return per day type its demand factor and its extra vehicles [veh]."""
    extra = [(d.demand_factor, sum(ef.flow_vph * ef.duration_s[1] / 3600
                                   for ef in d.extra_flows)) for d in s.day_types]
    return extra or [(1.0, 0.0)]


def expected_vehicles(s: Scenario) -> float:
    """Return the expected vehicles of the heaviest day of ``s`` [veh] (:class:`ScenarioLimits`)."""
    base = sum(q * s.demand.interval_s / 3600 for f in s.demand.flows for q in f.flow_vph)
    level = 1 + 3 * s.variability.demand_level_sd
    return max(base * factor * level + extra for factor, extra in _day_peaks(s))


def check_limits(s: Scenario, limits: ScenarioLimits = DEFAULT_LIMITS) -> None:
    """Refuse a scenario beyond ``limits``; the message names field, figure and limit.

    Raises
    ------
    ScenarioError
        For a cycle, a step count or an expected number of vehicles above its limit.
    """
    for j in s.junctions:
        for pr in j.programs:
            if pr.cycle_s > limits.max_cycle_s:
                fail(f"junction[{j.id}].program[{pr.name}].cycle_s", pr.cycle_s,
                     f"longer than the limit of {limits.max_cycle_s:g} s (max_cycle_s)")
    steps = (s.duration_s + s.drain_s) / s.step_s
    if steps > limits.max_steps:
        name, value = (("scenario.step_s", s.step_s) if s.duration_s / s.step_s
                       > limits.max_steps else ("scenario.drain_s", s.drain_s))
        fail(name, value, f"(duration_s + drain_s) / step_s = {steps:.4g} steps, above the "
             f"limit of {limits.max_steps:,.0f} (max_steps)")
    veh = expected_vehicles(s)
    if veh > limits.max_vehicles:
        top = max(s.demand.flows, key=lambda f: sum(f.flow_vph))
        fail(f"demand.flow[{top.link}.{top.movement}].flow_vph", list(top.flow_vph)[:4],
             f"the heaviest day expects {veh:.4g} vehicles, above the limit of "
             f"{limits.max_vehicles:,.0f} (max_vehicles)")
