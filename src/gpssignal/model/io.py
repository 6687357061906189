"""Scenario files: TOML (+ an optional wide CSV of demand) to :class:`Scenario` and back.

``read_scenario(path)`` reads a file, ``parse_scenario(text)`` parses text,
``dump_scenario(scenario)`` gives the TOML text of a scenario (comments are not
kept), and ``scenario_hash`` a short digest of its content. Unknown keys are
errors, so a typo never silently falls back to a default.

Clock times are written ``"HH:MM"`` or ``"HH:MM:SS"``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from gpssignal.errors import ScenarioError
from gpssignal.model.approach import GiveWay, UpstreamSignal
from gpssignal.model.days import DayType, ExtraFlow, Incident
from gpssignal.model.pedestrians import Crossing, PedestrianSettings
from gpssignal.model.scenario import (
    DEFAULT_LIMITS,
    Arm,
    Demand,
    DemandFlow,
    Driver,
    Junction,
    Lane,
    Link,
    ProbeSettings,
    Program,
    PublishedResult,
    Scenario,
    ScenarioLimits,
    ScheduleEntry,
    SignalTiming,
    Stretch,
    Variability,
    VehicleClass,
    check_limits,
)

__all__ = [
    "dump_scenario",
    "format_clock",
    "parse_clock",
    "parse_scenario",
    "read_scenario",
    "scenario_hash",
    "scenario_to_dict",
]

#: Numeric ``[driver]`` settings, in the order written; the first three are
#: always written, the rest only when not the default (:func:`scenario_to_dict`).
_DRIVER_NUMBERS = ("idm_delta", "amber_max_decel_mps2", "max_decel_mps2",
                   "emergency_braking_mps2", "critical_gap_s", "follow_up_s",
                   "lc_safe_decel_mps2", "lc_politeness", "lc_threshold_mps2")
_DRIVER_DEFAULTS = Driver()
#: ``[pedestrians]`` settings (written only when one differs from the default).
_PED_NUMBERS = ("walking_speed_mps", "design_speed_mps", "start_up_s")


def parse_clock(value: Any, fieldname: str) -> float:
    """``"HH:MM[:SS]"`` to seconds after midnight."""
    if not isinstance(value, str):
        raise ScenarioError(f"{fieldname} = {value!r}: must be a clock time 'HH:MM'")
    parts = value.split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ScenarioError(f"{fieldname} = {value!r}: must be a clock time 'HH:MM'") from None
    if len(nums) not in (2, 3) or not (0 <= nums[0] <= 24 and 0 <= nums[1] < 60) or (
            len(nums) == 3 and not 0 <= nums[2] < 60):
        raise ScenarioError(f"{fieldname} = {value!r}: must be a clock time 'HH:MM'")
    seconds = nums[0] * 3600 + nums[1] * 60 + (nums[2] if len(nums) == 3 else 0)
    if seconds > 86_400:
        raise ScenarioError(f"{fieldname} = {value!r}: must be a clock time 'HH:MM'")
    return float(seconds)


def format_clock(seconds: float) -> str:
    """Seconds after midnight to ``"HH:MM:SS"`` (or ``"HH:MM"`` on whole minutes)."""
    s = int(round(seconds))
    h, m, sec = s // 3600, (s % 3600) // 60, s % 60
    return f"{h:02d}:{m:02d}" if sec == 0 else f"{h:02d}:{m:02d}:{sec:02d}"


class _Table:
    """A TOML table read key by key; leftover keys are reported as unknown."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where} = {data!r}: must be a table")
        self.data = dict(data)
        self.where = where

    def take(self, key: str, default: Any = ...,
             kind: type | tuple[type, ...] | None = None) -> Any:
        if key not in self.data:
            if default is ...:
                raise ScenarioError(f"{self.where}.{key}: missing (required)")
            return default
        value = self.data.pop(key)
        if kind is not None:
            ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (
                kind if isinstance(kind, tuple) else (kind,)))
            if not ok:
                names = kind.__name__ if isinstance(kind, type) else "/".join(
                    k.__name__ for k in kind)
                raise ScenarioError(f"{self.where}.{key} = {value!r}: must be {names}")
        return value

    def number(self, key: str, default: Any = ...) -> Any:
        v = self.take(key, default, (int, float))
        if isinstance(v, float) and not math.isfinite(v):
            raise ScenarioError(f"{self.where}.{key} = {v!r}: must be finite")
        return v

    def done(self) -> None:
        if self.data:
            key = sorted(self.data)[0]
            raise ScenarioError(f"{self.where}.{key} = {self.data[key]!r}: unknown field")


