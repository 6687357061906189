"""Tests of probe files (gpssignal.probes.io): the schema, CSV and Parquet round
trips, UTC timestamps, the drop-and-count reading of bad rows, whole-file
failures, and the SUMO FCD import (fixtures tests/data/fcd_geo.xml and
tests/data/fcd_xy.xml, hand-made in SUMO's FCD format).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from gpssignal.errors import ProbeFileError
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.geo import LocalProjection
from gpssignal.model.io import read_scenario
from gpssignal.probes.io import (
    DROP_REASONS,
    PROBE_COLUMNS,
    import_fcd,
    read_probes,
    sim_seconds_from_utc,
    stream_to_frame,
    utc_from_sim_seconds,
    write_probes,
)
from gpssignal.probes.sampler import pseudonyms

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
VALLENSBAEK = REPO / "scenarios" / "vallensbaek.toml"
FCD_GEO = REPO / "tests" / "data" / "fcd_geo.xml"
FCD_XY = REPO / "tests" / "data" / "fcd_xy.xml"
#: WGS84 position of SUMO's x = y = 0 for the x/y fixture (tests only).
ORIGIN = (55.625, 12.371)

MS = pd.Timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def tiny():
    return read_scenario(TINY)


@pytest.fixture(scope="module")
def run(tiny):
    """A tiny run with rotating pseudonyms: (stream, frame, meta)."""
    settings = dataclasses.replace(tiny.probes, penetration=0.5, anonymisation="rotating")
    out = run_one(RunSpec(scenario=tiny, controller=ControllerSpec(kind="fixed"),
                          seed=tiny.seed, probes=settings, sample_probes=True))
    stream, meta = out.probes, out.meta
    assert len(stream) > 200
    return stream, stream_to_frame(stream, tiny), meta


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


# ---------------------------------------------------------------------------
# Time conversion
# ---------------------------------------------------------------------------

def test_sim_time_zero_is_the_local_start_in_utc(tiny):
    # vallensbaek starts at 06:00 Copenhagen time on Monday 2019-05-06: CEST
    # (UTC+2), so 04:00Z.
    sc = read_scenario(VALLENSBAEK)
    assert (sc.start_clock_s, sc.date, sc.timezone) == (6 * 3600, "2019-05-06",
                                                         "Europe/Copenhagen")
    t = utc_from_sim_seconds(sc, np.array([0.0, 90.5]))
    assert str(t.tz) == "UTC"
    assert t[0] == pd.Timestamp("2019-05-06T04:00:00Z")
    assert t[1] == pd.Timestamp("2019-05-06T04:01:30.500Z")
    # In winter it is CET (UTC+1); tiny itself starts at 07:00 CEST = 05:00Z.
    assert utc_from_sim_seconds(sc, np.array([0.0]), date="2019-01-07")[0] == \
        pd.Timestamp("2019-01-07T05:00:00Z")
    assert utc_from_sim_seconds(tiny, np.array([0.0]))[0] == pd.Timestamp("2019-05-06T05:00Z")


def test_sim_seconds_round_trip(tiny):
    t = np.array([0.0, 0.5, 123.25, 1199.5])
    for date in (None, "2019-03-31", "2019-10-27"):   # also the DST change days
        back = sim_seconds_from_utc(tiny, utc_from_sim_seconds(tiny, t, date), date)
        assert_allclose(back, t, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Write and read back
# ---------------------------------------------------------------------------

def test_stream_to_frame_follows_the_schema(run, tiny):
    stream, frame, _ = run
    assert list(frame.columns) == list(PROBE_COLUMNS)
    for c in ("time_sent", "time_received"):
        assert str(frame[c].dt.tz) == "UTC"
        # Stored at ms resolution: within 1 ms of the simulation times.
        back = sim_seconds_from_utc(tiny, frame[c])
        err = back - stream.columns[f"{c}_s"]
        assert (err <= 1e-9).all() and (err > -1e-3).all()
    assert_array_equal(frame["lat_deg"], stream.columns["lat_deg"])
    assert_array_equal(frame["pseudonym"].to_numpy(dtype=object), stream.columns["pseudonym"])


def test_parquet_round_trip_is_exact_and_keeps_metadata(run, tmp_path):
    _, frame, meta = run
    info = {**meta.as_dict(), "anonymisation": "rotating"}
    path = write_probes(frame, tmp_path / "p.parquet", info)
    assert path == tmp_path / "p.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]  # no temp left
    schema_meta = pq.read_schema(path).metadata
    assert json.loads(schema_meta[b"gpssignal"]) == json.loads(json.dumps(info, default=str))
    read = read_probes(path)
    assert read.report.rows_read == read.report.rows_kept == len(frame)
    assert not any(read.report.dropped.values())
    got = read.frame
    assert list(got.columns) == list(PROBE_COLUMNS)
    for c in ("time_sent", "time_received"):
        assert str(got[c].dt.tz) == "UTC"
        assert ((got[c] - frame[c]).abs() < MS).all()
    for c in ("lat_deg", "lon_deg", "speed_kmh", "heading_deg"):
        assert_array_equal(got[c].to_numpy(), frame[c].to_numpy(), err_msg=c)
    assert got["pseudonym"].tolist() == frame["pseudonym"].tolist()


def test_csv_round_trip(run, tmp_path):
    _, frame, _ = run
    path = write_probes(frame, tmp_path / "p.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(PROBE_COLUMNS)
    # ISO 8601 UTC with milliseconds.
    first = lines[1].split(",")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first[0])
    read = read_probes(path)
    assert read.report.rows_kept == len(frame)
    got = read.frame
    for c in ("time_sent", "time_received"):
        assert str(got[c].dt.tz) == "UTC"
        assert ((got[c] - frame[c]).abs() < MS).all()
    for c in ("lat_deg", "lon_deg", "speed_kmh", "heading_deg"):
        assert_allclose(got[c].to_numpy(), frame[c].to_numpy(), rtol=1e-9, err_msg=c)
    assert got["pseudonym"].tolist() == frame["pseudonym"].tolist()


def test_write_rejects_an_unknown_suffix_and_writes_nothing(run, tmp_path):
    _, frame, _ = run
    with pytest.raises(ProbeFileError, match=r"p\.txt.*unknown format"):
        write_probes(frame, tmp_path / "p.txt")
    assert list(tmp_path.iterdir()) == []


@st.composite
def probe_frames(draw):
    n = draw(st.integers(1, 20))
    finite = dict(allow_nan=False, allow_infinity=False)
    # Distinct send times (ms) so that no row is a duplicate.
    ms = sorted(draw(st.lists(st.integers(0, 10**11), min_size=n, max_size=n, unique=True)))
    delay = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    base = pd.Timestamp("2001-01-01T00:00:00Z")
    sent = pd.DatetimeIndex([base + pd.Timedelta(milliseconds=m) for m in ms]).as_unit("ms")
    recv = pd.DatetimeIndex([s + pd.Timedelta(milliseconds=d)
                             for s, d in zip(sent, delay, strict=True)]).as_unit("ms")
    fl = lambda lo, hi: st.lists(st.floats(lo, hi, **finite), min_size=n, max_size=n)  # noqa: E731
    heading = draw(st.lists(st.one_of(st.floats(0, 360, exclude_max=True), st.just(np.nan)),
                            min_size=n, max_size=n))
    frame = pd.DataFrame({"time_sent": sent, "time_received": recv,
                          "lat_deg": draw(fl(-90, 90)), "lon_deg": draw(fl(-180, 180)),
                          "speed_kmh": draw(fl(0, 250)), "heading_deg": heading})
    if draw(st.booleans()):
        names = st.text(alphabet="abcdefxyz0123456789", min_size=1, max_size=10)
        frame["pseudonym"] = pd.array(draw(st.lists(names, min_size=n, max_size=n)),
                                      dtype="string")
    return frame


@settings(max_examples=40, deadline=None)
@given(frame=probe_frames())
def test_any_valid_frame_round_trips(frame):
    # Parquet keeps every value exactly; CSV writes floats in shortest repr,
    # which reads back exactly too (1e-12 relative allowed for the parser).
    with tempfile.TemporaryDirectory() as d:
        for suffix in (".parquet", ".csv"):
            path = write_probes(frame, Path(d) / f"p{suffix}")
            got = read_probes(path).frame
            assert len(got) == len(frame)
            for c in ("time_sent", "time_received"):
                assert (got[c] == frame[c]).all()
            for c in ("lat_deg", "lon_deg", "speed_kmh", "heading_deg"):
                assert_allclose(got[c].to_numpy(), frame[c].to_numpy(),
                                rtol=0 if suffix == ".parquet" else 1e-12, err_msg=c)
            if "pseudonym" in frame:
                assert got["pseudonym"].tolist() == frame["pseudonym"].tolist()
            else:
                assert "pseudonym" not in got


# ---------------------------------------------------------------------------
# Time zones when reading
# ---------------------------------------------------------------------------

HEADER = "time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg"


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return p


def test_naive_timestamps_are_read_in_the_given_zone(tmp_path):
    p = write_csv(tmp_path, "2019-05-06T06:00:00,2019-05-06T06:00:02.5,55.63,12.38,30,90",
                  "2019-01-07 06:00:00,2019-01-07 06:00:01,55.63,12.38,31,90")
    cph = read_probes(p, naive_tz="Europe/Copenhagen").frame
    assert cph["time_sent"].tolist() == [utc("2019-05-06T04:00:00Z"), utc("2019-01-07T05:00Z")]
    assert cph["time_received"][0] == utc("2019-05-06T04:00:02.500Z")
    default = read_probes(p).frame            # UTC by default
    assert default["time_sent"].tolist() == [utc("2019-05-06T06:00Z"), utc("2019-01-07T06:00Z")]


def test_timestamps_with_an_offset_ignore_the_naive_zone(tmp_path):
    p = write_csv(tmp_path, "2019-05-06T06:00:00+02:00,2019-05-06T04:00:01Z,55.63,12.38,30,90",
                  "2019-05-06T05:00:00+0100,2019-05-06T05:00:01+01:00,55.63,12.38,31,90")
    got = read_probes(p, naive_tz="America/New_York").frame
    assert got["time_sent"].tolist() == [utc("2019-05-06T04:00Z")] * 2
    assert got["time_received"].tolist() == [utc("2019-05-06T04:00:01Z")] * 2


def test_naive_time_in_the_spring_forward_gap_is_a_bad_timestamp(tmp_path):
    # 02:30 on 2019-03-31 does not exist in Copenhagen (clocks go 02:00 -> 03:00).
    p = write_csv(tmp_path, "2019-03-31T02:30:00,2019-03-31T03:00:01,55.63,12.38,30,90",
                  "2019-03-31T03:30:00,2019-03-31T03:30:01,55.63,12.38,30,90")
    read = read_probes(p, naive_tz="Europe/Copenhagen")
    assert read.report.dropped["bad_timestamp"] == 1
    assert read.frame["time_sent"].tolist() == [utc("2019-03-31T01:30Z")]


# ---------------------------------------------------------------------------
# Bad rows: one test per class, counts and summary text
# ---------------------------------------------------------------------------

GOOD = ("2019-05-06T04:00:00Z,2019-05-06T04:00:05Z,55.63,12.38,30.0,90.0",
        "2019-05-06T04:00:01Z,2019-05-06T04:00:06Z,55.631,12.381,31.0,",   # heading unknown
        "2019-05-06T04:00:02Z,2019-05-06T04:00:07Z,55.632,12.382,32.0,91.0")


def check(path: Path, kept: int, read_: int, drops: dict[str, int], summary: str,
          **kw) -> pd.DataFrame:
    r = read_probes(path, **kw)
    assert r.report.rows_read == read_
    assert r.report.rows_kept == len(r.frame) == kept
    assert r.report.dropped == {k: drops.get(k, 0) for k in DROP_REASONS}
    assert r.report.summary() == f"{path}: {summary}"
    assert "\n" not in r.report.summary()
    return r.frame


def test_rows_without_a_value_are_dropped_as_missing_value(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,NaN,12.38,30,90",
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:09Z,55.63,,30,90",
                  "2019-05-06T04:00:05Z,2019-05-06T04:00:10Z,55.63,12.38,nan,90",
                  "2019-05-06T04:00:06Z,2019-05-06T04:00:11Z,55.63,12.38,fast,90")
    frame = check(p, 3, 7, {"missing_value": 4},
                  "kept 3 of 7 rows; dropped: missing_value 4")
    assert frame["heading_deg"].isna().sum() == 1    # an unknown heading is fine


def test_positions_out_of_range_are_dropped(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,90.5,12.38,30,90",
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:09Z,-91,12.38,30,90",
                  "2019-05-06T04:00:05Z,2019-05-06T04:00:10Z,55.63,180.01,30,90",
                  "2019-05-06T04:00:06Z,2019-05-06T04:00:11Z,55.63,-200,30,90",
                  "2019-05-06T04:00:07Z,2019-05-06T04:00:12Z,90,-180,30,90")  # limits: kept
    frame = check(p, 4, 8, {"lat_lon_out_of_range": 4},
                  "kept 4 of 8 rows; dropped: lat_lon_out_of_range 4")
    assert frame["lat_deg"].max() == 90 and frame["lon_deg"].min() == -180


def test_speeds_out_of_range_are_dropped(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,55.63,12.38,250.1,90",
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:09Z,55.63,12.38,-0.5,90",
                  "2019-05-06T04:00:05Z,2019-05-06T04:00:10Z,55.63,12.38,250,90",   # kept
                  "2019-05-06T04:00:06Z,2019-05-06T04:00:11Z,55.63,12.38,0,90")     # kept
    check(p, 5, 7, {"speed_out_of_range": 2}, "kept 5 of 7 rows; dropped: speed_out_of_range 2")


def test_headings_out_of_range_are_dropped(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,55.63,12.38,30,360",
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:09Z,55.63,12.38,30,-0.5",
                  "2019-05-06T04:00:05Z,2019-05-06T04:00:10Z,55.63,12.38,30,inf",
                  "2019-05-06T04:00:06Z,2019-05-06T04:00:11Z,55.63,12.38,30,-inf",
                  "2019-05-06T04:00:07Z,2019-05-06T04:00:12Z,55.63,12.38,30,0",       # kept
                  "2019-05-06T04:00:08Z,2019-05-06T04:00:13Z,55.63,12.38,30,359.99")  # kept
    frame = check(p, 5, 9, {"heading_out_of_range": 4},
                  "kept 5 of 9 rows; dropped: heading_out_of_range 4")
    assert frame["heading_deg"].isna().sum() == 1    # unknown (NaN) is not out of range


def test_ragged_rows_are_dropped_and_counted_and_the_rest_read(tmp_path):
    p = write_csv(tmp_path, GOOD[0],
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,55.63,12.38,30,90,extra",
                  GOOD[1],
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:09Z,55.63,12.38,30",
                  "",                                                  # blank: skipped
                  GOOD[2])
    frame = check(p, 3, 5, {"ragged_row": 2}, "kept 3 of 5 rows; dropped: ragged_row 2")
    assert frame["speed_kmh"].tolist() == [30.0, 31.0, 32.0]


def test_a_ragged_first_row_is_not_taken_for_an_index_column(tmp_path):
    p = write_csv(tmp_path, "2019-05-06T04:00:03Z,2019-05-06T04:00:08Z,55.63,12.38,30,90,x",
                  *GOOD)
    frame = check(p, 3, 4, {"ragged_row": 1}, "kept 3 of 4 rows; dropped: ragged_row 1")
    assert frame["lat_deg"].tolist() == [55.63, 55.631, 55.632]


@pytest.mark.parametrize("cell", ["lat\ndeg", "lat\r\ndeg", "lat\rdeg", "lat\u2028deg",
                                  "lat\x0bdeg", "lat\x85deg"])
def test_a_header_cell_with_a_line_break_gives_a_one_line_error(tmp_path, cell):
    p = tmp_path / "in.csv"
    p.write_text(f'time_sent,"{cell}",lon_deg,speed_kmh\n'
                 "2019-05-06T04:00:00Z,55.63,12.38,30\n", encoding="utf-8", newline="")
    with pytest.raises(ProbeFileError) as err:
        read_probes(p)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1, msg
    assert "missing column 'lat_deg'" in msg and repr(cell) in msg


def test_unknown_header_cells_are_listed_on_one_line(tmp_path):
    p = write_csv(tmp_path, GOOD[0] + ",x", header=HEADER + ',"note\nhere"')
    r = read_probes(p)
    assert r.report.unknown_columns == ["note\nhere"]
    assert len(r.report.summary().splitlines()) == 1
    assert r.report.summary().endswith("ignored columns: note\\nhere")


def test_unparseable_timestamps_are_dropped(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "yesterday,2019-05-06T04:00:08Z,55.63,12.38,30,90",
                  ",2019-05-06T04:00:09Z,55.63,12.38,30,90",
                  "2019-13-01T04:00:00Z,2019-05-06T04:00:10Z,55.63,12.38,30,90",
                  "2019-05-06T04:00:06Z,soon,55.63,12.38,30,90")
    check(p, 3, 7, {"bad_timestamp": 4}, "kept 3 of 7 rows; dropped: bad_timestamp 4")


CRASH_REASON = (
    "probes/io.py _parse_times (lines 210-219): a value the zone regex "
    r"(?:Z|[+-]\d\d:?\d\d)$ does not see as zoned goes to the 'naive' branch, but "
    "pd.to_datetime still parses it: an hour-only ISO 8601 offset ('+02') or a trailing "
    "space ('...Z ') comes back tz-aware and tz_localize raises TypeError (ValueError "
    "'Mixed timezones' next to naive rows); a naive time past 2262 parses at second "
    "resolution and raises OutOfBoundsDatetime when stored into the ns column. "
    "read_probes then crashes (and check-probes prints a traceback) instead of "
    "dropping or parsing the row")


@pytest.mark.parametrize("stamp", [
    pytest.param("2019-05-06T06:00:00+02", id="hour-offset"),
    pytest.param("2019-05-06T04:00:00Z ", id="trailing-space"),
    pytest.param("9999-12-31T23:59:59", id="naive-out-of-bounds"),
])
def test_odd_timestamps_are_parsed_or_dropped_never_raised(tmp_path, stamp):
    # "Reading never crashes on bad rows": each row is kept or counted.
    p = write_csv(tmp_path, GOOD[0], f"{stamp},2019-05-06T04:00:05Z,55.63,12.38,33,90")
    r = read_probes(p)
    # Year 9999 parses (millisecond resolution) and is then dropped because it
    # was "received" in 2019, before it was sent; any counted reason will do.
    assert r.report.rows_kept + sum(r.report.dropped.values()) == 2
    if r.report.rows_kept == 2:
        assert r.frame["time_sent"][1] == utc("2019-05-06T04:00Z")


def test_exact_duplicates_are_dropped_after_the_first(tmp_path):
    p = write_csv(tmp_path, *GOOD, GOOD[0], GOOD[1], GOOD[1])
    frame = check(p, 3, 6, {"duplicate": 3}, "kept 3 of 6 rows; dropped: duplicate 3")
    assert frame["speed_kmh"].tolist() == [30.0, 31.0, 32.0]


def test_received_before_sent_is_dropped(tmp_path):
    p = write_csv(tmp_path, *GOOD,
                  "2019-05-06T04:00:03Z,2019-05-06T04:00:02.999Z,55.63,12.38,30,90",
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:04Z,55.63,12.38,30,90")  # equal: kept
    check(p, 4, 5, {"received_before_sent": 1},
          "kept 4 of 5 rows; dropped: received_before_sent 1")


def test_unknown_columns_are_ignored_and_listed(tmp_path):
    p = write_csv(tmp_path, *[r + ",x,1" for r in GOOD], header=HEADER + ",vehicle_id,accuracy_m")
    frame = check(p, 3, 3, {}, "kept 3 of 3 rows; dropped: none; ignored columns: "
                  "vehicle_id, accuracy_m")
    assert list(frame.columns) == list(PROBE_COLUMNS[:6])
    assert read_probes(p).report.unknown_columns == ["vehicle_id", "accuracy_m"]


def test_missing_time_received_is_filled_from_time_sent_and_flagged(tmp_path):
    header = "time_sent,lat_deg,lon_deg,speed_kmh"
    p = write_csv(tmp_path, "2019-05-06T04:00:00Z,55.63,12.38,30",
                  "2019-05-06T04:00:01Z,55.63,12.38,31", header=header)
    r = read_probes(p)
    assert r.report.time_received_filled is True
    assert r.report.as_dict()["time_received_filled"] is True
    assert (r.frame["time_received"] == r.frame["time_sent"]).all()
    assert r.frame["heading_deg"].isna().all()
    assert r.report.summary() == f"{p}: kept 2 of 2 rows; dropped: none"
    assert read_probes(write_csv(tmp_path, *GOOD, name="b.csv")).report.time_received_filled \
        is False


def test_each_row_is_counted_once_under_its_first_reason(tmp_path):
    # A row with several faults counts under the first reason in DROP_REASONS
    # order; the counts add up to rows_read - rows_kept.
    p = write_csv(tmp_path, *GOOD,
                  "bad,2019-05-06T04:00:08Z,NaN,500,-3,90",           # bad_timestamp
                  "2019-05-06T04:00:04Z,2019-05-06T04:00:01Z,95,12,900,90")  # out of range
    r = read_probes(p)
    assert r.report.dropped["bad_timestamp"] == 1
    assert r.report.dropped["lat_lon_out_of_range"] == 1
    assert sum(r.report.dropped.values()) == r.report.rows_read - r.report.rows_kept == 2


def test_parquet_with_string_timestamps_and_bad_rows(tmp_path):
    df = pd.DataFrame({"time_sent": ["2019-05-06T04:00:00Z", "not a time", "2019-05-06T06:00"],
                       "lat_deg": [55.6, 55.6, 55.6], "lon_deg": [12.3, 12.3, 12.3],
                       "speed_kmh": [10.0, 10.0, np.nan]})
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    r = read_probes(path)
    assert r.report.dropped["bad_timestamp"] == 1 and r.report.dropped["missing_value"] == 1
    assert r.frame["time_sent"].tolist() == [utc("2019-05-06T04:00Z")]
    assert r.report.time_received_filled


def test_naive_parquet_timestamps_are_read_in_the_given_zone(tmp_path):
    df = pd.DataFrame({"time_sent": pd.to_datetime(["2019-05-06 06:00:00"]),
                       "lat_deg": [55.6], "lon_deg": [12.3], "speed_kmh": [10.0]})
    path = tmp_path / "n.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    got = read_probes(path, naive_tz="Europe/Copenhagen").frame
    assert got["time_sent"][0] == utc("2019-05-06T04:00Z")


# ---------------------------------------------------------------------------
# Whole-file failures
# ---------------------------------------------------------------------------

def _missing(tmp_path):
    return tmp_path / "nope.csv", "not found"


def _empty_csv(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("", encoding="utf-8")
    return p, "empty"


def _missing_column(tmp_path):
    return write_csv(tmp_path, "2019-05-06T04:00:00Z,55.6,30",
                     header="time_sent,lat_deg,speed_kmh"), "missing column 'lon_deg'"


def _unknown_suffix(tmp_path):
    p = tmp_path / "probes.json"
    p.write_text("{}", encoding="utf-8")
    return p, "unknown format"


def _corrupt_parquet(tmp_path):
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1 this is not a parquet file PAR1")
    return p, "not readable Parquet"


def _truncated_parquet(tmp_path):
    df = pd.DataFrame({"time_sent": ["2019-05-06T04:00:00Z"] * 100, "lat_deg": 55.6,
                       "lon_deg": 12.3, "speed_kmh": 10.0})
    p = tmp_path / "cut.parquet"
    pq.write_table(pa.Table.from_pandas(df), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p, "not readable Parquet"


@pytest.mark.parametrize("make", [_missing, _empty_csv, _missing_column, _unknown_suffix,
                                  _corrupt_parquet, _truncated_parquet])
def test_unreadable_files_raise_one_line_naming_file_and_problem(tmp_path, make):
    path, problem = make(tmp_path)
    with pytest.raises(ProbeFileError) as err:
        read_probes(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert problem in msg


# ---------------------------------------------------------------------------
# SUMO FCD import
# ---------------------------------------------------------------------------

def fcd_points(path: Path) -> pd.DataFrame:
    """The fixture's points, read with ElementTree (oracle for the importer)."""
    rows = []
    for ts in ET.parse(path).getroot().iter("timestep"):
        for el in ts:
            num = lambda key, e=el: float(e.get(key, "nan"))  # noqa: E731
            rows.append({"t": float(ts.get("time", "nan")), "id": el.get("id"),
                         "tag": el.tag, "x": num("x"), "y": num("y"),
                         "speed": num("speed"), "angle": num("angle")})
    return pd.DataFrame(rows)


