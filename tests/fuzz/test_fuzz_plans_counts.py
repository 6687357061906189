"""Fuzzing the program files of the junction list, import-sumo's counts CSV and SUMO XML.

* ``program_file`` (docs/estimate.md): a hostile plan or scenario file makes
  its row a bad row (one line naming ``program_file``, its value and the
  reason), never a traceback or a hang; paths outside the list's folder,
  devices, FIFOs and folders are refused unread.
* ``--counts`` (docs/import.md): one line naming the row, column and value.
* SUMO network and route XML: one line naming the element or the file;
  entity definitions ("billion laughs"), compressed bombs and devices are
  refused before they can exhaust memory or time.

Bounded and derandomised as ``test_fuzz_readers.py`` (``GPSSIGNAL_FUZZ_EXAMPLES``,
5 s per example); the corpora pin the cases found.
"""

from __future__ import annotations

import gzip
import os
import re
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from gpssignal.errors import GpssignalError
from gpssignal.estimate import build_scenario, read_junctions, read_template
from gpssignal.interop import sumo_import
from gpssignal.interop.sumo_import import (
    MAX_INTERVAL_COUNT,
    SumoImportError,
    import_sumo,
    parse_counts,
    read_counts,
)
from tests.conftest import run_cli
from tests.estimate.lists import CROSS, HEADER
from tests.fuzz.test_fuzz_readers import (
    DEADLINE_S,
    FUZZ,
    HOSTILE,
    _returns_or_refuses,
    _write_csv,
    mutated,
    mutated_rows,
    mutated_text,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = read_template()
PLAN_TEXT = "cycle_s = 60\n[greens]\nN = [0, 30]\nS = [0, 34]\nE = [40, 54]\nW = [40, 54]\n"
PLAN = tomllib.loads(PLAN_TEXT)
RILSA = REPO / "tests" / "data" / "sumo_import" / "rilsa3"
NET_TEXT = (RILSA / "rilsa3.net.xml").read_text(encoding="utf-8")
ROUTES_TEXT = (RILSA / "flows.rou.xml").read_text(encoding="utf-8")
COUNTS_TEXT = ("link,movement,start,count\nem,left,07:00,30\nem,left,07:15,40\n"
               "em,through,07:15,100\nsm,right,07:30,12.5\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_plans")


# ---------------------------------------------------------------------------
# program files
# ---------------------------------------------------------------------------

def _row_with_program_file(folder: Path, cell: str) -> tuple[list[Any], list[Any]]:
    """Read a one-row list naming ``cell`` as program_file and build its scenario."""
    path = folder / "j.csv"
    path.write_text(HEADER + ",program_file\n" + CROSS + "," + cell + "\n", encoding="utf-8",
                    errors="surrogatepass")
    specs, errors = read_junctions(path, TEMPLATE)
    for spec in specs:
        build_scenario(spec, TEMPLATE)
    for e in errors:
        assert "\n" not in str(e) and len(str(e)) < 600, str(e)
        # The file's own problems name program_file; a cycle that differs from the
        # list's names cycle_s (and the file).
        assert "program_file" in str(e) or "the program file" in str(e), str(e)
    return specs, errors


def _plan_returns_or_refuses(folder: Path, text: str) -> None:
    (folder / "p.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    _returns_or_refuses(_row_with_program_file, folder, "p.toml")


@FUZZ
@given(mutated(PLAN))
def test_fuzz_plan_file_values(workdir: Path, data: Any) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return
    _plan_returns_or_refuses(workdir, text)


#: Cycle seconds of a green window: in and out of the cycle, on its edges, NaN.
WINDOW_TIMES = st.one_of(st.floats(-100, 300), st.integers(-100, 300),
                         st.sampled_from([0, 30, 34, 40, 54, 59.999, 60, 1e308, float("nan")]))


@FUZZ
@given(st.dictionaries(st.sampled_from(["N", "E", "S", "W", "X", "n", ""]),
                       st.lists(WINDOW_TIMES, min_size=0, max_size=3), max_size=5),
       st.one_of(st.sampled_from([30, 60, 200, 29.999, 200.001, 1e9, -60]),
                 st.floats(0, 300)))
def test_fuzz_plan_file_windows(workdir: Path, greens: dict[str, list[Any]],
                                cycle: float) -> None:
    """Windows missing, negative, overlapping, wrapping, out of the cycle; any cycle."""
    text = tomli_w.dumps({"cycle_s": cycle, "greens": greens})
    _plan_returns_or_refuses(workdir, text)


@FUZZ
@given(mutated_text(PLAN_TEXT))
def test_fuzz_plan_file_text(workdir: Path, text: str) -> None:
    _plan_returns_or_refuses(workdir, text)


@pytest.fixture(scope="module")
def scenario_text() -> str:
    """An estimate's own generated scenario, the other accepted form of a program file."""
    (spec,), _ = read_junctions_plain()
    return build_scenario(spec, TEMPLATE)[1]


def read_junctions_plain() -> tuple[list[Any], list[Any]]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "j.csv"
        p.write_text(HEADER + "\n" + CROSS + "\n", encoding="utf-8")
        return read_junctions(p, TEMPLATE)


@FUZZ
@given(st.data())
def test_fuzz_scenario_as_program_file(workdir: Path, scenario_text: str,
                                       data: st.DataObject) -> None:
    raw = tomllib.loads(scenario_text)
    # Mutate the part read: the first junction's programs.
    raw["junction"][0] = data.draw(mutated(raw["junction"][0]))
    try:
        text = tomli_w.dumps(raw)
    except (TypeError, ValueError):
        return
    _plan_returns_or_refuses(workdir, text)


PLAN_CORPUS = {
    "nested_100000": "a = " + "[" * 100_000 + "]" * 100_000,       # RecursionError before
    "integer_5000_digits": "cycle_s = " + "9" * 5000,               # ValueError before
    "cycle_1e9": PLAN_TEXT.replace("60", "1e9"),
    "negative": PLAN_TEXT.replace("[0, 30]", "[-5, 30]"),
    "overlapping": PLAN_TEXT.replace("E = [40, 54]", "E = [25, 50]"),
    "missing_greens": "cycle_s = 60\n",
    "empty_greens": "cycle_s = 60\n[greens]\n",
    "group_key_newline": PLAN_TEXT.replace("[greens]\n", '[greens]\n"x\\ny" = [1, 2]\n'),
    "unknown_key_newline": PLAN_TEXT + '"a\\nb" = 1\n',
    "window_of_10000": PLAN_TEXT.replace("[0, 30]", "[" + ", ".join(["1"] * 10_000) + "]"),
    "garbage_scenario": 'junction = [{default_program = {a = 1}, program = [1, [2]]}]\n',
    "not_utf8": "cycle_s = 60 # \udcff\n",
}


@pytest.mark.parametrize("name", sorted(PLAN_CORPUS))
def test_plan_corpus_is_a_bad_row_in_one_short_line(workdir: Path, name: str) -> None:
    (workdir / "p.toml").write_text(PLAN_CORPUS[name], encoding="utf-8",
                                    errors="surrogateescape")
    t0 = time.perf_counter()
    specs, errors = _row_with_program_file(workdir, "p.toml")
    assert specs == [] and len(errors) == 1
    assert str(errors[0]).startswith("row 1 (Cross): program_file = 'p.toml': ")
    assert len(str(errors[0])) < 300 and time.perf_counter() - t0 < DEADLINE_S


@pytest.mark.parametrize("cell, reason", [
    ("/dev/zero", "inside the junction list's folder"),   # was read for ever (st_size 0)
    ("../outside.toml", "inside the junction list's folder"),
    ("ABSOLUTE", "inside the junction list's folder"),
    ("link.toml", "inside the junction list's folder"),    # a symlink leading outside
    ("fifo", "not a regular file"),                       # blocked for ever
    ("sub", "is a folder"),
    ("a\x00b", "inside the junction list's folder"),      # ValueError before
    ("missing.toml", "no such file"),
])
def test_program_file_paths_are_refused_unread(tmp_path: Path, cell: str, reason: str) -> None:
    folder = tmp_path / "list"
    folder.mkdir()
    outside = tmp_path / "outside.toml"
    outside.write_text(PLAN_TEXT, encoding="utf-8")
    (folder / "link.toml").symlink_to(outside)
    (folder / "sub").mkdir()
    os.mkfifo(folder / "fifo")
    cell = str(outside) if cell == "ABSOLUTE" else cell
    t0 = time.perf_counter()
    specs, errors = _row_with_program_file(folder, cell)
    assert specs == [] and reason in str(errors[0]), str(errors[0])
    assert time.perf_counter() - t0 < DEADLINE_S


def test_a_program_file_in_a_subfolder_is_read(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "x.toml").write_text(PLAN_TEXT, encoding="utf-8")
    specs, errors = _row_with_program_file(tmp_path, "plans/x.toml")
    assert errors == [] and specs[0].plan_windows is not None


# ---------------------------------------------------------------------------
# the counts CSV
# ---------------------------------------------------------------------------

def _counts(text: str) -> None:
    parse_counts(text, 900.0)
    import_sumo(RILSA / "rilsa3.net.xml", (), additional=[RILSA / "rilsa3_tls.add.xml"],
                counts=text, clock0_s=7 * 3600.0, origin=(52.52, 13.40))


@FUZZ
@given(mutated_rows(COUNTS_TEXT))
def test_fuzz_counts_rows(workdir: Path, rows: list[list[Any]]) -> None:
    path = _write_csv(workdir / "counts.csv", rows)
    _returns_or_refuses(lambda: _counts(read_counts(path)))


@FUZZ
@given(mutated_text(COUNTS_TEXT))
def test_fuzz_counts_text(text: str) -> None:
    _returns_or_refuses(_counts, text)


COUNTS_CORPUS = {
    "field_200k": "link,movement,start,count\n" + "a" * 200_000 + ",left,07:00,1\n",  # csv.Error
    "count_1e308": "link,movement,start,count\nem,left,07:00,1e308\n",  # 'flow_vph = inf'
    "count_5000_digits": "link,movement,start,count\nem,left,07:00," + "9" * 5000 + "\n",
    "start_5000_chars": "link,movement,start,count\nem,left," + "7" * 5000 + ",1\n",
    "count_above_limit": f"link,movement,start,count\nem,left,07:00,{MAX_INTERVAL_COUNT + 1}\n",
    "nul": "link,movement,start,count\nem,left,07:00,1\x00\n",
}


@pytest.mark.parametrize("name", sorted(COUNTS_CORPUS))
def test_counts_corpus_is_refused_in_one_short_line(name: str) -> None:
    with pytest.raises(SumoImportError) as info:
        _counts(COUNTS_CORPUS[name])
    assert "\n" not in str(info.value) and len(str(info.value)) < 300, str(info.value)
    assert "counts CSV" in str(info.value)


@pytest.mark.parametrize("kind", ["dev_zero", "folder", "not_utf8"])
def test_import_sumo_counts_file_is_refused_and_out_untouched(tmp_path: Path, kind: str) -> None:
    """--counts /dev/zero was read for ever; a folder or bad bytes gave a multi-part message."""
    counts = {"dev_zero": Path("/dev/zero"), "folder": tmp_path}.get(kind, tmp_path / "c.csv")
    if kind == "not_utf8":
        counts.write_bytes(b"link,movement,start,count\nem,left,07:00,\xff\n")
    out = tmp_path / "out.toml"
    out.write_text("the user's file\n", encoding="utf-8")
    code, _, err = run_cli("import-sumo", RILSA / "rilsa3.net.xml", "--additional",
                           RILSA / "rilsa3_tls.add.xml", "--counts", counts, "--out", out,
                           "--force", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "--counts" in err, err
    assert out.read_text(encoding="utf-8") == "the user's file\n"


# ---------------------------------------------------------------------------
# SUMO XML
# ---------------------------------------------------------------------------

@st.composite
def mutated_xml(draw: st.DrawFn, text: str) -> str:
    """``text`` with one to three attributes dropped or made hostile, or elements dropped
    or duplicated."""
    root = ET.fromstring(text)
    for _ in range(draw(st.integers(1, 3))):
        parents = [(p, c) for p in root.iter() for c in p]
        parent, el = draw(st.sampled_from(parents))
        op = draw(st.sampled_from(["drop_attr", "attr", "attr", "drop_el", "dup_el"]))
        if op in ("drop_attr", "attr") and el.attrib:
            key = draw(st.sampled_from(sorted(el.attrib)))
            if op == "drop_attr":
                del el.attrib[key]
            else:
                el.set(key, _XML_ILLEGAL.sub("", str(draw(HOSTILE))))
        elif op == "drop_el":
            parent.remove(el)
        elif op == "dup_el":
            parent.append(ET.fromstring(ET.tostring(el)))
    return ET.tostring(root, encoding="unicode")


#: Characters XML 1.0 cannot hold at all (an attribute with them could not be written).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_import(net: Path, routes: tuple[Path, ...] = ()) -> None:
    import_sumo(net, routes, additional=[RILSA / "rilsa3_tls.add.xml"],
                default_vph=None if routes else 100.0, origin=(52.52, 13.40))


@FUZZ
@given(mutated_xml(NET_TEXT))
def test_fuzz_sumo_net(workdir: Path, text: str) -> None:
    path = workdir / "x.net.xml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _returns_or_refuses(_xml_import, path)


@FUZZ
@given(mutated_xml(ROUTES_TEXT))
def test_fuzz_sumo_routes(workdir: Path, text: str) -> None:
    path = workdir / "x.rou.xml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _returns_or_refuses(_xml_import, RILSA / "rilsa3.net.xml",
                        (RILSA / "vtypes.add.xml", path))


LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE net [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">'
                    for i in range(8)) + "]>\n<net>&i;</net>\n")
XML_CORPUS = {
    "billion_laughs": LAUGHS,   # 10^9 characters; expat's own guard starts only at 8 MiB
    "external_entity": '<?xml version="1.0"?>\n<!DOCTYPE net [<!ENTITY x SYSTEM '
                       '"file:///etc/passwd">]>\n<net>&x;</net>\n',
    "doctype_late": "<!-- " + "x" * 100_000 + " -->\n<!DOCTYPE net>\n<net/>\n",
    "deep_200000": "<net>" + "<a>" * 200_000 + "</a>" * 200_000 + "</net>",
    "not_xml": "\x00\x01 hello",
    "other_root": "<routes/>",
}


@pytest.mark.parametrize("name", sorted(XML_CORPUS))
def test_xml_corpus_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x.net.xml"
    path.write_text(XML_CORPUS[name], encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(GpssignalError) as info:
        _xml_import(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert time.perf_counter() - t0 < DEADLINE_S


def test_a_compressed_bomb_is_refused_with_the_limit(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Decompression stops one byte past the limit (here lowered to 1 MiB to stay quick)."""
    monkeypatch.setattr(sumo_import, "MAX_FILE_BYTES", 2**20)
    path = tmp_path / "x.net.xml.gz"
    path.write_bytes(gzip.compress(b"<net>" + b" " * (2 * 2**20) + b"</net>"))
    assert path.stat().st_size < 2**20
    with pytest.raises(SumoImportError, match="above the limit of 1,048,576"):
        _xml_import(path)


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "laughs"])
def test_import_sumo_refuses_hostile_networks_and_keeps_out(tmp_path: Path, kind: str) -> None:
    """/dev/zero was read for ever, a FIFO blocked; the user's --out file stays."""
    net = {"dev_zero": Path("/dev/zero")}.get(kind, tmp_path / "x.net.xml")
    if kind == "fifo":
        os.mkfifo(net)
    elif kind == "laughs":
        net.write_text(LAUGHS, encoding="utf-8")
    out = tmp_path / "out.toml"
    out.write_text("the user's file\n", encoding="utf-8")
    code, _, err = run_cli("import-sumo", net, "--default-vph", 100, "--out", out, "--force",
                           "--quiet")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert out.read_text(encoding="utf-8") == "the user's file\n"