def _list_of_tables(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where} = {value!r}: must be an array of tables [[{where}]]")
    return value


def _parse_program(data: Any, where: str) -> Program:
    t = _Table(data, where)
    name = t.take("name", kind=str)
    t.where = f"{where}[{name}]"
    greens_raw = t.take("greens", kind=dict)
    greens = {}
    for g, win in greens_raw.items():
        if not isinstance(win, list) or len(win) != 2 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in win):
            raise ScenarioError(f"{t.where}.greens.{g} = {win!r}: must be [start_s, end_s]")
        greens[g] = (win[0], win[1])
    prog = Program(name=name, cycle_s=t.number("cycle_s"), offset_s=t.number("offset_s", 0.0),
                   greens=greens)
    t.done()
    return prog


def _parse_junction(data: Any, where: str) -> Junction:
    t = _Table(data, where)
    jid = t.take("id", kind=str)
    t.where = f"junction[{jid}]"
    timing_t = _Table(t.take("timing", {}), f"{t.where}.timing")
    timing = SignalTiming(amber_s=timing_t.number("amber_s", 4.0),
                          red_amber_s=timing_t.number("red_amber_s", 2.0),
                          min_green_s=timing_t.number("min_green_s", 6.0))
    timing_t.done()
    arms = []
    for k, a in enumerate(_list_of_tables(t.take("arm", []), f"{t.where}.arm")):
        at = _Table(a, f"{t.where}.arm[{k}]")
        arms.append(Arm(id=at.take("id", kind=str), bearing_deg=at.number("bearing_deg"),
                        name=at.take("name", "", str)))
        at.done()
    groups = t.take("groups", kind=list)
    if not all(isinstance(g, str) for g in groups):
        raise ScenarioError(f"{t.where}.groups = {groups!r}: must be a list of names")
    ig_raw = t.take("intergreen_s", {}, dict)
    intergreen: dict[tuple[str, str], float] = {}
    for i, row in ig_raw.items():
        if not isinstance(row, dict):
            raise ScenarioError(f"{t.where}.intergreen_s.{i} = {row!r}: must be a table "
                                "{ GROUP = seconds }")
        for j, v in row.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ScenarioError(f"{t.where}.intergreen_s.{i}.{j} = {v!r}: must be a number")
            intergreen[(i, j)] = v
    programs = tuple(_parse_program(p, f"{t.where}.program")
                     for p in _list_of_tables(t.take("program", []), f"{t.where}.program"))
    crossings = []
    for k, x in enumerate(_list_of_tables(t.take("crossing", []), f"{t.where}.crossing")):
        xt = _Table(x, f"{t.where}.crossing[{k}]")
        flow = xt.take("flow_pph", kind=list)
        crossings.append(Crossing(arm=xt.take("arm", kind=str), group=xt.take("group", kind=str),
                                  length_m=xt.number("length_m"), flow_pph=tuple(flow),
                                  pushbutton=xt.take("pushbutton", False, bool),
                                  island=xt.take("island", False, bool)))
        xt.done()
    j = Junction(id=jid, name=t.take("name", "", str), lat_deg=t.number("lat_deg"),
                 lon_deg=t.number("lon_deg"), arms=tuple(arms), groups=tuple(groups),
                 intergreen_s=intergreen, programs=programs,
                 default_program=t.take("default_program", kind=str),
                 relief_program=t.take("relief_program", None, str),
                 coordination_group=t.take("coordination_group", "", str), timing=timing,
                 crossings=tuple(crossings))
    t.done()
    return j


