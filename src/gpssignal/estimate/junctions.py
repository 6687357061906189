"""The estimator's junction list (CSV) and the scenario generated for each row.

Format (docs/estimate.md): one row per junction, columns

``name, municipality, lat, lon, cycle_s, period, peak_hour`` (required),
``monitored_arm, note`` (optional), and per arm ``A`` in ``N, E, S, W``:
``A_lanes`` (approach lanes; 0 or empty = no approach from that arm),
``A_limit_kmh`` (default 50), ``A_left_vph, A_through_vph, A_right_vph``
(peak-hour volumes, default 0).

A row is turned into a scenario with the assumptions of the template
(``scenarios/estimate_template.toml``): a point junction with arms at the
four bearings, approach and exit links, a two-phase plan split by Webster at
the period's flows ("normal") and a relief program ("peak"), a 15-min
profile around the peak hour, and the base scenario's fleet, drivers,
variability and probe feed. Errors name the row (1-based data row, as a
spreadsheet shows it after the header) and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from gpssignal.errors import EstimateInputError, ScenarioError
from gpssignal.estimate.plans import FilePlan, plan_programs, read_program_file
from gpssignal.model.io import (
    format_clock,
    parse_clock,
    parse_scenario,
    read_scenario,
    scenario_to_dict,
)
from gpssignal.model.scenario import MOVEMENTS, Scenario

__all__ = [
    "ARMS",
    "MAX_ID_CHARS",
    "REQUIRED",
    "JunctionSpec",
    "RowError",
    "Template",
    "build_scenario",
    "bundled_scenario",
    "one_line",
    "parse_junctions",
    "read_junctions",
    "read_template",
]

ARMS = {"N": 0.0, "E": 90.0, "S": 180.0, "W": 270.0}
REQUIRED = ["name", "municipality", "lat", "lon", "cycle_s", "period", "peak_hour"]
OPTIONAL = ["monitored_arm", "note", "green_ns_s", "green_ew_s", "program_file"]
ARM_COLUMNS = [f"{a}_{c}" for a in ARMS for c in ("lanes", "limit_kmh", "left_vph",
                                                    "through_vph", "right_vph")]
#: Longest junction id [characters]: it names files, and file systems allow
#: 255 bytes a name; 64 leaves room for suffixes and stays readable.
MAX_ID_CHARS = 64
#: Longest user text copied into a generated scenario's header comment [characters].
MAX_COMMENT_CHARS = 200


def one_line(value: object, limit: int = MAX_COMMENT_CHARS) -> str:
    """Return ``value`` as one line of plain text, safe inside a TOML comment.

    Line breaks (including Unicode line and paragraph separators) and other
    control or format characters become spaces, runs of spaces collapse, and
    the text is cut at ``limit`` characters (ending in ``…``), so a note can
    neither end the comment nor inject TOML.
    """
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class RowError(EstimateInputError):
    """A bad row: names the row and, for each problem, the column, value and reason."""

    def __init__(self, row: int, name: str, column: str, value: Any, reason: str,
                 more: Sequence[tuple[str, Any, str]] = ()) -> None:
        self.row, self.name, self.column = row, name, column
        self.problems = [(column, value, reason), *more]
        super().__init__(f"row {row} ({one_line(name, MAX_ID_CHARS) or '?'}): " + "; ".join(
            f"{c} = {v!r}: {one_line(why, 10 * MAX_COMMENT_CHARS)}"
            for c, v, why in self.problems))


@dataclass(frozen=True)
class JunctionSpec:
    """One validated row."""

    row: int
    name: str
    municipality: str
    lat: float
    lon: float
    cycle_s: float
    period: tuple[float, float]
    peak_start: float
    monitored_arm: str
    note: str
    lanes: dict[str, int]
    limit_kmh: dict[str, float]
    volumes: dict[str, dict[str, float]] = field(default_factory=dict)
    #: The junction's current plan from the list: green of the N-S and the E-W
    #: phase [s]; ``None``: not given (a Webster split is assumed and said).
    plan_green_s: tuple[float, float] | None = None
    #: The current plan from a program file (column ``program_file``): the
    #: file as the list names it, and its cycle [s] and green window per arm
    #: (:mod:`gpssignal.estimate.plans`); ``None``: no program file.
    plan_file: str = ""
    plan_windows: FilePlan | None = None

    @property
    def plan_label(self) -> str:
        """Say where the existing plan comes from (``junctions.csv``'s ``plan``)."""
        if self.plan_windows is not None:
            return f"program file {one_line(self.plan_file, MAX_ID_CHARS)}"
        return "from the list" if self.plan_green_s else "Webster split (assumed)"

    @property
    def id(self) -> str:
        """Return the junction id: the name in lower-case ASCII, or ``row<n>``.

        The id names the junction's files (``scenarios/<id>.toml``), so it is
        at most :data:`MAX_ID_CHARS` long: a longer one is cut and ends in a
        hash of the whole name, so distinct names keep distinct ids.
        """
        ascii_name = unicodedata.normalize("NFKD", self.name.replace("ø", "o").replace(
            "Ø", "O").replace("æ", "ae").replace("Æ", "Ae")).encode("ascii", "ignore").decode()
        jid = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_") or f"row{self.row}"
        if len(jid) <= MAX_ID_CHARS:
            return jid
        digest = hashlib.sha256(self.name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        return f"{jid[:MAX_ID_CHARS - 11].rstrip('_')}_{digest}"


@dataclass(frozen=True)
class Template:
    """The estimator's assumptions (``scenarios/estimate_template.toml``)."""

    path: Path
    base: Scenario
    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        """Return the template value ``key``."""
        return self.values[key]


def bundled_scenario(name: str) -> Path:
    """Return the path of a scenario file shipped with the package (``scenarios/NAME``).

    The files of the repository's ``scenarios/`` folder are package data, so
    an installed wheel has them too.
    """
    return Path(str(resources.files("gpssignal") / "scenarios" / name))


def read_template(path: str | Path | None = None) -> Template:
    """Read the estimator's template (TOML) at ``path`` (default: the bundled one)."""
    p = Path(path) if path is not None else bundled_scenario("estimate_template.toml")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"template = {str(p)!r}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: TOML syntax: {exc}") from None
    t = raw.get("template", {})
    need = ["base_scenario", "approach_length_m", "exit_length_m", "stretch_length_m",
            "amber_s", "red_amber_s", "min_green_s", "intergreen_s", "saturation_flow_vphpl",
            "relief_shift_s", "peak_hour_profile", "period_edge_factor", "busy_day_factor",
            "undersaturated_x"]
    for k in need:
        if k not in t:
            raise ScenarioError(f"{p}: template.{k} is missing")
    for k, lo, hi in (("busy_day_factor", 1.0, 2.0), ("undersaturated_x", 0.1, 1.0)):
        if not (isinstance(t[k], (int, float)) and not isinstance(t[k], bool)
                and lo <= t[k] <= hi):
            raise ScenarioError(f"{p}: template.{k} = {t[k]!r}: must be in [{lo:g}, {hi:g}]")
    if len(t["peak_hour_profile"]) != 4:
        raise ScenarioError(f"{p}: template.peak_hour_profile = {t['peak_hour_profile']!r}: "
                            "needs 4 quarter-hour factors")
    if t["stretch_length_m"] >= t["approach_length_m"]:
        raise ScenarioError(f"{p}: template.stretch_length_m = {t['stretch_length_m']}: must "
                            "be shorter than approach_length_m")
    base = read_scenario(p.parent / t["base_scenario"])
    return Template(path=p, base=base, values=t)


def _target(arm: str, movement: str) -> str:
    """Return the arm a movement from ``arm`` leaves by (right-hand traffic)."""
    turn = {"through": 180.0, "right": 270.0, "left": 90.0}[movement]
    b = (ARMS[arm] + turn) % 360.0
    return next(a for a, x in ARMS.items() if abs(x - b) < 1e-9)


#: Junctions further than this from the template's base scenario are refused
#: [km]. The template's fleet, drivers, time zone and working days are those
#: of its base scenario (Danish); Denmark spans about 450 km, so 500 km keeps
#: every Danish junction and refuses a position whose latitude and longitude
#: were swapped (55.6, 12.4 read as 12.4, 55.6 lies ~5,000 km away).
REGION_RADIUS_KM = 500.0
#: Mean Earth radius [km] (haversine distance).
EARTH_RADIUS_KM = 6371.0
#: Columns that hold whole counts or volumes, where ``1.499`` or ``1,499``
#: could be a thousands separator: such a value (1-3 digits, separator,
#: exactly 3 digits) is refused as ambiguous.
COUNT_COLUMNS = {c for c in ARM_COLUMNS if c.endswith(("_vph", "_lanes"))} | {"cycle_s"}
#: Time left per change of phase by a plan from the list [s]: at least the
#: Danish amber (4 s), at most what a wide junction's clearing needs (20 s).
PLAN_INTERGREEN_S = (4.0, 20.0)
#: Encodings tried, in order, for a junction list without a byte-order mark.
ENCODINGS = ("utf-8", "cp1252")


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance [km] (haversine, spherical Earth: ±0.5 %, ample here)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _number(text: str) -> float | str:
    """Return ``text`` as a number (decimal point or comma), or the reason it is not one."""
    t = text.replace("\u2212", "-").replace(" ", "")
    if t.count(",") + t.count(".") > 1:
        return "not a number (thousands separators are not allowed)"
    try:
        return float(t.replace(",", "."))
    except ValueError:
        return "not a number"


class _Row:
    """One row of the junction list: its values, checked, and every problem found."""

    def __init__(self, k: int, r: dict[str, str]) -> None:
        self.k, self.r = k, r
        self.name = (r.get("name") or "").strip()
        self.problems: list[tuple[str, Any, str]] = []

    def fail(self, col: str, val: Any, why: str) -> None:
        """Note a problem of column ``col`` (every problem of a row is reported at once)."""
        self.problems.append((col, val, why))

    def error(self) -> RowError | None:
        """Return the row's error with all its problems, or None."""
        if not self.problems:
            return None
        (col, val, why), *more = self.problems
        return RowError(self.k, self.name, col, val, why, more)

    def num(self, col: str, default: float | None = None, lo: float = -math.inf,
            hi: float = math.inf) -> float:
        """Return column ``col`` as a number in ``[lo, hi]`` (``default`` if empty, NaN if bad)."""
        text = (self.r.get(col) or "").strip()
        if not text:
            if default is None:
                self.fail(col, text, "required")
                return math.nan
            return default
        x = _number(text)
        if isinstance(x, str):
            self.fail(col, text, x)
            return math.nan
        if col in COUNT_COLUMNS and re.fullmatch(r"\d{1,3}[.,]\d{3}", text):
            self.fail(col, text, f"ambiguous: {text.replace(',', '.')} or "
                      f"{text.replace(',', '').replace('.', '')}? write whole numbers without "
                      "a thousands separator")
            return math.nan
        if not (math.isfinite(x) and lo <= x <= hi):
            self.fail(col, text, f"must be between {lo:g} and {hi:g}")
            return math.nan
        return x


def _row_period(row: _Row) -> tuple[float, float, float]:
    """Return the period's start and end and the peak hour's start [clock s] (NaN if bad)."""
    r = row.r
    per = (r.get("period") or "").strip()
    nan = (math.nan, math.nan, math.nan)
    m = re.fullmatch(r"(\d{1,2}[:.]\d{2})\s*[-–]\s*(\d{1,2}[:.]\d{2})", per)
    if not m:
        if per:
            row.fail("period", per, "expected HH:MM-HH:MM, e.g. 06:00-09:00")
        return nan
    try:
        a = parse_clock(m.group(1).replace(".", ":"), "period")
        b = parse_clock(m.group(2).replace(".", ":"), "period")
    except ScenarioError as exc:
        row.fail("period", per, str(exc))
        return nan
    if b <= a or (b - a) % 900 or (b - a) < 3600:
        row.fail("period", per, "must be whole quarter hours and at least one hour long")
        return nan
    text = (r.get("peak_hour") or "").strip()
    try:
        peak = parse_clock(text.replace(".", ":"), "peak_hour")
    except ScenarioError as exc:
        if text:
            row.fail("peak_hour", text, str(exc))
        return nan
    if not (a <= peak and peak + 3600 <= b) or (peak - a) % 900:
        row.fail("peak_hour", text, f"the hour from it must lie inside {per} on a quarter hour")
        return nan
    return a, b, peak


def _row_arms(row: _Row) -> tuple[dict[str, int], dict[str, float],
                                  dict[str, dict[str, float]]]:
    """Return each arm's approach lanes, speed limit and volumes by movement."""
    r = row.r
    lanes, limits, vols = {}, {}, {}
    for arm in ARMS:
        n = row.num(f"{arm}_lanes", 0.0, 0, 6)
        if math.isfinite(n) and n != int(n):
            row.fail(f"{arm}_lanes", r.get(f"{arm}_lanes"), "must be a whole number")
        lanes[arm] = int(n) if math.isfinite(n) else 0
        limits[arm] = row.num(f"{arm}_limit_kmh", 50.0, 10, 130)
        vols[arm] = {mv: row.num(f"{arm}_{mv}_vph", 0.0, 0, 5000) for mv in MOVEMENTS}
        if not math.isfinite(n) or not all(map(math.isfinite, vols[arm].values())):
            continue  # already reported; the checks below would only repeat it
        if lanes[arm] == 0 and any(vols[arm].values()):
            row.fail(f"{arm}_lanes", r.get(f"{arm}_lanes", ""), f"arm {arm} has volumes "
                     "but no approach lanes")
        if lanes[arm] and not any(vols[arm].values()):
            row.fail(f"{arm}_through_vph", r.get(f"{arm}_through_vph", ""),
                     f"arm {arm} has lanes but no volume")
    return lanes, limits, vols


def _row_position(row: _Row, region: tuple[float, float] | None) -> tuple[float, float]:
    """Return the junction's latitude and longitude [deg], checked against ``region``.

    Beyond the ranges [-90, 90] and [-180, 180], a position more than
    :data:`REGION_RADIUS_KM` from ``region`` (the template's base junction)
    is refused, and called swapped when the swapped pair would lie inside.
    """
    lat = row.num("lat", lo=-90, hi=90)
    lon = row.num("lon", lo=-180, hi=180)
    if region is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return lat, lon
    d = _distance_km(lat, lon, *region)
    if d <= REGION_RADIUS_KM:
        return lat, lon
    text = f"{row.r.get('lat', '').strip()}, {row.r.get('lon', '').strip()}"
    where = f"the template's region ({region[0]:.2f}, {region[1]:.2f})"
    if abs(lon) <= 90 and _distance_km(lon, lat, *region) <= REGION_RADIUS_KM:
        row.fail("lat/lon", text, f"latitude and longitude look swapped ({d:,.0f} km from "
                 f"{where}; swapped, the junction would lie inside it)")
    else:
        row.fail("lat/lon", text, f"{d:,.0f} km from {where}, more than "
                 f"{REGION_RADIUS_KM:g} km: the template's fleet, time zone and working days "
                 "do not apply there")
    return math.nan, math.nan


def _row_spec(k: int, r: dict[str, str], region: tuple[float, float] | None = None,
              folder: Path | None = None) -> JunctionSpec | RowError:
    """Check one row of the junction list; return it as a spec, or its error.

    ``folder``: where a ``program_file`` named in the row is looked for
    (the list's folder; default: the working directory).
    """
    row = _Row(k, r)
    for col in ("name", "municipality", "period", "peak_hour"):
        if not (r.get(col) or "").strip():
            row.fail(col, r.get(col, ""), "required")
    lat, lon = _row_position(row, region)
    file_text = (r.get("program_file") or "").strip()
    file_plan = _row_program_file(row, file_text, folder) if file_text else None
    if file_plan is not None and not (r.get("cycle_s") or "").strip():
        cycle = file_plan[0]    # the file gives the cycle
    else:
        cycle = row.num("cycle_s", lo=30, hi=200)
    if file_plan is not None and math.isfinite(cycle) and cycle != file_plan[0]:
        row.fail("cycle_s", r.get("cycle_s", ""), f"the program file {file_text!r} has "
                 f"cycle_s = {file_plan[0]:g}; leave cycle_s empty or give the same")
    a, b, peak = _row_period(row)
    lanes, limits, vols = _row_arms(row)
    present = {a for a in ARMS if lanes[a]}
    if not ({"N", "S"} & present and {"E", "W"} & present):
        row.fail("N_lanes/E_lanes", "", "needs approaches on both axes (N-S and E-W) "
                 "for a two-phase plan")
    plan = _row_plan(row, cycle)
    if file_text and plan is not None:
        row.fail("program_file", file_text, "give the current plan either as green_ns_s/"
                 "green_ew_s or as a program file, not both")
    mon = (r.get("monitored_arm") or "").strip().upper()
    if mon and mon not in present:
        row.fail("monitored_arm", mon, f"must be an arm with an approach: "
                 f"{', '.join(sorted(present)) or 'none'}")
    error = row.error()
    if error is not None:
        return error
    mon = mon or max(sorted(present), key=lambda x: sum(vols[x].values()))
    return JunctionSpec(row=k, name=row.name, municipality=r["municipality"].strip(), lat=lat,
                        lon=lon, cycle_s=cycle, period=(a, b), peak_start=peak,
                        monitored_arm=mon, note=(r.get("note") or "").strip(), lanes=lanes,
                        limit_kmh=limits, volumes=vols, plan_green_s=plan,
                        plan_file=file_text if file_plan else "", plan_windows=file_plan)


def _row_program_file(row: _Row, text: str, folder: Path | None) -> FilePlan | None:
    """Return the plan of the row's program file (relative to ``folder``), or note why not."""
    base = (folder or Path.cwd()).resolve()
    path = base / text
    try:
        # Only files the list comes with: a row (perhaps from a third party) must
        # not make the estimate read elsewhere (/etc/..., ../../secret.toml).
        inside = "\0" not in text and path.resolve().is_relative_to(base)
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop
        inside = False
    if Path(text).is_absolute() or not inside:
        row.fail("program_file", text, "must be a path inside the junction list's folder "
                 f"({base}); copy the file there")
        return None
    try:
        return read_program_file(path)
    except ScenarioError as exc:
        row.fail("program_file", text, str(exc))
    except OSError as exc:
        row.fail("program_file", text, f"cannot be read ({exc.strerror or exc})")
    return None


def _row_plan(row: _Row, cycle: float) -> tuple[float, float] | None:
    """Return the current plan's N-S and E-W greens [s], if the row gives them.

    Both or neither; each at least the Danish minimum green (6 s), and the two
    greens plus the two intergreens (cycle − greens) must leave 4-20 s per
    change of phase (the template's 6 s intergreen is only a default).
    """
    ns_text = (row.r.get("green_ns_s") or "").strip()
    ew_text = (row.r.get("green_ew_s") or "").strip()
    if not ns_text and not ew_text:
        return None
    if not (ns_text and ew_text):
        col = "green_ew_s" if ns_text else "green_ns_s"
        row.fail(col, "", "give both green_ns_s and green_ew_s (the current plan), or neither")
        return None
    ns, ew = row.num("green_ns_s", lo=6, hi=194), row.num("green_ew_s", lo=6, hi=194)
    if not (math.isfinite(ns) and math.isfinite(ew) and math.isfinite(cycle)):
        return None
    change = (cycle - ns - ew) / 2
    if not PLAN_INTERGREEN_S[0] <= change <= PLAN_INTERGREEN_S[1]:
        row.fail("green_ns_s/green_ew_s", f"{ns:g}, {ew:g}",
                 f"with cycle_s = {cycle:g} they leave {change:g} s per change of phase; "
                 f"it must be {PLAN_INTERGREEN_S[0]:g}-{PLAN_INTERGREEN_S[1]:g} s (amber "
                 "included)")
        return None
    return ns, ew


def _decode(data: bytes, source: str) -> str:
    """Return the text of a junction list: UTF-8 (with or without BOM), UTF-16 or cp1252."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
                       (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise EstimateInputError(f"JUNCTIONS = {source!r}: not readable as {codec} "
                                         f"(byte {exc.start})") from None
    for codec in ENCODINGS:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise EstimateInputError(f"JUNCTIONS = {source!r}: neither UTF-8 nor Windows-1252 text "
                             "(save it as CSV UTF-8)")


def _xlsx_cell(value: object) -> str:
    """Return a spreadsheet cell as the text a CSV export would hold."""
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, dt.time | dt.datetime):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_rows(path: Path) -> list[list[str]]:
    """Return the first sheet of an ``.xlsx`` workbook as rows of text."""
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise EstimateInputError(f"JUNCTIONS = {str(path)!r}: not a readable .xlsx workbook "
                                 f"({one_line(exc)})") from None
    try:
        sheet = wb.worksheets[0]
        return [[_xlsx_cell(v) for v in r] for r in sheet.iter_rows(values_only=True)]
    finally:
        wb.close()


def parse_junctions(text: str, source: str = "<text>") -> list[list[str]]:
    """Return the rows of a junction list's CSV text (header first), comments dropped.

    The separator is ``,`` or ``;``, whichever the header line holds more of
    (a Danish spreadsheet's CSV export uses ``;``, with decimal commas).
    """
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    header = next((ln for ln in lines if ln.strip()), "")
    sep = ";" if header.count(";") > header.count(",") else ","
    try:
        return [r for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)]
    except csv.Error as exc:
        raise EstimateInputError(f"JUNCTIONS = {source!r}: not a readable CSV "
                                 f"({one_line(exc)})") from None


def read_junctions(path: str | Path, template: Template | None = None
                   ) -> tuple[list[JunctionSpec], list[RowError]]:
    """Read the junction list (CSV or ``.xlsx``); bad rows are returned as errors, not raised.

    CSV: ``,`` or ``;`` separated, UTF-8 (with or without BOM), UTF-16 or
    Windows-1252; numbers with a decimal point or a decimal comma. ``.xlsx``:
    the first sheet. Each bad row's error lists every problem of the row.
    With ``template``, positions further than :data:`REGION_RADIUS_KM` from
    its base scenario are refused (swapped latitude and longitude too), and
    each row's scenario is built, so a plan that does not fit is a bad row. A
    ``program_file`` is looked for relative to the list's folder.

    Raises
    ------
    EstimateInputError
        If the file cannot be read, lacks a required column, has an unknown
        one, or holds no junction row.
    """
    p = Path(path)
    src = str(p)
    try:
        rows = (_xlsx_rows(p) if p.suffix.lower() in (".xlsx", ".xlsm")
                else parse_junctions(_decode(p.read_bytes(), src), src))
    except FileNotFoundError:
        raise EstimateInputError(f"JUNCTIONS = {src!r}: no such file") from None
    except IsADirectoryError:
        raise EstimateInputError(f"JUNCTIONS = {src!r}: is a folder") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    cols = [c.strip().lstrip("\ufeff") for c in (rows[0] if rows else [])]
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise EstimateInputError(f"JUNCTIONS = {src!r}: missing column(s) {', '.join(missing)}"
                                 f" (header read: {one_line(', '.join(cols), 120) or 'none'}; "
                                 "separators , or ;)")
    unknown = [c for c in cols if c not in REQUIRED + OPTIONAL + ARM_COLUMNS]
    if unknown:
        raise EstimateInputError(f"JUNCTIONS = {src!r}: unknown column(s) "
                                 f"{one_line(', '.join(unknown))} "
                                 "(docs/estimate.md lists the columns)")
    if len(rows) < 2:
        raise EstimateInputError(f"JUNCTIONS = {src!r}: no junction rows (only the header)")
    region = None
    if template is not None and template.base.junctions:
        js = template.base.junctions
        region = (sum(j.lat_deg for j in js) / len(js), sum(j.lon_deg for j in js) / len(js))
    specs, errors = [], []
    seen: dict[str, int] = {}
    for k, values in enumerate(rows[1:], start=1):
        rec = dict(zip(cols, [*values, *[""] * (len(cols) - len(values))], strict=False))
        if len(values) > len(cols) and any(v.strip() for v in values[len(cols):]):
            errors.append(RowError(k, rec.get("name", ""), "(row)", values[len(cols):],
                                   f"{len(values)} cells for {len(cols)} columns"))
            continue
        spec = _row_spec(k, rec, region, p.parent)
        if isinstance(spec, RowError):
            errors.append(spec)
        elif spec.id in seen:
            errors.append(RowError(k, spec.name, "name", spec.name,
                                   f"same junction id as row {seen[spec.id]}"))
        else:
            seen[spec.id] = k
            if template is not None:
                # Build it now, so that a plan that does not fit the junction (a
                # program file's, a cycle too short) is reported with the other
                # bad rows before any simulation.
                try:
                    build_scenario(spec, template)
                except RowError as exc:
                    errors.append(exc)
                    continue
            specs.append(spec)
    return specs, errors


def _lanes_for(arm: str, n: int, vols: dict[str, float]) -> list[list[str]]:
    """Movements of each lane, kerb lane first."""
    mv = [m for m in ("right", "through", "left") if vols[m] > 0]
    if n == 1 or len(mv) == 1:
        return [mv] * n
    if "through" not in mv:
        return [["right"]] * (n - 1) + [["left"]] if "left" in mv else [mv] * n
    lanes = [["through"] for _ in range(n)]
    if "right" in mv:
        lanes[0] = ["through", "right"]
    if "left" in mv:
        if n >= 3:
            lanes[-1] = ["left"]
        else:
            lanes[-1] = lanes[-1] + ["left"]
    return lanes


def _two_phase(spec: JunctionSpec, phase_a: list[str], phase_b: list[str],
               axis: tuple[str, str], y_a: float, y_b: float, cyc: float, ig: float,
               gmin: float, shift: float
               ) -> tuple[dict[str, list[float]], dict[str, list[float]],
                          dict[str, dict[str, float]], float]:
    """Return the two-phase ``normal`` and ``peak`` greens, intergreens and relief shift.

    ``normal`` is the list's ``green_ns_s``/``green_ew_s`` if given, else
    Webster's split of the critical flow ratios ``y_a``, ``y_b`` of the phases.
    """
    if spec.plan_green_s is not None:   # the current plan, from the list
        ns, ew = spec.plan_green_s
        ig = (cyc - ns - ew) / 2
        ga = ns if axis == ("N", "S") else ew
    total = cyc - 2 * ig
    if total < 2 * gmin:
        raise RowError(spec.row, spec.name, "cycle_s", spec.cycle_s,
                       f"too short for two phases (2 × {ig:g} s intergreen + 2 × {gmin:g} s "
                       "min green)")
    if spec.plan_green_s is None:       # assumed: Webster's split of the critical flow ratios
        ga = min(max(round(total * y_a / (y_a + y_b)), gmin), total - gmin)
    ga_r = (min(ga + shift, total - gmin) if spec.monitored_arm in phase_a
            else max(ga - shift, gmin))

    def greens(g_a: float) -> dict[str, list[float]]:
        o = min(3.0, g_a / 2)          # cycle second 0 lies 3 s into phase A's green
        out: dict[str, list[float]] = {a: [(cyc - o) % cyc, g_a - o] for a in phase_a}
        out.update({b: [g_a - o + ig, cyc - o - ig] for b in phase_b})
        return out

    intergreen = {g: {h: ig for h in (phase_b if g in phase_a else phase_a)}
                  for g in sorted(phase_a + phase_b, key=list(ARMS).index)}
    return greens(ga), greens(ga_r), intergreen, abs(ga_r - ga)


def build_scenario(spec: JunctionSpec, tpl: Template) -> tuple[Scenario, str]:
    """Return the scenario of one row, and its TOML text (with a header of its origin).

    Raises
    ------
    RowError
        If the generated scenario is invalid (e.g. a green below the minimum).
    """
    t = tpl.values
    jid = spec.id
    present = [a for a in ARMS if spec.lanes[a]]
    exits = sorted({_target(a, m) for a in present for m in MOVEMENTS
                    if spec.volumes[a][m] > 0}, key=list(ARMS).index)
    arms_used = sorted(set(present) | set(exits), key=list(ARMS).index)
    ns = sum(sum(spec.volumes[a].values()) for a in ("N", "S") if a in present)
    ew = sum(sum(spec.volumes[a].values()) for a in ("E", "W") if a in present)
    axis: tuple[str, str] = ("N", "S") if ns >= ew else ("E", "W")
    phase_a: list[str] = [a for a in axis if a in present]
    phase_b = [a for a in present if a not in phase_a]
    s = float(t["saturation_flow_vphpl"])

    def y(arms: list[str]) -> float:
        return max(sum(spec.volumes[a].values()) / (spec.lanes[a] * s) for a in arms)

    cyc, ig, gmin = spec.cycle_s, float(t["intergreen_s"]), float(t["min_green_s"])
    shift = float(t["relief_shift_s"])
    if spec.plan_windows is not None:   # the current plan, from a program file
        try:
            normal, peak, intergreen, relief_s = plan_programs(
                spec.plan_windows, present, spec.monitored_arm, shift, gmin,
                float(t["amber_s"]), float(t["red_amber_s"]), PLAN_INTERGREEN_S)
        except ScenarioError as exc:
            raise RowError(spec.row, spec.name, "program_file", spec.plan_file,
                           str(exc)) from None
    else:
        normal, peak, intergreen, relief_s = _two_phase(spec, phase_a, phase_b, axis, y(phase_a),
                                                        y(phase_b), cyc, ig, gmin, shift)

    base = scenario_to_dict(tpl.base)
    a0, a1 = spec.period
    n = int((a1 - a0) // 900)
    k0 = int((spec.peak_start - a0) // 900)
    edge = float(t["period_edge_factor"])
    prof = []
    for k in range(n):
        if k0 <= k < k0 + 4:
            prof.append(float(t["peak_hour_profile"][k - k0]))
        elif k < k0:
            prof.append(edge + (1 - edge) * k / k0)
        else:
            m = n - 1 - (k0 + 3)
            prof.append(1 - (1 - edge) * (k - k0 - 3) / m)
    links: list[dict[str, Any]] = []
    flows = []
    approach_m = float(t["approach_length_m"])
    for a in present:
        lanes = _lanes_for(a, spec.lanes[a], spec.volumes[a])
        links.append({"id": f"{a}_in", "name": f"approach from arm {a}", "to": f"{jid}.{a}",
                      "length_m": approach_m, "speed_limit_kmh": spec.limit_kmh[a],
                      "lane": [{"movements": ln, "group": a} for ln in lanes]})
        for mv in MOVEMENTS:
            q = spec.volumes[a][mv]
            if q > 0:
                flows.append({"link": f"{a}_in", "movement": mv,
                              "flow_vph": [round(q * f, 1) for f in prof]})
    for a in exits:
        nl = max(1, min(2, max(spec.lanes.values())))
        links.append({"id": f"{a}_out", "name": f"exit by arm {a}", "from": f"{jid}.{a}",
                      "length_m": float(t["exit_length_m"]),
                      "speed_limit_kmh": spec.limit_kmh[a] if spec.lanes[a] else 50.0,
                      "lane": [{"movements": []} for _ in range(nl)]})
    doc = {
        "scenario": {
            "name": jid,
            "description": f"Generated by gpssignal estimate from row {spec.row} of the "
                           f"junction list: {spec.name} ({spec.municipality}). Geometry and "
                           "volumes from the list; everything else from the template.",
            "start": format_clock(a0), "duration_s": a1 - a0,
            "drain_s": base["scenario"]["drain_s"], "step_s": base["scenario"]["step_s"],
            "peak": [format_clock(spec.peak_start), format_clock(spec.peak_start + 3600)],
            "working_days_per_year": base["scenario"]["working_days_per_year"],
            "seed": 1, "date": base["scenario"]["date"],
            "timezone": base["scenario"]["timezone"],
        },
        "probes": base["probes"], "driver": base["driver"],
        "variability": base["variability"], "vehicle_class": base["vehicle_class"],
        "junction": [{
            "id": jid, "name": spec.name, "lat_deg": spec.lat, "lon_deg": spec.lon,
            "default_program": "normal", "relief_program": "peak", "groups": present,
            "arm": [{"id": a, "bearing_deg": ARMS[a]} for a in arms_used],
            "timing": {"amber_s": t["amber_s"], "red_amber_s": t["red_amber_s"],
                       "min_green_s": t["min_green_s"]},
            "intergreen_s": intergreen,
            "program": [
                {"name": "normal", "cycle_s": cyc, "offset_s": 0, "greens": normal},
                {"name": "peak", "cycle_s": cyc, "offset_s": 0, "greens": peak},
            ],
        }],
        "link": links,
        "demand": {"interval_s": 900, "flow": flows},
        "stretch": [{"id": f"{spec.monitored_arm}_approach", "links": [f"{spec.monitored_arm}_in"],
                     "start_m": approach_m - float(t["stretch_length_m"]), "end_m": approach_m,
                     "description": f"last {t['stretch_length_m']:g} m before the stop line "
                                    f"of arm {spec.monitored_arm} (monitored)"}],
    }
    name, mun, note = one_line(spec.name), one_line(spec.municipality), one_line(spec.note)
    plan_source = ("the current plan from the list" if spec.plan_green_s
                   else f"the current plan from {one_line(spec.plan_file)}"
                   if spec.plan_windows is not None else "two-phase Webster split")
    header = (f"# Generated by `gpssignal estimate` from {name!r} (row {spec.row}, "
              f"{mun}).\n# Lanes, limits, peak-hour volumes, cycle, period and "
              f"position: the junction list{'; ' + note if note else ''}.\n"
              f"# Everything else is assumed: see {tpl.path.name} ({plan_source} "
              f"'normal' with phase A = {'+'.join(phase_a)}, relief 'peak' = "
              f"{relief_s:g} s more for arm {spec.monitored_arm}'s phase;\n# 15-min "
              f"profile factors {[round(f, 3) for f in prof]} of the peak-hour volumes) and "
              f"{tpl.base.name} (fleet, drivers, variability, probes).\n")
    text = header + tomli_w.dumps(doc)
    try:
        sc = parse_scenario(text)
    except ScenarioError as exc:
        raise RowError(spec.row, spec.name, "(generated scenario)", spec.name, str(exc)) \
            from None
    return sc, text
