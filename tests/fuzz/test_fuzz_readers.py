"""Fuzzing the readers: hostile input returns, or raises a GpssignalError, quickly.

Hypothesis mutates four kinds of input (scenario TOML from tiny.toml, the
model JSON of data/vallensbaek_model.json, a probe CSV and the junction CSV
of data/junctions_example.csv): values dropped, duplicated or replaced by
hostile ones (huge, NaN and infinite numbers, wrong types, long strings,
unicode), lines duplicated or dropped, text cut short. Each is run through
its library reader, which must return or raise
:class:`~gpssignal.errors.GpssignalError` within the deadline. Examples are
derandomised and bounded (``EXAMPLES`` per kind), so the folder runs in
well under a minute; the regression corpus pins the cases found.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpssignal.control.io import model_from_dict, read_model
from gpssignal.errors import GpssignalError
from gpssignal.estimate import build_scenario, read_junctions, read_template
from gpssignal.model.io import parse_scenario
from gpssignal.probes.io import read_probes

REPO = Path(__file__).resolve().parents[2]
TINY_TEXT = (REPO / "scenarios" / "tiny.toml").read_text(encoding="utf-8")
TINY = tomllib.loads(TINY_TEXT)
MODEL = json.loads((REPO / "data" / "vallensbaek_model.json").read_text(encoding="utf-8"))
JUNCTIONS_TEXT = (REPO / "data" / "junctions_example.csv").read_text(encoding="utf-8")
TEMPLATE = REPO / "scenarios" / "estimate_template.toml"
PROBES_TEXT = ("time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg,pseudonym\n"
               "2019-05-06T05:00:01Z,2019-05-06T05:00:07Z,55.6300,12.3800,32.5,90,a\n"
               "2019-05-06T05:00:06Z,2019-05-06T05:00:09Z,55.6301,12.3805,30.0,91,a\n"
               "2019-05-06 07:00:11,,55.6302,12.3810,0,,\n")
#: Examples per input kind (``GPSSIGNAL_FUZZ_EXAMPLES`` for a longer local
#: hunt), and the most one example may take [s].
EXAMPLES = int(os.environ.get("GPSSIGNAL_FUZZ_EXAMPLES", "100"))
DEADLINE_S = 5.0
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=DEADLINE_S),
                derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE_NUMBERS = st.sampled_from([0, -1, 1e9, -1e9, 1e308, -1e308, 1e-9, 5e-324, 2**63,
                                   -(2**63), 10**30, 10**400, float("nan"), float("inf"),
                                   float("-inf")])
HOSTILE = st.one_of(
    HOSTILE_NUMBERS, st.floats(), st.integers(), st.booleans(),
    st.text(max_size=40), st.sampled_from(["x" * 5000, "Ø\u202e\u0000\n[x]", "", " ", "nan",
                                           "1e999", "=cmd()", "<img src=x onerror=1>"]),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every value inside ``obj`` (dict keys and list indexes)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else []
    out = []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """Return ``base`` with one to three values dropped, duplicated or replaced."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = draw(st.sampled_from(["drop", "duplicate", "replace", "replace"]))
        if op == "drop":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "duplicate":
            parent[f"{key}_copy"] = copy.deepcopy(parent[key])
        else:
            parent[key] = draw(HOSTILE)
    return data


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """Return ``text`` with a line duplicated or dropped, or cut short."""
    lines = text.splitlines(keepends=True)
    op = draw(st.sampled_from(["dup", "drop", "cut"]))
    k = draw(st.integers(0, len(lines) - 1))
    if op == "dup":
        lines.insert(k, lines[k])
    elif op == "drop":
        del lines[k]
    else:
        return text[:draw(st.integers(0, len(text)))]
    return "".join(lines)


def _returns_or_refuses(fn: Any, *args: Any) -> None:
    """Call ``fn``: it must return or raise GpssignalError (one line) within the deadline."""
    t0 = time.perf_counter()
    try:
        fn(*args)
    except GpssignalError as exc:
        assert str(exc)
        assert "\n" not in str(exc), str(exc)
    assert time.perf_counter() - t0 < DEADLINE_S


def _toml(data: Any) -> str | None:
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):  # a replaced root or an unwritable mix
        return None


@FUZZ
@given(mutated(TINY))
def test_fuzz_scenario_values(data: Any) -> None:
    text = _toml(data)
    if text is not None:
        _returns_or_refuses(parse_scenario, text, REPO / "scenarios")