def _parse_link(data: Any, where: str) -> Link:
    t = _Table(data, where)
    lid = t.take("id", kind=str)
    t.where = f"link[{lid}]"
    lanes = []
    for k, ln in enumerate(_list_of_tables(t.take("lane", []), f"{t.where}.lane")):
        lt = _Table(ln, f"{t.where}.lane[{k}]")
        moves = lt.take("movements", [], list)
        lanes.append(Lane(movements=tuple(moves), group=lt.take("group", None, str),
                          length_m=lt.number("length_m", None)))
        lt.done()
    shares = t.take("turn_shares", {}, dict)
    give_way = []
    for k, g in enumerate(_list_of_tables(t.take("give_way", []), f"{t.where}.give_way")):
        gt = _Table(g, f"{t.where}.give_way[{k}]")
        give_way.append(GiveWay(movement=gt.take("movement", kind=str),
                                to=tuple(gt.take("to", kind=list)),
                                critical_gap_s=gt.number("critical_gap_s", None),
                                follow_up_s=gt.number("follow_up_s", None)))
        gt.done()
    upstream = None
    if "upstream_signal" in t.data:
        ut = _Table(t.take("upstream_signal"), f"{t.where}.upstream_signal")
        dflt = UpstreamSignal(cycle_s=1.0, green_s=1.0, distance_m=0.0)
        upstream = UpstreamSignal(
            cycle_s=ut.number("cycle_s"), green_s=ut.number("green_s"),
            offset_s=ut.number("offset_s", 0.0), distance_m=ut.number("distance_m"),
            **{f: ut.number(f, getattr(dflt, f))
               for f in ("saturation_flow_vph", "alpha", "beta")})
        ut.done()
    link = Link(id=lid, name=t.take("name", "", str), from_arm=t.take("from", None, str),
                to_arm=t.take("to", None, str), length_m=t.number("length_m"),
                speed_limit_kmh=t.number("speed_limit_kmh"), lanes=tuple(lanes),
                turn_shares=dict(shares), lane_width_m=t.number("lane_width_m", 3.25),
                give_way=tuple(give_way), upstream_signal=upstream,
                mode=t.take("mode", "motor", str))
    t.done()
    return link


def _parse_demand_csv(text: str, where: str, n_expected: int | None) -> list[DemandFlow]:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and not r[0].startswith("#")]
    if not rows or [c.strip() for c in rows[0][:2]] != ["link", "movement"]:
        raise ScenarioError(f"{where}: first row must be 'link,movement,<interval>,...'")
    flows = []
    for n, row in enumerate(rows[1:], start=2):
        values = []
        for c, cell in enumerate(row[2:], start=3):
            try:
                values.append(float(cell))
            except ValueError:
                raise ScenarioError(f"{where} row {n} column {c} = {cell!r}: not a number") \
                    from None
        flows.append(DemandFlow(link=row[0].strip(), movement=row[1].strip(),
                                flow_vph=tuple(values)))
    return flows


def _clock_range(t: _Table, key: str) -> tuple[float, float]:
    """Read a clock time ``"HH:MM"`` or a range ``["HH:MM", "HH:MM"]`` [s after midnight]."""
    raw = t.take(key, kind=(str, list))
    where = f"{t.where}.{key}"
    if isinstance(raw, str):
        x = parse_clock(raw, where)
        return (x, x)
    if len(raw) != 2:
        raise ScenarioError(f"{where} = {raw!r}: must be 'HH:MM' or ['HH:MM', 'HH:MM']")
    return (parse_clock(raw[0], where), parse_clock(raw[1], where))


def _number_range(t: _Table, key: str, default: Any = ...) -> Any:
    """Read a number or a range ``[low, high]`` of numbers."""
    raw = t.take(key, default, (int, float, list))
    if raw is default and default is not ...:
        return default
    where = f"{t.where}.{key}"
    vals = raw if isinstance(raw, list) else [raw, raw]
    if len(vals) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                 and math.isfinite(x) for x in vals):
        raise ScenarioError(f"{where} = {raw!r}: must be a number or [low, high]")
    return (float(vals[0]), float(vals[1]))


