"""Probe data files: the schema, CSV and Parquet, and SUMO FCD import.

Schema (one row per GPS point):

| column | type | meaning |
|---|---|---|
| ``time_sent`` | timestamp, UTC | when the position was measured |
| ``time_received`` | timestamp, UTC | when it reached the controller (≥ sent); |
| | | optional when reading: defaults to ``time_sent`` |
| ``lat_deg``, ``lon_deg`` | float | WGS84 position [deg] |
| ``speed_kmh`` | float | speed [km/h], 0-250 |
| ``heading_deg`` | float | direction of travel, clockwise from north [deg]. May be NaN (unknown) |
| ``pseudonym`` | string | optional: absent in ``idless`` feeds |

Files are CSV (timestamps as ISO 8601; those without an offset are read in
the time zone given to :func:`read_probes`, UTC by default) or Parquet
(timestamp columns, or ISO strings). Parquet files written here carry their
provenance (seed, scenario hash, version, anonymisation) under the schema
metadata key ``gpssignal``.

Reading never crashes on bad rows. A row is dropped, and counted by reason,
when (a row with several faults counts under the first):

- ``ragged_row``: a CSV row has more or fewer fields than the header;
- ``bad_timestamp``: its time is missing or cannot be parsed;
- ``missing_value``: a required value is NaN;
- ``lat_lon_out_of_range``: ``|lat| > 90`` or ``|lon| > 180``;
- ``speed_out_of_range``: the speed is negative or over 250 km/h;
- ``heading_out_of_range``: the heading is infinite or outside [0, 360)
  (NaN, an unknown heading, is kept);
- ``received_before_sent``: it was received before it was sent;
- ``duplicate``: it repeats an earlier row exactly.

The SUMO FCD import applies the same checks (but ``duplicate``) to the points
it writes. Unknown columns are ignored and listed. A file that cannot be read
at all raises :class:`ProbeFileError`, naming the file and the problem in one
line.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import secrets
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dateutil.tz import gettz

from gpssignal._files import ordinary_permissions
from gpssignal.errors import ProbeFileError
from gpssignal.model.geo import LocalProjection
from gpssignal.model.scenario import ANONYMISATION_MODES, Scenario
from gpssignal.probes.sampler import ProbeStream, pseudonyms

__all__ = [
    "DROP_REASONS",
    "MAX_SPEED_KMH",
    "PROBE_COLUMNS",
    "DropReport",
    "FcdImport",
    "ProbeFileError",
    "ProbeRead",
    "import_fcd",
    "read_manifest",
    "read_probes",
    "sim_seconds_from_utc",
    "stream_to_frame",
    "utc_from_sim_seconds",
    "write_probes",
]

#: Columns of the schema, in file order (``pseudonym`` only when present).
PROBE_COLUMNS = ("time_sent", "time_received", "lat_deg", "lon_deg", "speed_kmh",
                 "heading_deg", "pseudonym")
REQUIRED = ("time_sent", "lat_deg", "lon_deg", "speed_kmh")
#: Highest plausible speed of a road vehicle in a probe feed [km/h].
MAX_SPEED_KMH = 250.0
#: Why rows are dropped, in the order they are checked (see the module docstring).
DROP_REASONS = ("ragged_row", "bad_timestamp", "missing_value", "lat_lon_out_of_range",
                "speed_out_of_range", "heading_out_of_range", "received_before_sent",
                "duplicate")


@dataclass
class DropReport:
    """What reading a probe file kept and dropped."""

    file: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    unknown_columns: list[str] = field(default_factory=list)
    time_received_filled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-ready data."""
        return {"file": self.file, "rows_read": self.rows_read, "rows_kept": self.rows_kept,
                "dropped": dict(self.dropped), "unknown_columns": list(self.unknown_columns),
                "time_received_filled": self.time_received_filled}

    def summary(self) -> str:
        """One line: kept / read and the drops by reason."""
        drops = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        extra = f"; ignored columns: {', '.join(map(_printable, self.unknown_columns))}" \
            if self.unknown_columns else ""
        return (f"{self.file}: kept {self.rows_kept:,} of {self.rows_read:,} rows; dropped: "
                f"{drops}{extra}")


@dataclass
class ProbeRead:
    """A probe file's usable rows and the report of what was dropped."""

    frame: pd.DataFrame
    report: DropReport


