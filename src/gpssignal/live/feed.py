"""The live probe feed: lines in, checked points out, in order of receipt.

A feed is text lines, NDJSON (one object per line) or CSV (a header line,
then rows), with the columns of a probe file (:mod:`gpssignal.probes.io`:
``time_sent``, ``time_received``, ``lat_deg``, ``lon_deg``, ``speed_kmh``,
``heading_deg``, ``pseudonym``). Rows are checked as ``check-probes`` checks
a file, and dropped rows are counted by the same reasons (``DropReport``);
duplicate rows are not looked for (a live feed has no whole file to compare).
An NDJSON line ``{"clock": TIME}`` says that every point received up to
``TIME`` has been sent: a feed with such lines can drive the supervisor's
clock (``--clock feed``).

Sources: standard input, a growing file (followed like ``tail -f``), or a
local HTTP endpoint polled with ``GET URL?cursor=N`` (the response's
``X-Next-Cursor`` header is the next ``N``; ``X-Feed-End: 1`` ends it).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from gpssignal.errors import ProbeFileError
from gpssignal.probes.io import MAX_SPEED_KMH, PROBE_COLUMNS, REQUIRED, DropReport

__all__ = ["FeedParser", "PointBuffer", "feed_lines", "http_get"]

_EPOCH = datetime(1970, 1, 1).astimezone(ZoneInfo("UTC"))
#: Wait between two reads of a followed file or an HTTP endpoint with nothing new [s].
POLL_S = 0.2
#: Longest feed line read [characters]: a probe row is about 150; a longer line
#: is counted as a ragged row (its rest is skipped unread into memory).
MAX_LINE_CHARS = 65_536
#: Most points waiting for their decision instant: about a day of a busy
#: corridor's feed (a feed without clock lines under ``--clock feed``, or with
#: receipt times far in the future, would otherwise fill the memory).
MAX_WAITING_POINTS = 2_000_000
#: Largest HTTP response read in one poll [bytes].
MAX_HTTP_BYTES = 64 * 2**20


def _ms(text: object, tz: ZoneInfo) -> int | None:
    """ISO 8601 text to epoch milliseconds; naive times are read in ``tz``; None if bad."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    delta = dt - _EPOCH
    return (delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000)


def _num(value: object) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit JSON integer
        return math.nan