def _parse_day_type(data: Any, where: str) -> DayType:
    t = _Table(data, where)
    name = t.take("name", kind=str)
    t.where = f"day_type[{name}]"
    incidents = []
    for k, x in enumerate(_list_of_tables(t.take("incident", []), f"{t.where}.incident")):
        it = _Table(x, f"{t.where}.incident[{k}]")
        incidents.append(Incident(link=it.take("link", kind=str),
                                  start_clock_s=_clock_range(it, "start"),
                                  duration_s=_number_range(it, "duration_s"),
                                  capacity_vph=it.number("capacity_vph")))
        it.done()
    extra = []
    for k, x in enumerate(_list_of_tables(t.take("extra_flow", []), f"{t.where}.extra_flow")):
        et = _Table(x, f"{t.where}.extra_flow[{k}]")
        extra.append(ExtraFlow(link=et.take("link", kind=str),
                               movement=et.take("movement", kind=str),
                               flow_vph=et.number("flow_vph"),
                               start_clock_s=_clock_range(et, "start"),
                               duration_s=_number_range(et, "duration_s")))
        et.done()
    day = DayType(name=name, frequency=t.number("frequency"),
                  demand_factor=t.number("demand_factor", 1.0),
                  peak_shift_s=_number_range(t, "peak_shift_s", (0.0, 0.0)),
                  incidents=tuple(incidents), extra_flows=tuple(extra),
                  description=t.take("description", "", str))
    t.done()
    return day


def _parse_evaluation(top: _Table) -> dict[str, Any]:
    """Read ``[evaluation]``, ``[[day_type]]`` and ``[[published]]`` as Scenario keywords."""
    ev = _Table(top.take("evaluation", {}), "evaluation")
    plan = ev.take("existing_plan", "", str)
    ev.done()
    days = tuple(_parse_day_type(d, f"day_type[{k}]")
                 for k, d in enumerate(_list_of_tables(top.take("day_type", []), "day_type")))
    published = []
    for k, x in enumerate(_list_of_tables(top.take("published", []), "published")):
        pt = _Table(x, f"published[{k}]")
        published.append(PublishedResult(quantity=pt.take("quantity", kind=str),
                                         value=pt.take("value", kind=str),
                                         source=pt.take("source", kind=str)))
        pt.done()
    return {"existing_plan": plan, "day_types": days, "published": tuple(published)}


def _evaluation_to_dict(s: Scenario) -> dict[str, Any]:
    """Invert :func:`_parse_evaluation`.

    Empty parts are left out (so the hash of a scenario without them is what it
    was before they existed).
    """
    out: dict[str, Any] = {}
    if s.existing_plan:
        out["evaluation"] = {"existing_plan": s.existing_plan}
    if s.day_types:
        out["day_type"] = [_day_type_to_dict(d) for d in s.day_types]
    if s.published:
        out["published"] = [{"quantity": r.quantity, "value": r.value, "source": r.source}
                            for r in s.published]
    return out


def _day_type_to_dict(d: DayType) -> dict[str, Any]:
    def clock(r: tuple[float, float]) -> Any:
        return format_clock(r[0]) if r[0] == r[1] else [format_clock(x) for x in r]

    def num(r: tuple[float, float]) -> Any:
        return r[0] if r[0] == r[1] else list(r)

    out: dict[str, Any] = {"name": d.name, "frequency": d.frequency,
                           "demand_factor": d.demand_factor,
                           "peak_shift_s": num(d.peak_shift_s), "description": d.description}
    if d.incidents:
        out["incident"] = [{"link": i.link, "start": clock(i.start_clock_s),
                            "duration_s": num(i.duration_s),
                            "capacity_vph": i.capacity_vph}
                           for i in d.incidents]
    if d.extra_flows:
        out["extra_flow"] = [{"link": e.link, "movement": e.movement, "flow_vph": e.flow_vph,
                              "start": clock(e.start_clock_s), "duration_s": num(e.duration_s)}
                             for e in d.extra_flows]
    return out


