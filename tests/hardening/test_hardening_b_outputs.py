"""Hardening B: the estimator's outputs are injection-safe.

A junction list is user text: a newline in ``note`` or ``municipality`` must
not inject TOML into the generated scenario, a cell starting with ``=`` must
not become a spreadsheet formula, ``<img onerror=...>`` must not become HTML
in ``estimate.md``/``estimate.html``, and a 250-character name must give a
file name a file system accepts, decided before any simulation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from gpssignal.estimate import build_scenario, junction_table, read_junctions, read_template
from gpssignal.estimate.junctions import MAX_ID_CHARS, RowError, one_line
from gpssignal.estimate.run import csv_safe
from gpssignal.model.io import parse_scenario
from gpssignal.report.document import md_table
from gpssignal.report.estimate import estimate_report
from tests.estimate.lists import HEADER

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "scenarios" / "estimate_template.toml"
VOLUMES = "1,50,20,300,20,1,50,20,150,20,2,50,40,700,40,1,50,20,150,20"
INJECTED = '\n[[schedule]]\nat = "07:00"\nprogram = "peak"\n'


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _list(tmp_path: Path, name: str, municipality: str, note: str) -> Path:
    row = ",".join([_csv_field(name), _csv_field(municipality), "55.60", "12.40", "60",
                    "07:00-08:00", "07:00", "S", _csv_field(note), VOLUMES])
    p = tmp_path / "junctions.csv"
    p.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
    return p


def test_a_newline_in_note_or_municipality_cannot_inject_toml(tmp_path: Path) -> None:
    tpl = read_template(TEMPLATE)
    specs, errors = read_junctions(_list(tmp_path, "Cross", "Town" + INJECTED,
                                         "counted 2019" + INJECTED + "\u2028[x]\r\n"))
    assert errors == [] and len(specs) == 1
    sc, text = build_scenario(specs[0], tpl)
    assert sc.schedule == ()
    assert "schedule" not in tomllib.loads(text)
    header = text.split("\n[scenario]", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert parse_scenario(text) == sc
    assert one_line("a\nb\u2029c\x00d") == "a b c d"
    assert len(one_line("x" * 1000)) == 200


def test_a_very_long_name_gives_a_short_distinct_file_name(tmp_path: Path) -> None:
    long_a, long_b = "A" * 250, "A" * 249 + "B"
    p = tmp_path / "j.csv"
    rows = [",".join([n, "Town", "55.6", "12.4", "60", "07:00-08:00", "07:00", "S", "",
                      VOLUMES]) for n in (long_a, long_b)]
    p.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    specs, errors = read_junctions(p)
    assert errors == [] and len(specs) == 2
    ids = [s.id for s in specs]
    assert all(len(i) <= MAX_ID_CHARS for i in ids) and ids[0] != ids[1]
    (tmp_path / "scenarios").mkdir()
    for i in ids:
        (tmp_path / "scenarios" / f"{i}.toml").write_text("x", encoding="utf-8")
    sc, _ = build_scenario(specs[0], read_template(TEMPLATE))
    assert sc.name == ids[0]


def test_formula_cells_are_neutralised_and_numbers_left_alone() -> None:
    for text in ("=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx"):
        assert csv_safe(text) == "'" + text
    assert csv_safe("Vallensbæk") == "Vallensbæk"
    jt = junction_table([], [RowError(3, "=cmd|' /C calc'!A0", "lat", "x", "not a number")])
    assert jt.loc[0, "name"].startswith("'=") and jt.loc[0, "row"] == 3


def test_user_text_is_escaped_in_the_markdown_and_html_report() -> None:
    evil = "<img src=x onerror=alert(1)>"
    jt = junction_table([], [RowError(1, evil + "\n| x |", "lat", "x", "not a number")])
    mt = pd.DataFrame(columns=["municipality", "junctions"])
    files = estimate_report(jt, mt, header=f"list {evil}")
    md, page = files["estimate.md"].decode(), files["estimate.html"].decode()
    assert "<img src=x" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "<img src=x" not in page
    table = md_table(pd.DataFrame({"a": ["x\ny | z"]}))
    assert table.splitlines()[2] == "| x y \\| z |"