FCD_KW = dict(date="2019-05-06", start_clock_s=6 * 3600.0, timezone="Europe/Copenhagen")


def test_import_geo_fcd_without_origin(tmp_path):
    expected = fcd_points(FCD_GEO)
    assert len(expected) == 7 and (expected["tag"] == "person").sum() == 1
    path, rows, _ = import_fcd(FCD_GEO, tmp_path / "geo.parquet", **FCD_KW)
    assert rows == len(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["geo.parquet"]
    r = read_probes(path)
    assert r.report.rows_kept == rows and not any(r.report.dropped.values())
    got = r.frame
    assert "pseudonym" not in got.columns           # idless by default
    # --fcd-output.geo: x = lon, y = lat, exactly.
    assert_array_equal(got["lat_deg"], expected["y"])
    assert_array_equal(got["lon_deg"], expected["x"])
    assert_allclose(got["speed_kmh"], expected["speed"] * 3.6, rtol=1e-15)
    assert_array_equal(got["heading_deg"], expected["angle"])   # both clockwise from north
    # FCD time 0 = 06:00 local (CEST) = 04:00Z; received = sent.
    t0 = pd.Timestamp("2019-05-06T04:00:00Z")
    assert got["time_sent"].tolist() == [t0 + pd.Timedelta(seconds=t) for t in expected["t"]]
    assert (got["time_received"] == got["time_sent"]).all()
    # The pedestrian (a phone) is imported like a vehicle.
    assert got["speed_kmh"][expected.index[expected["tag"] == "person"][0]] == \
        pytest.approx(1.2 * 3.6)


def test_import_xy_fcd_with_origin(tmp_path):
    expected = fcd_points(FCD_XY)
    path, rows, _ = import_fcd(FCD_XY, tmp_path / "xy.parquet", origin=ORIGIN, **FCD_KW)
    assert rows == len(expected) == 7
    got = read_probes(path).frame
    lat, lon = LocalProjection(*ORIGIN).to_latlon(expected["x"].to_numpy(),
                                                  expected["y"].to_numpy())
    assert_array_equal(got["lat_deg"], lat)
    assert_array_equal(got["lon_deg"], lon)
    # Sanity: 498.37 m north of the origin is 498.37 / 111,195 m per degree.
    assert got["lat_deg"][0] == pytest.approx(ORIGIN[0] + 498.37 / 111_195.08, abs=1e-9)
    assert_allclose(got["speed_kmh"], expected["speed"] * 3.6, rtol=1e-15)
    assert got["time_sent"][2] == pd.Timestamp("2019-05-06T04:00:00.500Z")


def test_import_time_zero_follows_date_start_and_zone(tmp_path):
    path, *_ = import_fcd(FCD_XY, tmp_path / "w.parquet", origin=ORIGIN, date="2019-01-07",
                         start_clock_s=8 * 3600 + 30, timezone="Europe/Copenhagen")
    got = read_probes(path).frame
    assert got["time_sent"][0] == pd.Timestamp("2019-01-07T07:00:30Z")   # CET = UTC+1
    path, *_ = import_fcd(FCD_XY, tmp_path / "u.parquet", origin=ORIGIN)  # defaults: 00:00 CEST
    assert read_probes(path).frame["time_sent"][0] == pd.Timestamp("2019-05-05T22:00:00Z")


def test_import_anonymisation_modes(tmp_path):
    ids = fcd_points(FCD_GEO)["id"].tolist()
    raw, *_ = import_fcd(FCD_GEO, tmp_path / "raw.parquet", anonymisation="raw", **FCD_KW)
    assert read_probes(raw).frame["pseudonym"].tolist() == ids
    rot, *_ = import_fcd(FCD_GEO, tmp_path / "rot.parquet", anonymisation="rotating",
                         rotation_s=1.5, **FCD_KW)
    p = read_probes(rot).frame["pseudonym"].tolist()
    assert not set(p) & set(ids)                      # SUMO ids hidden
    assert all(re.fullmatch(r"p[0-9a-f]{16}", s) for s in p)
    t = fcd_points(FCD_GEO)["t"].tolist()
    by_key = {}
    for i, s, tt in zip(ids, p, t, strict=True):
        by_key.setdefault((i, tt // 1.5), set()).add(s)
    # One pseudonym per (vehicle, rotation period); all of them distinct.
    assert all(len(v) == 1 for v in by_key.values())
    assert len(set(p)) == len(by_key)
    # veh0 at 0, 1, 2 s spans periods 0 and 1 of 1.5 s: two pseudonyms.
    assert len({s for i, s in zip(ids, p, strict=True) if i == "veh0"}) == 2


def test_import_rotating_pseudonyms_cannot_be_recomputed_from_public_inputs(tmp_path):
    rot, *_ = import_fcd(FCD_GEO, tmp_path / "rot.parquet", anonymisation="rotating",
                         rotation_s=1.5, **FCD_KW)
    p = read_probes(rot).frame["pseudonym"].tolist()
    guesses = {s for n in range(10) for e in range(10)
               for s in pseudonyms(0, np.array([n]), np.array([e])).tolist()}
    assert not set(p) <= guesses


def test_import_xy_without_origin_is_an_error(tmp_path):
    with pytest.raises(ProbeFileError) as err:
        import_fcd(FCD_XY, tmp_path / "xy.parquet")
    msg = str(err.value)
    assert "\n" not in msg and str(FCD_XY) in msg and "origin" in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text,problem", [
    ('<fcd-export><timestep time="0.00"><vehicle id="a" x="1" y="2"', "not well-formed XML"),
    ('<fcd-export><timestep time="0.00"><vehicle id="a" x="12.3" y="55.6" angle="0" '
     'speed="fast"/></timestep></fcd-export>', "bad number"),
])
def test_import_malformed_fcd_is_an_error(tmp_path, text, problem):
    src = tmp_path / "bad.xml"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out" / "p.parquet"
    with pytest.raises(ProbeFileError) as err:
        import_fcd(src, out)
    msg = str(err.value)
    assert "\n" not in msg and str(src) in msg and problem in msg
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []   # no temporary file left


def test_import_missing_file_bad_mode_and_suffix(tmp_path):
    with pytest.raises(ProbeFileError, match="not found"):
        import_fcd(tmp_path / "none.xml", tmp_path / "p.parquet")
    with pytest.raises(ProbeFileError, match="anonymisation"):
        import_fcd(FCD_GEO, tmp_path / "p.parquet", anonymisation="nonsense")
    with pytest.raises(ProbeFileError, match="unknown format"):
        import_fcd(FCD_GEO, tmp_path / "p.xlsx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("mode", ["idless", "rotating", "raw"])
def test_import_in_chunks_gives_the_same_result(tmp_path, suffix, mode):
    # The same explicit salt: by default every import draws a fresh secret one.
    a, n_a, _ = import_fcd(FCD_GEO, tmp_path / f"a{suffix}", anonymisation=mode,
                           rotation_s=1.5, salt=12345, **FCD_KW)
    b, n_b, _ = import_fcd(FCD_GEO, tmp_path / f"b{suffix}", anonymisation=mode,
                           rotation_s=1.5, chunk_rows=2, salt=12345, **FCD_KW)
    assert n_a == n_b == 7
    fa, fb = read_probes(a).frame, read_probes(b).frame
    pd.testing.assert_frame_equal(fa, fb)
    if suffix == ".csv":
        assert a.read_text(encoding="utf-8") == b.read_text(encoding="utf-8")


def test_import_csv_matches_parquet(tmp_path):
    pq_path, *_ = import_fcd(FCD_XY, tmp_path / "a.parquet", origin=ORIGIN,
                             anonymisation="raw", **FCD_KW)
    csv_path, *_ = import_fcd(FCD_XY, tmp_path / "a.csv", origin=ORIGIN,
                              anonymisation="raw", **FCD_KW)
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(PROBE_COLUMNS)
    assert len(lines) == 1 + 7
    a, b = read_probes(pq_path).frame, read_probes(csv_path).frame
    for c in ("time_sent", "time_received"):
        assert (a[c] == b[c]).all()
    for c in ("lat_deg", "lon_deg", "speed_kmh", "heading_deg"):
        assert_allclose(a[c], b[c], rtol=1e-12)
    assert a["pseudonym"].tolist() == b["pseudonym"].tolist()


def test_import_empty_fcd_writes_an_empty_schema_file(tmp_path):
    src = tmp_path / "empty.xml"
    src.write_text('<fcd-export><timestep time="0.00"/></fcd-export>', encoding="utf-8")
    path, rows, _ = import_fcd(src, tmp_path / "e.parquet")
    assert rows == 0
    r = read_probes(path)
    assert r.report.rows_read == 0 and len(r.frame) == 0


BAD_FCD = """<fcd-export>
<timestep time="0.00">
  <vehicle id="good0" x="12.374" y="55.63" angle="90.00" speed="10.00"/>
  <vehicle id="nanpos" x="nan" y="55.63" angle="90.00" speed="10.00"/>
  <vehicle id="nopos" angle="90.00" speed="10.00"/>
  <vehicle id="far" x="12.374" y="95.5" angle="90.00" speed="10.00"/>
  <vehicle id="backward" x="12.374" y="55.63" angle="90.00" speed="-5.00"/>
  <vehicle id="rocket" x="12.374" y="55.63" angle="90.00" speed="1000000"/>
  <vehicle id="spin" x="12.374" y="55.63" angle="inf" speed="10.00"/>
  <vehicle id="over" x="12.374" y="55.63" angle="360.5" speed="10.00"/>
  <vehicle id="noangle" x="12.374" y="55.631" speed="10.00"/>
</timestep>
<timestep>
  <vehicle id="notime" x="12.374" y="55.63" angle="90.00" speed="10.00"/>
</timestep>
<timestep time="1.00">
  <vehicle id="good1" x="12.375" y="55.63" angle="90.00" speed="11.00"/>
</timestep>
</fcd-export>
"""
#: The drops of BAD_FCD by reason (one bad point of each kind, some twice).
BAD_FCD_DROPS = {"bad_timestamp": 1, "missing_value": 2, "lat_lon_out_of_range": 1,
                 "speed_out_of_range": 2, "heading_out_of_range": 2}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("chunk_rows", [200_000, 1])
def test_import_drops_and_counts_bad_points_and_writes_the_rest(tmp_path, suffix, chunk_rows):
    src = tmp_path / "bad.xml"
    src.write_text(BAD_FCD, encoding="utf-8")
    path, rows, report = import_fcd(src, tmp_path / f"p{suffix}", anonymisation="raw",
                                    chunk_rows=chunk_rows, **FCD_KW)
    assert rows == report.rows_kept == 3
    assert report.rows_read == 11 and report.file == str(src)
    assert report.dropped == {k: BAD_FCD_DROPS.get(k, 0) for k in DROP_REASONS}
    assert report.summary() == (
        f"{src}: kept 3 of 11 rows; dropped: bad_timestamp 1, missing_value 2, "
        "lat_lon_out_of_range 1, speed_out_of_range 2, heading_out_of_range 2")
    r = read_probes(path)
    assert r.report.rows_kept == 3 and not any(r.report.dropped.values())
    f = r.frame
    assert f["pseudonym"].tolist() == ["good0", "noangle", "good1"]
    assert np.isfinite(f[["lat_deg", "lon_deg", "speed_kmh"]].to_numpy()).all()
    assert f["heading_deg"].isna().tolist() == [False, True, False]   # unknown is kept
    assert f["time_sent"].notna().all()


def test_import_with_every_point_bad_writes_an_empty_file(tmp_path):
    src = tmp_path / "bad.xml"
    src.write_text('<fcd-export><timestep time="0"><vehicle id="a" x="12.3" y="55.6" '
                   'angle="0" speed="-1"/></timestep></fcd-export>', encoding="utf-8")
    path, rows, report = import_fcd(src, tmp_path / "e.csv")
    assert rows == 0 and report.dropped["speed_out_of_range"] == 1
    assert read_probes(path).report.rows_read == 0