def _read_text(path: Path, fieldname: str, shown: str, limits: ScenarioLimits) -> str:
    """Read a UTF-8 text file after checking it is a regular file within the size limit.

    A device (``/dev/zero``), a FIFO or a folder is refused before a byte is
    read, so a wrong path can neither hang the reader nor exhaust memory.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ScenarioError(f"{fieldname} = {shown!r}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError(f"{fieldname} = {shown!r}: not a regular file (a device, FIFO "
                            "or folder cannot be read)")
    if st.st_size > limits.max_file_bytes:
        raise ScenarioError(f"{fieldname} = {shown!r}: {st.st_size:,} bytes, above the limit "
                            f"of {limits.max_file_bytes:,} bytes (max_file_bytes)")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise ScenarioError(f"{fieldname} = {shown!r}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{fieldname} = {shown!r}: not UTF-8 text") from None


def _load_toml(text: str, limits: ScenarioLimits) -> dict[str, Any]:
    """Parse TOML text; syntax errors, excessive size and nesting become ScenarioError."""
    if not isinstance(text, str):
        raise ScenarioError(f"scenario text = {type(text).__name__}: must be str")
    if len(text) > limits.max_file_bytes:
        raise ScenarioError(f"scenario text = {len(text):,} characters: above the limit of "
                            f"{limits.max_file_bytes:,} (max_file_bytes)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"TOML syntax: {exc}") from None
    except RecursionError:
        raise ScenarioError("scenario text: TOML arrays or tables nested too deep to read "
                            "(a scenario needs a few levels)") from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise ScenarioError(f"scenario text: {str(exc).splitlines()[0][:120]}") from None
    _check_integers(raw, "")
    return raw


#: Largest integer a scenario may hold: a 64-bit integer (seeds use it all).
#: Far beyond it (10**308) a number cannot even convert to a float.
MAX_INTEGER = 2**64


def _check_integers(data: Any, where: str) -> None:
    """Refuse any integer beyond :data:`MAX_INTEGER`, naming its place."""
    if isinstance(data, dict):
        for k, v in data.items():
            _check_integers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, list):
        for k, v in enumerate(data):
            _check_integers(v, f"{where}[{k}]")
    elif isinstance(data, int) and not isinstance(data, bool) and abs(data) > MAX_INTEGER:
        digits = len(str(abs(data)))  # < 4300: longer literals fail to parse
        raise ScenarioError(f"{where} = <integer of {digits} digits>: too large (at most "
                            f"2**64 = {MAX_INTEGER:,})")


def _parse_demand(top: _Table, duration_s: float, base_dir: Path | None,
                  limits: ScenarioLimits) -> Demand:
    """Read ``[demand]``: inline flows and the optional CSV ``file``.

    ``file`` is read relative to ``base_dir``; it need not lie inside or below
    the scenario's folder (a shared demand table elsewhere is allowed), but it
    must be a regular file within :attr:`ScenarioLimits.max_file_bytes`.
    """
    dmt = _Table(top.take("demand", kind=dict), "demand")
    interval = dmt.number("interval_s", 900.0)
    flows: list[DemandFlow] = []
    for k, f in enumerate(_list_of_tables(dmt.take("flow", []), "demand.flow")):
        ft = _Table(f, f"demand.flow[{k}]")
        q = ft.take("flow_vph", kind=list)
        flows.append(DemandFlow(link=ft.take("link", kind=str), movement=ft.take(
            "movement", kind=str), flow_vph=tuple(q)))
        ft.done()
    csv_name = dmt.take("file", None, str)
    if csv_name is not None:
        csv_text = _read_text((base_dir or Path.cwd()) / csv_name, "demand.file", csv_name,
                              limits)
        flows.extend(_parse_demand_csv(csv_text, f"demand.file {csv_name}", None))
    dmt.done()
    if not (isinstance(interval, (int, float)) and interval > 0):
        raise ScenarioError(f"demand.interval_s = {interval!r}: must be a finite number > 0")
    n_int = math.ceil(duration_s / interval - 1e-9) if duration_s > 0 else 0
    for f in flows:
        if len(f.flow_vph) != n_int:
            raise ScenarioError(
                f"demand.flow[{f.link}.{f.movement}].flow_vph = {len(f.flow_vph)} values: "
                f"duration {duration_s:g} s needs {n_int} intervals of {interval:g} s")
    return Demand(interval_s=interval, flows=tuple(flows))


def parse_scenario(text: str, base_dir: Path | None = None, *,
                   limits: ScenarioLimits | None = None) -> Scenario:
    """Parse scenario TOML text; CSV files it names are read relative to ``base_dir``.

    Parameters
    ----------
    text : str
        The TOML text.
    base_dir : Path, optional
        Folder the demand ``file`` is read relative to (default: the working folder).
    limits : ScenarioLimits, optional
        The resource budget (default :data:`~gpssignal.model.scenario.DEFAULT_LIMITS`).

    Raises
    ------
    ScenarioError
        With a message naming the field and the bad value.
    """
    lim = DEFAULT_LIMITS if limits is None else limits
    try:
        return _parse(text, base_dir, lim)
    except ScenarioError as exc:
        # Ids and values are the user's text: keep the message on one line.
        raise ScenarioError(_printable(str(exc))) from None


def _printable(message: str) -> str:
    """Return ``message`` with control characters (line breaks too) written as escapes."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _parse(text: str, base_dir: Path | None, lim: ScenarioLimits) -> Scenario:
    """Parse and check a scenario (:func:`parse_scenario` without the message clean-up)."""
    top = _Table(_load_toml(text, lim), "")
    st = _Table(top.take("scenario", kind=dict), "scenario")
    name = st.take("name", kind=str)
    start = parse_clock(st.take("start", kind=str), "scenario.start")
    peak = st.take("peak", None, list)
    peak_s = None
    if peak is not None:
        if len(peak) != 2:
            raise ScenarioError(f"scenario.peak = {peak!r}: must be ['HH:MM', 'HH:MM']")
        peak_s = (parse_clock(peak[0], "scenario.peak"), parse_clock(peak[1], "scenario.peak"))
    sc_kwargs = dict(
        name=name, description=st.take("description", "", str), start_clock_s=start,
        duration_s=st.number("duration_s"), drain_s=st.number("drain_s", 600.0),
        step_s=st.number("step_s", 0.5), peak_clock_s=peak_s,
        working_days_per_year=st.take("working_days_per_year", 250, int),
        seed=st.take("seed", 1, int), date=st.take("date", "2019-05-06", str),
        timezone=st.take("timezone", "Europe/Copenhagen", str))
    st.done()
    pt = _Table(top.take("probes", {}), "probes")
    dflt = ProbeSettings()
    probe_kw: dict[str, Any] = {f: pt.number(f, getattr(dflt, f)) for f in (
        "penetration", "period_s", "position_sigma_m", "speed_sigma_kmh", "heading_sigma_deg",
        "dropout", "latency_fixed_s", "latency_jitter_s", "rotation_s", "trim_m")}
    probes = ProbeSettings(anonymisation=pt.take("anonymisation", dflt.anonymisation, str),
                           **probe_kw)
    pt.done()

    dt = _Table(top.take("driver", {}), "driver")
    ddef = Driver()
    driver = Driver(**{f: dt.number(f, getattr(ddef, f)) for f in _DRIVER_NUMBERS},
                    lc_discretionary=dt.take("lc_discretionary", ddef.lc_discretionary, bool))
    dt.done()
    pdt = _Table(top.take("pedestrians", {}), "pedestrians")
    pdef = PedestrianSettings()
    pedestrians = PedestrianSettings(**{f: pdt.number(f, getattr(pdef, f)) for f in _PED_NUMBERS})
    pdt.done()
    vt = _Table(top.take("variability", {}), "variability")
    variability = Variability(demand_level_sd=vt.number("demand_level_sd", 0.0),
                              peak_shift_sd_s=vt.number("peak_shift_sd_s", 0.0))
    vt.done()

    classes = []
    for k, c in enumerate(_list_of_tables(top.take("vehicle_class"), "vehicle_class")):
        ct = _Table(c, f"vehicle_class[{k}]")
        cname = ct.take("name", kind=str)
        ct.where = f"vehicle_class[{cname}]"
        defaults = VehicleClass(name=cname, share=0.0)
        kw = {f: ct.number(f, getattr(defaults, f)) for f in (
            "share", "length_m", "max_accel_mps2", "comfortable_decel_mps2", "time_headway_s",
            "min_gap_m", "speed_factor_mean", "speed_factor_sd", "mass_kg", "width_m",
            "height_m")}
        classes.append(VehicleClass(name=cname, emission_class=ct.take(
            "emission_class", defaults.emission_class, str),
            emergency_decel_mps2=ct.number("emergency_decel_mps2", None),
            mode=ct.take("mode", defaults.mode, str),
            occupancy=ct.number("occupancy", defaults.occupancy),
            max_speed_kmh=ct.number("max_speed_kmh", None), **kw))
        ct.done()

    junctions = tuple(_parse_junction(j, f"junction[{k}]")
                      for k, j in enumerate(_list_of_tables(top.take("junction"), "junction")))
    links = tuple(_parse_link(lk, f"link[{k}]")
                  for k, lk in enumerate(_list_of_tables(top.take("link"), "link")))

    demand = _parse_demand(top, sc_kwargs["duration_s"], base_dir, lim)

    stretches = []
    for k, s in enumerate(_list_of_tables(top.take("stretch", []), "stretch")):
        stt = _Table(s, f"stretch[{k}]")
        sid = stt.take("id", kind=str)
        stt.where = f"stretch[{sid}]"
        stretches.append(Stretch(id=sid, links=tuple(stt.take("links", kind=list)),
                                 start_m=stt.number("start_m", 0.0),
                                 end_m=stt.number("end_m", None),
                                 description=stt.take("description", "", str)))
        stt.done()
    schedule = []
    for k, s in enumerate(_list_of_tables(top.take("schedule", []), "schedule")):
        sct = _Table(s, f"schedule[{k}]")
        schedule.append(ScheduleEntry(at_clock_s=parse_clock(sct.take("at", kind=str),
                                                             f"schedule[{k}].at"),
                                      program=sct.take("program", kind=str)))
        sct.done()
    evaluation = _parse_evaluation(top)
    top.done()
    sc = Scenario(**evaluation, junctions=junctions, links=links, vehicle_classes=tuple(classes),
                  demand=demand, variability=variability, stretches=tuple(stretches),
                  schedule=tuple(schedule), driver=driver, probes=probes,
                  pedestrians=pedestrians, **sc_kwargs)
    check_limits(sc, lim)
    return sc


