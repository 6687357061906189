"""Probe data on the command line: bad rows are dropped and counted, bad files refused in one line.

``import-fcd`` applies check-probes' row checks to the points it writes; a
ragged CSV row is one dropped row, not a refused file; a header cell holding a
line break still gives a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpssignal.probes.io import MAX_SPEED_KMH, read_probes

HEADER = "time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg"
ROW = "2019-05-06T04:00:0{i}Z,2019-05-06T04:00:1{i}Z,55.63,12.38,3{i},90"

#: One good point and one bad point of each kind the import must drop.
FCD = """<fcd-export>
<timestep time="0">
  <vehicle id="good" x="12.40" y="55.65" speed="10" angle="90"/>
  <vehicle id="nan_position" x="nan" y="nan" speed="10" angle="90"/>
  <vehicle id="lat_95" x="12.40" y="95" speed="10" angle="90"/>
  <vehicle id="minus_18_kmh" x="12.40" y="55.65" speed="-5" angle="90"/>
  <vehicle id="3600000_kmh" x="12.40" y="55.65" speed="1000000" angle="90"/>
  <vehicle id="infinite_heading" x="12.40" y="55.65" speed="10" angle="inf"/>
</timestep>
<timestep>
  <vehicle id="no_time" x="12.40" y="55.65" speed="10" angle="90"/>
</timestep>
</fcd-export>
"""


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_import_fcd_writes_only_plausible_points(cli, tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "f.xml"
    src.write_text(FCD, encoding="utf-8")
    out = tmp_path / f"o{suffix}"
    code, stdout, err = cli("import-fcd", src, "--out", out, "--anonymisation", "raw")
    assert code == 0 and err == ""
    assert stdout.splitlines()[0] == (
        f"{src}: kept 1 of 7 rows; dropped: bad_timestamp 1, missing_value 1, "
        "lat_lon_out_of_range 1, speed_out_of_range 2, heading_out_of_range 1")
    r = read_probes(out)
    assert not any(r.report.dropped.values())       # nothing left for a reader to drop
    f = r.frame
    assert f["pseudonym"].tolist() == ["good"]
    assert f["time_sent"].notna().all()
    assert np.isfinite(f[["lat_deg", "lon_deg", "speed_kmh", "heading_deg"]].to_numpy()).all()
    assert f["speed_kmh"].between(0, MAX_SPEED_KMH).all()


@pytest.mark.parametrize("ragged", [ROW.format(i=8) + ",extra", ROW.format(i=8)[:-3],
                                    ROW.format(i=8) + ",,,", "x"])
def test_a_ragged_row_is_dropped_not_the_file(cli, tmp_path: Path, ragged: str) -> None:
    src = tmp_path / "p.csv"
    src.write_text("\n".join([HEADER, ROW.format(i=1), ragged, ROW.format(i=2)]) + "\n",
                   encoding="utf-8")
    out = tmp_path / "clean.csv"
    code, stdout, err = cli("check-probes", src, "--out", out)
    assert code == 0 and err == ""
    assert stdout.splitlines()[0] == f"{src}: kept 2 of 3 rows; dropped: ragged_row 1"
    assert read_probes(out).frame["speed_kmh"].tolist() == [31.0, 32.0]


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\r", "\u2028", "\x0b", "\x0c", "\x85"])
def test_a_line_break_in_a_header_cell_is_refused_in_one_line(cli, tmp_path: Path,
                                                              brk: str) -> None:
    src = tmp_path / "p.csv"
    src.write_text(f'time_sent,"lat{brk}deg",lon_deg,speed_kmh\n'
                   "2019-05-06T04:00:00Z,55.63,12.38,30\n", encoding="utf-8", newline="")
    code, stdout, err = cli("check-probes", src)
    assert code == 2 and stdout == ""
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert "missing column 'lat_deg'" in lines[0] and repr(f"lat{brk}deg") in lines[0]


def test_an_ignored_column_with_a_line_break_is_listed_on_one_line(cli, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text(f'{HEADER},"a\nb"\n{ROW.format(i=1)},x\n', encoding="utf-8")
    code, stdout, err = cli("check-probes", src)
    assert code == 0 and err == ""
    assert stdout.splitlines() == [f"{src}: kept 1 of 1 rows; dropped: none; "
                                   "ignored columns: a\\nb"]


def test_a_file_that_is_not_utf8_is_refused_in_one_line(cli, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_bytes(f"{HEADER}\n".encode() + b"\xff\xfe\n")
    code, _, err = cli("check-probes", src)
    assert code == 2 and len(err.strip("\n").splitlines()) == 1
    assert "not readable CSV" in err