@dataclass
class PointBuffer:
    """Checked points waiting for the decision instant at or after their receipt."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {
        k: [] for k in ("t_sent_ms", "t_received_ms", "lat_deg", "lon_deg", "speed_kmh",
                        "heading_deg")})

    def add(self, row: tuple[int, int, float, float, float, float]) -> None:
        """Append one point; :class:`ProbeFileError` beyond :data:`MAX_WAITING_POINTS`."""
        if len(self) >= MAX_WAITING_POINTS:
            raise ProbeFileError(f"feed: {len(self) + 1:,} points waiting for their decision "
                                 f"instant, above the limit of {MAX_WAITING_POINTS:,} (with "
                                 "--clock feed the feed needs {\"clock\": TIME} lines; receipt "
                                 "times must not lie far ahead)")
        for k, v in zip(self.cols, row, strict=True):
            self.cols[k].append(v)

    def __len__(self) -> int:
        """Return the number of waiting points."""
        return len(self.cols["t_sent_ms"])

    def take(self, until_ms: int) -> dict[str, np.ndarray]:
        """Remove and return the points received by ``until_ms``, in order of receipt."""
        recv = np.array(self.cols["t_received_ms"], dtype=np.int64)
        due = recv <= until_ms
        arrays = {k: np.array(v, dtype=np.int64 if k.startswith("t_") else np.float64)
                  for k, v in self.cols.items()}
        for k in self.cols:
            self.cols[k] = arrays[k][~due].tolist()
        order = np.argsort(recv[due], kind="stable")
        return {k: v[due][order] for k, v in arrays.items()}


class FeedParser:
    """Parses feed lines (NDJSON or CSV, detected on the first line) into a buffer.

    Parameters
    ----------
    naive_tz : str
        Time zone of timestamps without an offset (as ``check-probes --timezone``).
    """

    def __init__(self, naive_tz: str = "UTC") -> None:
        try:
            self.tz = ZoneInfo(naive_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ProbeFileError(f"timezone = {naive_tz!r}: unknown time zone") from None
        self.report = DropReport(file="feed")
        self.buffer = PointBuffer()
        self.clock_ms: int | None = None
        self._format: str | None = None
        self._header: list[str] | None = None

    def feed(self, line: str) -> None:
        """Parse one line: a point (kept or counted as dropped), a clock line or a CSV header."""
        if len(line) > MAX_LINE_CHARS:
            self.report.rows_read += 1
            self.report.dropped["ragged_row"] += 1
            return
        text = line.strip()
        if not text:
            return
        if self._format is None:
            self._format = "ndjson" if text.startswith("{") else "csv"
            if self._format == "csv":
                try:  # < MAX_LINE_CHARS: within csv's field limit
                    self._header = next(csv.reader([text]))
                except csv.Error as exc:  # a lone carriage return, a NUL byte
                    raise ProbeFileError(f"feed: first line {text[:60]!r}: not NDJSON and not "
                                         f"a CSV header ({exc})") from None
                missing = [c for c in REQUIRED if c not in self._header]
                if missing:
                    raise ProbeFileError(f"feed: missing column {missing[0]!r} (has "
                                         f"{', '.join(map(repr, self._header))})")
                self.report.unknown_columns = [c for c in self._header
                                               if c not in PROBE_COLUMNS]
                return
        row = self._row(text)
        if row is None:
            return
        if self._format == "ndjson" and "clock" in row:
            t = _ms(row["clock"], self.tz)
            if t is not None and (self.clock_ms is None or t > self.clock_ms):
                self.clock_ms = t
            return
        self.report.rows_read += 1
        reason, point = self._check(row)
        if reason is not None:
            self.report.dropped[reason] += 1
            return
        self.report.rows_kept += 1
        assert point is not None
        self.buffer.add(point)

    def _row(self, text: str) -> dict[str, Any] | None:
        if self._format == "ndjson":
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested deeply
                obj = None
            if not isinstance(obj, dict):
                self.report.rows_read += 1
                self.report.dropped["ragged_row"] += 1
                return None
            return obj
        assert self._header is not None
        try:
            fields = next(csv.reader([text]), [])
        except csv.Error:  # e.g. a NUL byte
            fields = []
        if len(fields) != len(self._header):
            self.report.rows_read += 1
            self.report.dropped["ragged_row"] += 1
            return None
        return {k: (v if v != "" else None) for k, v in zip(self._header, fields, strict=True)}

    def _check(self, row: dict[str, Any]
               ) -> tuple[str | None, tuple[int, int, float, float, float, float] | None]:
        """Return the first drop reason of ``check-probes`` the row fails, or the point."""
        sent = _ms(row.get("time_sent"), self.tz)
        recv = _ms(row["time_received"], self.tz) if "time_received" in row else sent
        if sent is None or recv is None:
            return "bad_timestamp", None
        lat, lon, speed = (_num(row.get(c)) for c in ("lat_deg", "lon_deg", "speed_kmh"))
        heading = _num(row.get("heading_deg")) if row.get("heading_deg") is not None \
            else math.nan
        if math.isnan(lat) or math.isnan(lon) or math.isnan(speed):
            return "missing_value", None
        if abs(lat) > 90 or abs(lon) > 180:
            return "lat_lon_out_of_range", None
        if not 0 <= speed <= MAX_SPEED_KMH:
            return "speed_out_of_range", None
        if not math.isnan(heading) and not 0 <= heading < 360:
            return "heading_out_of_range", None
        if recv < sent:
            return "received_before_sent", None
        return None, (sent, recv, lat, lon, speed, heading)


async def http_get(url: str, timeout_s: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 GET over asyncio streams; return status, headers (lower case), body."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProbeFileError(f"feed = {url!r}: must be an http:// URL")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, parts.port or 80), timeout_s)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(MAX_HTTP_BYTES + 1), timeout_s)
        if len(raw) > MAX_HTTP_BYTES:
            raise ConnectionError(f"feed {url}: response above the limit of "
                                  f"{MAX_HTTP_BYTES:,} bytes")
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"feed {url}: not an HTTP response") from None
    headers = {}
    for h in lines[1:]:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


async def _http_lines(url: str) -> AsyncIterator[list[str]]:
    """Poll ``url``; a lost or broken endpoint is a one-line :class:`ProbeFileError`."""
    cursor = 0
    sep = "&" if "?" in url else "?"
    while True:
        try:
            status, headers, body = await http_get(f"{url}{sep}cursor={cursor}")
        except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            raise ProbeFileError(f"feed = {url!r}: {exc.__class__.__name__}: "
                                 f"{' '.join(str(exc).split()) or 'no answer'}") from None
        if status != 200:
            raise ProbeFileError(f"feed = {url!r}: HTTP status {status}")
        nxt = headers.get("x-next-cursor", str(cursor))
        if not nxt.isdigit() or len(nxt) > 18:
            raise ProbeFileError(f"feed = {url!r}: X-Next-Cursor = {nxt[:40]!r}: must be a "
                                 "whole number")
        cursor = int(nxt)
        lines = body.decode("utf-8", "replace").splitlines()
        if lines:
            yield lines
        if headers.get("x-feed-end") == "1":
            return
        if not lines:
            await asyncio.sleep(POLL_S)


#: What a line longer than MAX_LINE_CHARS is passed on as (the parser counts it
#: as a ragged row by its length); built once, the line itself is never held.
_TOO_LONG = "x" * (MAX_LINE_CHARS + 1)


def _read_line(f: IO[bytes]) -> tuple[bytes, bool]:
    """Read one line of at most MAX_LINE_CHARS + 1 bytes; skip the rest of a longer one.

    Returns the bytes and whether the line is complete (ends in a newline); a
    partial line is the last one of the input, or one still being written.
    """
    line = f.readline(MAX_LINE_CHARS + 1)
    if len(line) > MAX_LINE_CHARS and not line.endswith(b"\n"):
        while True:  # too long: read on to its end without keeping it
            rest = f.readline(MAX_LINE_CHARS)
            if not rest or rest.endswith(b"\n"):
                return line, bool(rest)
    return line, line.endswith(b"\n")


async def _stream_lines(path: Path | None, follow: bool) -> AsyncIterator[list[str]]:
    """Lines of stdin or a file, decoded as UTF-8 (a bad byte becomes U+FFFD).

    A followed file's last line without its newline yet is kept back until
    the writer ends it, so a row written in two pieces is read whole.
    """
    f: IO[bytes] = sys.stdin.buffer if path is None else path.open("rb")
    partial = b""
    first = True

    def text(raw: bytes) -> str:
        nonlocal first
        if first:
            raw, first = raw.removeprefix(b"\xef\xbb\xbf"), False
        return _TOO_LONG if len(raw.rstrip(b"\r\n")) > MAX_LINE_CHARS else \
            raw.decode("utf-8", "replace")

    try:
        while True:
            raw, complete = await asyncio.to_thread(_read_line, f)
            if raw and (complete or not follow):
                raw, partial = partial + raw, b""
                yield [text(raw)]
            elif raw:  # a line still being written: wait for its end
                partial = (partial + raw)[:MAX_LINE_CHARS + 1]
                await asyncio.sleep(POLL_S)
            elif follow:
                await asyncio.sleep(POLL_S)
            else:
                if partial:
                    yield [text(partial)]
                return
    finally:
        if path is not None:
            f.close()


def feed_lines(source: str, follow: bool = True) -> AsyncIterator[list[str]]:
    """Batches of lines from ``-`` (stdin), a file (followed unless ``follow=False``) or a URL."""
    if source.startswith("http://"):
        return _http_lines(source)
    if source == "-":
        return _stream_lines(None, follow=False)
    p = Path(source)
    if not p.exists():
        raise ProbeFileError(f"feed = {source!r}: not found")
    if not p.is_file():  # a folder, or a device such as /dev/zero
        raise ProbeFileError(f"feed = {source!r}: not a regular file (use '-' to read a "
                             "pipe on standard input)")
    return _stream_lines(p, follow)