@functools.cache
def _zone_names() -> frozenset[str]:
    """Return the IANA zone names (reading them scans the zone database: about 4 ms)."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _zone(name: str) -> Any:
    """Return the tzinfo of an IANA zone name; ProbeFileError if unknown.

    Only names of the IANA database (``zoneinfo.available_timezones()``) are
    accepted: never a file path, which ``dateutil`` would try to read.
    """
    ok = isinstance(name, str) and (name == "UTC" or name in _zone_names())
    tz = gettz(name) if ok else None
    if tz is None:
        raise ProbeFileError(f"timezone = {name!r}: unknown time zone (use an IANA name such "
                             "as 'Europe/Copenhagen' or 'UTC')")
    return tz


def _local_to_utc(date: str, clock_s: float, timezone: str) -> pd.Timestamp:
    """UTC time of local wall-clock ``clock_s`` seconds after midnight of ``date``."""
    day = datetime.fromisoformat(date)
    wall = datetime.combine(day.date(), time(0)) + timedelta(seconds=clock_s)
    zone = _zone(timezone)
    local = pd.Timestamp(wall)
    when = f"start = {local:%H:%M:%S} on {local:%Y-%m-%d} in {timezone}"
    try:
        return local.tz_localize(zone, nonexistent="raise").tz_convert("UTC")
    except ValueError as exc:
        if "nonexistent" in str(exc) or "does not exist" in str(exc):
            raise ProbeFileError(f"{when}: does not exist (skipped by the change to summer "
                                 "time, a DST gap); choose another start") from None
        raise ProbeFileError(f"{when}: occurs twice (the change to winter time, a DST "
                             "fold), so it is ambiguous; choose another start") from None


def _t0_utc(scenario: Scenario, date: str | None = None) -> pd.Timestamp:
    return _local_to_utc(date or scenario.date, scenario.start_clock_s, scenario.timezone)


def utc_from_sim_seconds(scenario: Scenario, t_s: np.ndarray,
                         date: str | None = None) -> pd.DatetimeIndex:
    """Convert simulation seconds of a run on ``date`` (default the scenario's) to UTC."""
    t0 = _t0_utc(scenario, date)
    return pd.DatetimeIndex(t0 + pd.to_timedelta(np.asarray(t_s, dtype=float), unit="s"))


def sim_seconds_from_utc(scenario: Scenario, times: pd.Series | pd.DatetimeIndex,
                         date: str | None = None) -> np.ndarray:
    """UTC timestamps to simulation seconds of a run on ``date``."""
    t0 = _t0_utc(scenario, date)
    delta = pd.DatetimeIndex(times) - t0
    return np.asarray(delta.total_seconds(), dtype=float)


def stream_to_frame(stream: ProbeStream, scenario: Scenario,
                    date: str | None = None) -> pd.DataFrame:
    """Convert a sampled stream to a schema DataFrame (UTC timestamps)."""
    c = stream.columns
    df = pd.DataFrame({
        "time_sent": utc_from_sim_seconds(scenario, c["time_sent_s"], date).as_unit("ms"),
        "time_received": utc_from_sim_seconds(scenario, c["time_received_s"], date)
        .as_unit("ms"),
        "lat_deg": c["lat_deg"], "lon_deg": c["lon_deg"], "speed_kmh": c["speed_kmh"],
        "heading_deg": c["heading_deg"],
    })
    if "pseudonym" in c:
        df["pseudonym"] = pd.array(c["pseudonym"], dtype="string")
    return df


def _iso_ms(values: pd.Series) -> np.ndarray:
    """UTC timestamps as ISO 8601 text with milliseconds and ``Z``."""
    utc = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
    return np.char.add(np.datetime_as_string(utc.to_numpy().astype("datetime64[ms]"),
                                             unit="ms"), "Z")


def _atomic_target(path: Path) -> tuple[Path, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    ordinary_permissions(tmp)
    return Path(tmp), path


def write_probes(frame: pd.DataFrame, path: str | Path, meta: dict[str, Any] | None = None
                 ) -> Path:
    """Write a schema frame to ``.parquet`` or ``.csv`` (by suffix), atomically."""
    p = Path(path)
    if p.suffix not in (".parquet", ".csv"):
        raise ProbeFileError(f"probe file {str(p)!r}: unknown format (use .parquet or .csv)")
    cols = [c for c in PROBE_COLUMNS if c in frame.columns]
    tmp, final = _atomic_target(p)
    try:
        if p.suffix == ".parquet":
            table = pa.Table.from_pandas(frame[cols], preserve_index=False)
            if meta:
                table = table.replace_schema_metadata({
                    **(table.schema.metadata or {}),
                    b"gpssignal": json.dumps(meta, sort_keys=True, default=str).encode()})
            pq.write_table(table, tmp)
        else:
            out = frame[cols].copy()
            for c in ("time_sent", "time_received"):
                out[c] = _iso_ms(out[c])
            out.to_csv(tmp, index=False)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


_ZONED = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"


def _one_time(text: str, tz: Any) -> pd.Timestamp:
    """One timestamp to UTC, NaT when it cannot be parsed (slow path)."""
    try:
        ts = pd.Timestamp(text)
        if ts is pd.NaT:
            return pd.NaT
        ts = ts.tz_localize(tz, ambiguous="NaT", nonexistent="NaT") if ts.tzinfo is None \
            else ts
        return pd.NaT if ts is pd.NaT else ts.tz_convert("UTC").as_unit("ms")
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT


def _parse_times(values: pd.Series, naive_tz: str) -> pd.Series:
    """Timestamps to UTC (millisecond resolution); unparseable values become NaT.

    Text with a zone (``Z``, ``+02``, ``+0200``, ``+02:00``) is converted to
    UTC; text without one is read in ``naive_tz``. A vectorised parse is tried
    first; values it cannot handle are parsed one by one, never raising.
    """
    tz = _zone(naive_tz)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ms, UTC]")
    if pd.api.types.is_datetime64_any_dtype(values):
        s = values
        if getattr(s.dt, "tz", None) is None:
            s = s.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        out[:] = s.dt.tz_convert("UTC").dt.as_unit("ms")
        return out
    text = values.astype("string").str.strip()
    zoned = text.str.contains(_ZONED, regex=True, na=False)
    naive = ~zoned & text.notna()
    for mask, zone in ((zoned, None), (naive, tz)):
        if not mask.any():
            continue
        try:
            if zone is None:
                parsed = pd.to_datetime(text[mask], errors="coerce", utc=True,
                                        format="ISO8601")
            else:
                parsed = pd.to_datetime(text[mask], errors="coerce", format="ISO8601")
                parsed = parsed.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT") \
                    .dt.tz_convert("UTC")
            out[mask] = parsed.dt.as_unit("ms")
        except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
            out[mask] = [_one_time(x, zone) for x in text[mask].tolist()]
    return out


def _printable(text: object) -> str:
    """Return ``str(text)`` on one line: line breaks and other unprintables escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text).strip())


def _column_names(header: list[str]) -> list[str]:
    """Return the header's names, as pandas names them (``Unnamed: i``, ``name.1``)."""
    names: list[str] = []
    for i, name in enumerate(header):
        base = name or f"Unnamed: {i}"
        new, k = base, 0
        while new in names:
            k += 1
            new = f"{base}.{k}"
        names.append(new)
    return names


def _read_csv(p: Path) -> tuple[pd.DataFrame, int]:
    """Return a probe CSV's rows as text (empty fields NaN) and the number of ragged rows.

    A row with more or fewer fields than the header is left out and counted;
    blank lines are skipped.
    """
    good: list[list[str]] = []
    ragged = 0
    try:
        with p.open(encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            header = next((r for r in rows if r), None)
            if header is None:
                raise ProbeFileError(f"probe file {str(p)!r}: empty (no header)")
            for row in rows:
                if len(row) == len(header):
                    good.append(row)
                elif row:
                    ragged += 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ProbeFileError(f"probe file {str(p)!r}: not readable CSV "
                             f"({_printable(exc)})") from None
    frame = pd.DataFrame(good, columns=_column_names(header), dtype=object)
    return frame.replace("", np.nan), ragged


def _load_table(p: Path) -> tuple[pd.DataFrame, int]:
    """Return a probe file's table and its number of ragged (CSV) rows."""
    if not p.exists():
        raise ProbeFileError(f"probe file {str(p)!r}: not found")
    if p.suffix == ".csv":
        return _read_csv(p)
    if p.suffix == ".parquet" or p.is_dir():
        try:
            # partitioning=None: a history folder's date=... keys are not data columns.
            return pq.read_table(p, partitioning=None).to_pandas(), 0
        except (pa.ArrowInvalid, OSError) as exc:
            raise ProbeFileError(f"probe file {str(p)!r}: not readable Parquet "
                                 f"({_printable(exc)})") from None
    raise ProbeFileError(f"probe file {str(p)!r}: unknown format (use .parquet or .csv)")


def _keep_good_rows(df: pd.DataFrame, report: DropReport, duplicates: bool = True
                    ) -> pd.DataFrame:
    """Return the rows of a schema frame that pass every row check; count the rest.

    Each dropped row is added to ``report.dropped`` under the first reason of
    :data:`DROP_REASONS` it fails; the kept rows are added to
    ``report.rows_kept``. ``duplicates=False`` skips the ``duplicate`` check.
    """
    keep = pd.Series(True, index=df.index)

    def drop(reason: str, bad: pd.Series) -> None:
        nonlocal keep
        hit = bad & keep
        report.dropped[reason] += int(hit.sum())
        keep &= ~hit

    heading = df["heading_deg"]
    drop("bad_timestamp", df["time_sent"].isna() | df["time_received"].isna())
    drop("missing_value", df[["lat_deg", "lon_deg", "speed_kmh"]].isna().any(axis=1))
    drop("lat_lon_out_of_range", (df["lat_deg"].abs() > 90) | (df["lon_deg"].abs() > 180))
    drop("speed_out_of_range", ~df["speed_kmh"].between(0, MAX_SPEED_KMH))
    drop("heading_out_of_range", heading.notna() & ~((heading >= 0) & (heading < 360)))
    drop("received_before_sent", df["time_received"] < df["time_sent"])
    if duplicates:
        drop("duplicate", df.duplicated(keep="first"))
    out = df[keep].reset_index(drop=True)
    report.rows_kept += len(out)
    return out


def read_probes(path: str | Path, naive_tz: str = "UTC") -> ProbeRead:
    """Read a probe file (CSV, Parquet, or a folder of Parquet files); keep the usable rows.

    Raises
    ------
    ProbeFileError
        If the file is missing, unreadable, or lacks a required column.
    """
    p = Path(path)
    raw, ragged = _load_table(p)
    report = DropReport(file=str(p), rows_read=len(raw) + ragged)
    report.dropped["ragged_row"] = ragged
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        has = ", ".join(repr(str(c)) for c in raw.columns) or "no columns"
        raise ProbeFileError(f"probe file {str(p)!r}: missing column {missing[0]!r} "
                             f"(has {has})")
    report.unknown_columns = [str(c) for c in raw.columns if c not in PROBE_COLUMNS]
    df = pd.DataFrame(index=raw.index)
    df["time_sent"] = _parse_times(raw["time_sent"], naive_tz)
    if "time_received" in raw.columns:
        df["time_received"] = _parse_times(raw["time_received"], naive_tz)
    else:
        df["time_received"] = df["time_sent"]
        report.time_received_filled = True
    for c in ("lat_deg", "lon_deg", "speed_kmh", "heading_deg"):
        df[c] = pd.to_numeric(raw[c], errors="coerce") if c in raw.columns else np.nan
    if "pseudonym" in raw.columns:
        df["pseudonym"] = raw["pseudonym"].astype("string")
    return ProbeRead(frame=_keep_good_rows(df, report), report=report)


# ---------------------------------------------------------------------------
# SUMO FCD import
# ---------------------------------------------------------------------------

#: Largest FCD timestep time accepted [s] (about 31 years).
_MAX_FCD_TIME_S = 1e9
#: One FCD point: (time, id, x, y, speed_mps, angle_deg).
_FcdRow = tuple[float, str, float, float, float, float]


class FcdImport(NamedTuple):
    """What :func:`import_fcd` wrote: the file, its number of points, and the drops."""

    path: Path
    rows: int
    report: DropReport


def _fcd_rows(path: Path) -> Iterator[_FcdRow]:
    """Stream (time, id, x, y, speed_mps, angle_deg) from an FCD XML file."""
    t = np.nan
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if event == "start" and elem.tag == "timestep":
                text = elem.get("time", "nan")
                t = float(text)
                if not np.isnan(t) and not abs(t) <= _MAX_FCD_TIME_S:
                    raise ProbeFileError(
                        f"FCD file {str(path)!r}: timestep time = {text!r}: must be a finite "
                        f"number of seconds within +-{_MAX_FCD_TIME_S:g}")
            elif event == "end" and elem.tag in ("vehicle", "person", "container"):
                yield (t, elem.get("id", ""), float(elem.get("x", "nan")),
                       float(elem.get("y", "nan")), float(elem.get("speed", "nan")),
                       float(elem.get("angle", "nan")))
                elem.clear()
            elif event == "end" and elem.tag == "timestep":
                elem.clear()
    except ET.ParseError as exc:
        raise ProbeFileError(f"FCD file {str(path)!r}: not well-formed XML "
                             f"({_printable(exc)})") from None
    except ProbeFileError:
        raise
    except ValueError as exc:
        raise ProbeFileError(f"FCD file {str(path)!r}: bad number ({_printable(exc)})") \
            from None


def import_fcd(fcd_path: str | Path, out_path: str | Path, *, date: str = "2019-05-06",
               start_clock_s: float = 0.0, timezone: str = "Europe/Copenhagen",
               origin: tuple[float, float] | None = None, anonymisation: str = "idless",
               rotation_s: float = 300.0, chunk_rows: int = 200_000,
               salt: int | None = None) -> FcdImport:
    """Convert a SUMO FCD output file to a probe file, streaming.

    Every point gets the row checks of :func:`read_probes` (all but
    ``duplicate``): points with no time, a missing or out-of-range position,
    speed or heading are dropped and counted in the returned report; the
    others are written.

    Parameters
    ----------
    fcd_path : path
        ``--fcd-output`` XML of SUMO.
    out_path : path
        ``.parquet`` (written in row groups as it goes) or ``.csv``.
    date, start_clock_s, timezone
        FCD time 0 is ``start_clock_s`` seconds after local midnight of
        ``date`` in ``timezone``.
    origin : (lat_deg, lon_deg), optional
        For plain x/y output: the WGS84 position of SUMO's x = y = 0, with x
        east and y north in metres (the local frame of
        :class:`~gpssignal.model.geo.LocalProjection`). Without it, the file
        must be ``--fcd-output.geo`` output (x = longitude, y = latitude).
    anonymisation : str
        ``idless`` drops the vehicle ids; ``rotating`` replaces them with
        pseudonyms rotated every ``rotation_s``; ``raw`` keeps them.
    salt : int, optional
        Key of the ``rotating`` pseudonyms. By default a fresh secret is drawn
        from the operating system for each import, so pseudonyms cannot be
        recomputed (or linked) from the public inputs; give one only to
        reproduce an import.

    Returns
    -------
    FcdImport
        The file written, the number of points written, and the
        :class:`DropReport` of the points read and dropped.

    Raises
    ------
    ProbeFileError
        For a missing or malformed file, or x/y that are not degrees without
        an ``origin``.
    """
    src, dst = Path(fcd_path), Path(out_path)
    _check_import(src, dst, anonymisation)
    proj = LocalProjection(*origin) if origin is not None else None
    t0 = _local_to_utc(date, start_clock_s, timezone)
    if salt is None:
        salt = secrets.randbits(63)
    ids: dict[str, int] = {}
    report = DropReport(file=str(src))
    tmp, final = _atomic_target(dst)
    sink = _ChunkWriter(tmp, parquet=dst.suffix == ".parquet")
    degrees_known = proj is not None    # decided on the first chunk with a position

    try:
        for buf in _fcd_chunks(src, chunk_rows):
            frame = _fcd_frame(buf, proj, t0, anonymisation, rotation_s, salt, ids)
            degrees_known = degrees_known or _check_degrees(frame, src)
            report.rows_read += len(frame)
            good = _keep_good_rows(frame, report, duplicates=False)
            if len(good):
                sink.write(good)
        sink.close()
        if sink.rows == 0:
            empty = pd.DataFrame({c: pd.Series(dtype="datetime64[ms, UTC]") if c.startswith(
                "time") else pd.Series(dtype=float) for c in PROBE_COLUMNS[:6]})
            return FcdImport(write_probes(empty, final), 0, report)
        os.replace(tmp, final)
    finally:
        sink.close()
        if tmp.exists():
            tmp.unlink()
    return FcdImport(final, sink.rows, report)


def _check_import(src: Path, dst: Path, anonymisation: str) -> None:
    """Refuse a missing FCD file, an unknown anonymisation or output format."""
    if not src.exists():
        raise ProbeFileError(f"FCD file {str(src)!r}: not found")
    if anonymisation not in ANONYMISATION_MODES:
        raise ProbeFileError(f"anonymisation = {anonymisation!r}: must be one of "
                             f"{', '.join(ANONYMISATION_MODES)}")
    if dst.suffix not in (".parquet", ".csv"):
        raise ProbeFileError(f"probe file {str(dst)!r}: unknown format (use .parquet or .csv)")


def _fcd_chunks(src: Path, chunk_rows: int) -> Iterator[list[_FcdRow]]:
    """Yield the points of an FCD file in lists of up to ``chunk_rows``."""
    buf: list[_FcdRow] = []
    for row in _fcd_rows(src):
        buf.append(row)
        if len(buf) >= chunk_rows:
            yield buf
            buf = []
    if buf:
        yield buf


def _check_degrees(frame: pd.DataFrame, src: Path) -> bool:
    """Refuse a chunk of plain x/y points read as degrees; return whether it could tell.

    Most of the chunk's finite positions outside +-90 / +-180 mean plain x/y
    output (a ProbeFileError); a few are bad points, left to the row checks.
    A chunk without a finite position cannot tell (False).
    """
    lat, lon = frame["lat_deg"].to_numpy(), frame["lon_deg"].to_numpy()
    finite = np.isfinite(lat) & np.isfinite(lon)
    outside = finite & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
    if 2 * np.count_nonzero(outside) > np.count_nonzero(finite):
        raise ProbeFileError(f"FCD file {str(src)!r}: x/y are not degrees; pass the "
                             "origin (lat, lon) of SUMO's x = y = 0 for plain x/y output")
    return bool(finite.any())


def _fcd_frame(buf: list[_FcdRow], proj: LocalProjection | None,
               t0: pd.Timestamp, anonymisation: str, rotation_s: float, salt: int,
               ids: dict[str, int]) -> pd.DataFrame:
    """Return a chunk of FCD rows as probe columns (``ids`` numbers the vehicles seen).

    Without ``proj``, x is taken as the longitude and y as the latitude.
    """
    t, vid, x, y, v, a = zip(*buf, strict=True)
    xa, ya = np.array(x), np.array(y)
    lat, lon = proj.to_latlon(xa, ya) if proj is not None else (ya, xa)
    ts = t0 + pd.to_timedelta(np.array(t), unit="s")
    frame = pd.DataFrame({"time_sent": pd.DatetimeIndex(ts).as_unit("ms"),
                          "time_received": pd.DatetimeIndex(ts).as_unit("ms"),
                          "lat_deg": lat, "lon_deg": lon,
                          "speed_kmh": np.array(v) * 3.6, "heading_deg": np.array(a)})
    if anonymisation == "raw":
        frame["pseudonym"] = pd.array(vid, dtype="string")
    elif anonymisation == "rotating":
        num = np.array([ids.setdefault(s, len(ids)) for s in vid], dtype=np.int64)
        epoch = np.floor(np.array(t) / rotation_s).astype(np.int64)
        frame["pseudonym"] = pd.array(pseudonyms(salt, num, epoch), dtype="string")
    return frame


class _ChunkWriter:
    """Appends probe frames to a Parquet file (one row group each) or a CSV file."""

    def __init__(self, path: Path, parquet: bool) -> None:
        self.path, self.parquet = path, parquet
        self.writer: pq.ParquetWriter | None = None
        self.first_csv = True
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``."""
        self.rows += len(frame)
        if self.parquet:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.path, table.schema)
            self.writer.write_table(table)
        else:
            out = frame.copy()
            for c in ("time_sent", "time_received"):
                out[c] = _iso_ms(out[c])
            out.to_csv(self.path, index=False, header=self.first_csv,
                       mode="w" if self.first_csv else "a")
            self.first_csv = False

    def close(self) -> None:
        """Close the Parquet writer, if one is open (again: nothing)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_manifest(history_dir: str | Path) -> dict[str, Any]:
    """Return the ``manifest.json`` of a probe history folder (see ``gpssignal history``)."""
    p = Path(history_dir) / "manifest.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != "gpssignal-history":
        raise ValueError(f"{p}: not a gpssignal history manifest")
    return data