@FUZZ
@given(mutated_text(TINY_TEXT))
def test_fuzz_scenario_text(text: str) -> None:
    _returns_or_refuses(parse_scenario, text, REPO / "scenarios")


@FUZZ
@given(mutated(MODEL))
def test_fuzz_model_json(data: Any) -> None:
    _returns_or_refuses(model_from_dict, data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the files the CSV fuzzers write."""
    return tmp_path_factory.mktemp("fuzz")


def _csv_rows(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]


def _write_csv(path: Path, rows: list[list[Any]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf).writerows([[str(c) for c in r] for r in rows])
    path.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
    return path


@st.composite
def mutated_rows(draw: st.DrawFn, text: str) -> list[list[Any]]:
    """CSV rows with cells replaced by hostile values, rows duplicated or dropped."""
    rows = _csv_rows(text)
    for _ in range(draw(st.integers(1, 4))):
        r = draw(st.integers(0, len(rows) - 1))
        op = draw(st.sampled_from(["cell", "cell", "cell", "dup", "drop", "short"]))
        if op == "cell" and rows[r]:
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(HOSTILE)
        elif op == "dup":
            rows.insert(r, list(rows[r]))
        elif op == "drop" and len(rows) > 1:
            del rows[r]
        elif op == "short":
            rows[r] = rows[r][:draw(st.integers(0, len(rows[r])))]
    return rows


@FUZZ
@given(mutated_rows(PROBES_TEXT))
def test_fuzz_probe_csv(workdir: Path, rows: list[list[Any]]) -> None:
    path = _write_csv(workdir / "probes.csv", rows)
    _returns_or_refuses(read_probes, path)


def _junctions_and_scenarios(path: Path) -> None:
    specs, _ = read_junctions(path)
    tpl = read_template(TEMPLATE)
    for spec in specs[:2]:
        build_scenario(spec, tpl)


@FUZZ
@given(mutated_rows(JUNCTIONS_TEXT))
def test_fuzz_junction_csv(workdir: Path, rows: list[list[Any]]) -> None:
    path = _write_csv(workdir / "junctions.csv", rows)
    _returns_or_refuses(_junctions_and_scenarios, path)


@FUZZ
@given(mutated_text(json.dumps(MODEL, indent=1)))
def test_fuzz_model_file_text(workdir: Path, text: str) -> None:
    path = workdir / "model.json"
    path.write_text(text, encoding="utf-8")
    _returns_or_refuses(read_model, path)


# --- regression corpus: concrete cases found by hand and by the fuzzers ------------------

def _tiny(old: str, new: str) -> str:
    assert TINY_TEXT.count(old) == 1, old
    return TINY_TEXT.replace(old, new)


CORPUS = {
    "drain_1e9": _tiny("drain_s = 300", "drain_s = 1e9"),
    "flow_1e9": _tiny("flow_vph = [600]", "flow_vph = [1e9]"),
    "step_1ns": _tiny("step_s = 0.5", "step_s = 1e-9"),
    "cycle_1e9": _tiny("cycle_s = 60\noffset_s = 0\ngreens = { A = [50, 30]",
                       "cycle_s = 1e9\noffset_s = 0\ngreens = { A = [50, 30]"),
    "demand_dev_zero": _tiny("[demand]\n", '[demand]\nfile = "/dev/zero"\n'),
    "nested_100000": "a = " + "[" * 100_000 + "]" * 100_000,
    # found by the fuzzers / the corpus work (OverflowError, ZeroDivisionError, file access):
    "duration_400_digits": _tiny("duration_s = 900", "duration_s = " + "9" * 400),
    "drain_400_digits": _tiny("drain_s = 300", "drain_s = " + "9" * 400),
    "flow_400_digits": _tiny("flow_vph = [600]", "flow_vph = [" + "9" * 400 + "]"),
    "intergreen_400_digits": _tiny("A = { B = 5 }", "A = { B = " + "9" * 400 + " }"),
    "integer_5000_digits": _tiny("duration_s = 900", "duration_s = " + "9" * 5000),
    "interval_zero": _tiny("interval_s = 900", "interval_s = 0"),
    "timezone_path": _tiny("seed = 1\n", 'seed = 1\ntimezone = "../../../etc/passwd"\n'),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_regression_corpus_is_refused_in_one_line(name: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(GpssignalError) as info:
        parse_scenario(CORPUS[name], REPO / "scenarios")
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
    assert time.perf_counter() - t0 < DEADLINE_S