def read_scenario(path: str | Path, *, limits: ScenarioLimits | None = None) -> Scenario:
    """Read and validate a scenario TOML file.

    Parameters
    ----------
    path : str or Path
        The TOML file: a regular file within ``limits.max_file_bytes``.
    limits : ScenarioLimits, optional
        The resource budget (default :data:`~gpssignal.model.scenario.DEFAULT_LIMITS`).

    Raises
    ------
    ScenarioError
        If the file cannot be read, any value is invalid or the scenario exceeds
        a limit.
    """
    p = Path(path)
    lim = DEFAULT_LIMITS if limits is None else limits
    text = _read_text(p, "scenario file", str(p), lim)
    return parse_scenario(text, base_dir=p.parent, limits=lim)


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Return the scenario as plain TOML-ready data (demand inlined)."""
    sc: dict[str, Any] = {
        "name": s.name, "description": s.description, "start": format_clock(s.start_clock_s),
        "duration_s": s.duration_s, "drain_s": s.drain_s, "step_s": s.step_s,
        "working_days_per_year": s.working_days_per_year, "seed": s.seed, "date": s.date,
        "timezone": s.timezone,
    }
    if s.peak_clock_s is not None:
        sc["peak"] = [format_clock(x) for x in s.peak_clock_s]
    out: dict[str, Any] = {
        "scenario": sc,
        "driver": {"idm_delta": s.driver.idm_delta,
                   "amber_max_decel_mps2": s.driver.amber_max_decel_mps2,
                   "max_decel_mps2": s.driver.max_decel_mps2,
                   # The newer settings are written only when not the default,
                   # so that older scenarios keep their hash.
                   **{f: getattr(s.driver, f) for f in (*_DRIVER_NUMBERS[3:], "lc_discretionary")
                      if getattr(s.driver, f) != getattr(_DRIVER_DEFAULTS, f)}},
        "variability": {"demand_level_sd": s.variability.demand_level_sd,
                        "peak_shift_sd_s": s.variability.peak_shift_sd_s},
        "probes": {f: getattr(s.probes, f) for f in (
            "penetration", "period_s", "position_sigma_m", "speed_sigma_kmh",
            "heading_sigma_deg", "dropout", "latency_fixed_s", "latency_jitter_s",
            "anonymisation", "rotation_s", "trim_m")},
        "vehicle_class": [
            {**{f: getattr(c, f) for f in ("name", "share", "length_m", "max_accel_mps2",
                                           "comfortable_decel_mps2", "time_headway_s",
                                           "min_gap_m", "speed_factor_mean",
                                           "speed_factor_sd", "emission_class", "mass_kg",
                                           "width_m", "height_m")},
             # Written only when set, so that older scenarios keep their hash.
             **({"emergency_decel_mps2": c.emergency_decel_mps2}
                if c.emergency_decel_mps2 is not None else {}),
             **({"mode": c.mode} if c.mode != "motor" else {}),
             **({"occupancy": c.occupancy} if c.occupancy != 1.0 else {}),
             **({"max_speed_kmh": c.max_speed_kmh} if c.max_speed_kmh is not None else {})}
            for c in s.vehicle_classes],
        "junction": [],
        "link": [],
        "demand": {"interval_s": s.demand.interval_s,
                   "flow": [{"link": f.link, "movement": f.movement,
                             "flow_vph": list(f.flow_vph)} for f in s.demand.flows]},
    }
    for j in s.junctions:
        ig: dict[str, dict[str, float]] = {}
        for (a, b), v in j.intergreen_s.items():
            ig.setdefault(a, {})[b] = v
        out["junction"].append({
            "id": j.id, "name": j.name, "lat_deg": j.lat_deg, "lon_deg": j.lon_deg,
            "default_program": j.default_program, "groups": list(j.groups),
            **({"relief_program": j.relief_program} if j.relief_program else {}),
            **({"coordination_group": j.coordination_group} if j.coordination_group else {}),
            "timing": {"amber_s": j.timing.amber_s, "red_amber_s": j.timing.red_amber_s,
                       "min_green_s": j.timing.min_green_s},
            "arm": [{"id": a.id, "bearing_deg": a.bearing_deg, "name": a.name} for a in j.arms],
            "intergreen_s": ig,
            "program": [{"name": p.name, "cycle_s": p.cycle_s, "offset_s": p.offset_s,
                         "greens": {g: list(w) for g, w in p.greens.items()}}
                        for p in j.programs],
            **({"crossing": [{"arm": c.arm, "group": c.group, "length_m": c.length_m,
                              "flow_pph": list(c.flow_pph), "pushbutton": c.pushbutton,
                              "island": c.island} for c in j.crossings]}
               if j.crossings else {}),
        })
    for lk in s.links:
        d: dict[str, Any] = {"id": lk.id, "name": lk.name, "length_m": lk.length_m,
                             "speed_limit_kmh": lk.speed_limit_kmh,
                             "lane_width_m": lk.lane_width_m}
        if lk.from_arm is not None:
            d["from"] = lk.from_arm
        if lk.to_arm is not None:
            d["to"] = lk.to_arm
        if lk.turn_shares:
            d["turn_shares"] = dict(lk.turn_shares)
        if lk.mode != "motor":
            d["mode"] = lk.mode
        d["lane"] = [{"movements": list(ln.movements),
                      **({"group": ln.group} if ln.group else {}),
                      **({"length_m": ln.length_m} if ln.length_m is not None else {})}
                     for ln in lk.lanes]
        if lk.give_way:
            d["give_way"] = [{"movement": g.movement, "to": list(g.to),
                              **{f: getattr(g, f) for f in ("critical_gap_s", "follow_up_s")
                                 if getattr(g, f) is not None}} for g in lk.give_way]
        if lk.upstream_signal is not None:
            u = lk.upstream_signal
            d["upstream_signal"] = {f: getattr(u, f) for f in (
                "cycle_s", "green_s", "offset_s", "distance_m", "saturation_flow_vph",
                "alpha", "beta")}
        out["link"].append(d)
    if s.pedestrians != PedestrianSettings():
        out["pedestrians"] = {f: getattr(s.pedestrians, f) for f in _PED_NUMBERS}
    if s.stretches:
        out["stretch"] = [{"id": st.id, "links": list(st.links), "start_m": st.start_m,
                           **({"end_m": st.end_m} if st.end_m is not None else {}),
                           "description": st.description} for st in s.stretches]
    if s.schedule:
        out["schedule"] = [{"at": format_clock(e.at_clock_s), "program": e.program}
                           for e in s.schedule]
    out.update(_evaluation_to_dict(s))
    return out


def dump_scenario(s: Scenario) -> str:
    """TOML text that :func:`parse_scenario` reads back to an equal scenario."""
    return tomli_w.dumps(scenario_to_dict(s))


def scenario_hash(s: Scenario) -> str:
    """First 16 hex digits of the SHA-256 of the scenario's canonical content.

    Comments and formatting of the file do not change it; any value does.
    """
    canon = json.dumps(scenario_to_dict(s), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]
