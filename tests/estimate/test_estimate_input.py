"""Junction lists as people have them: `;` and decimal commas, cp1252 and BOMs, .xlsx;
every problem of a row at once; swapped or far-away positions; empty and all-bad lists."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from gpssignal.cli.common import format_estimate, round_to_uncertainty
from gpssignal.errors import EstimateInputError
from gpssignal.estimate import read_junctions, read_template
from tests.estimate.lists import HEADER

CROSS = ("Køge Søndre,Tårnby,55.6049,12.4012,60,07:00-08:00,07:00,S,,"
         "1,50,20,300,20,1,50,20,150,20,2,50,40,700,40,1,50,20,150,20")
TEMPLATE = read_template()


def _danish(line: str) -> str:
    """The row as a Danish spreadsheet exports it: `;` separators, decimal commas."""
    return line.replace(",", ";").replace("55.6049", "55,6049").replace("12.4012", "12,4012")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_semicolons_decimal_commas_and_encodings_read_as_the_plain_csv(tmp_path: Path,
                                                                       encoding: str) -> None:
    plain, danish = tmp_path / "plain.csv", tmp_path / "danish.csv"
    plain.write_text(f"{HEADER}\n{CROSS}\n", encoding="utf-8")
    danish.write_text(f"{_danish(HEADER)}\n{_danish(CROSS)}\n", encoding=encoding)
    (a,), errors_a = read_junctions(plain, TEMPLATE)
    (b,), errors_b = read_junctions(danish, TEMPLATE)
    assert errors_a == errors_b == []
    assert a == b and b.name == "Køge Søndre" and b.lat == 55.6049


def test_an_xlsx_sheet_reads_as_the_csv(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    import datetime as dt

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER.split(","))
    cells: list[object] = [float(c) if c.replace(".", "").isdigit() else c
                           for c in CROSS.split(",")]
    cells[6] = dt.time(7, 0)          # a spreadsheet makes "07:00" a time
    ws.append([c if c != "" else None for c in cells])
    wb.save(tmp_path / "j.xlsx")
    (tmp_path / "j.csv").write_text(f"{HEADER}\n{CROSS}\n", encoding="utf-8")
    (a,), _ = read_junctions(tmp_path / "j.csv", TEMPLATE)
    (b,), errors = read_junctions(tmp_path / "j.xlsx", TEMPLATE)
    assert errors == [] and a == b


def test_every_problem_of_a_row_is_reported_at_once(tmp_path: Path) -> None:
    bad = CROSS.replace(",60,", ",abc,").replace("07:00-08:00", "7-8").replace(
        ",2,50,40,700,", ",2,500,40,700,")
    p = tmp_path / "j.csv"
    p.write_text(f"{HEADER}\n{bad}\n", encoding="utf-8")
    specs, (error,) = read_junctions(p, TEMPLATE)
    assert specs == []
    assert [c for c, _, _ in error.problems] == ["cycle_s", "period", "S_limit_kmh"]
    assert str(error).startswith("row 1 (Køge Søndre): cycle_s = 'abc': not a number; "
                                 "period = '7-8': expected HH:MM-HH:MM")
    assert "\n" not in str(error)


@pytest.mark.parametrize("lat, lon, words", [
    ("12.4012", "55.6049", "look swapped"),
    ("40.71", "-74.00", "km from the template's region"),
    ("95", "12.4", "must be between -90 and 90"),
])
def test_swapped_or_implausible_positions_are_refused(tmp_path: Path, lat: str, lon: str,
                                                      words: str) -> None:
    p = tmp_path / "j.csv"
    p.write_text(f"{HEADER}\n{CROSS.replace('55.6049,12.4012', f'{lat},{lon}')}\n",
                 encoding="utf-8")
    specs, (error,) = read_junctions(p, TEMPLATE)
    assert specs == [] and words in str(error)


def test_a_volume_with_a_thousands_separator_is_ambiguous(tmp_path: Path) -> None:
    p = tmp_path / "j.csv"
    p.write_text(f"{HEADER}\n{CROSS.replace(',700,', ',1.499,')}\n", encoding="utf-8")
    _, (error,) = read_junctions(p, TEMPLATE)
    assert "S_through_vph = '1.499': ambiguous: 1.499 or 1499?" in str(error)


def test_a_header_only_list_is_an_error_in_one_line(cli, tmp_path: Path) -> None:
    p = tmp_path / "j.csv"
    p.write_text(_danish(HEADER) + "\n", encoding="cp1252")
    with pytest.raises(EstimateInputError, match="no junction rows"):
        read_junctions(p)
    code, out, err = cli("estimate", p, "--out", tmp_path / "out", "-q")
    assert code == 2 and out == ""
    assert err == (f"gpssignal estimate: error: JUNCTIONS = {str(p)!r}: no junction rows "
                   "(only the header)\n")
    assert not (tmp_path / "out").exists()


def test_an_all_bad_list_is_an_error_and_lists_the_bad_rows(cli, tmp_path: Path) -> None:
    p = tmp_path / "j.csv"
    p.write_text(_danish(HEADER) + "\n" + _danish(CROSS.replace(",60,", ",abc,")) + "\n"
                 + _danish(CROSS.replace("Køge", "Other").replace(",S,,", ",X,,")) + "\n",
                 encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = cli("estimate", p, "--out", out, "-q")
    assert code == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == ("gpssignal estimate: error: row 1 (Køge Søndre): cycle_s = 'abc': "
                        "not a number; the row is skipped")
    assert lines[1].startswith("gpssignal estimate: error: row 2 (Other Søndre): "
                               "monitored_arm = 'X'")
    assert lines[2] == (f"gpssignal estimate: error: JUNCTIONS = {str(p)!r}: no usable row "
                        f"(2 bad, listed in {out / 'junctions.csv'})")
    jt = pd.read_csv(out / "junctions.csv")
    assert list(jt["status"]) == ["error", "error"] and list(jt["row"]) == [1, 2]


@pytest.mark.parametrize("value, half, expected", [
    (1366.66, 310.0, (1370.0, 0)),     # the example: tens, not hundredths
    (0.7812, 0.16, (0.78, 2)),
    (-4.4, 25.0, (-4.0, 0)),
    (129.4, math.nan, (129.0, 0)),      # one day: no interval, three significant digits
])
def test_figures_are_rounded_to_their_uncertainty(value: float, half: float,
                                                  expected: tuple[float, int]) -> None:
    assert round_to_uncertainty(value, half) == expected


def test_an_estimate_and_its_interval_are_printed_alike() -> None:
    assert format_estimate(1366.66, 1056.66, 1676.66) == ("1,370", "[1,060, 1,680]")
