"""Model files validated everywhere: every field, type and range, one line naming it.

And every command that reads a model for a scenario (``run --controller gps``,
``evaluate``, ``tune``) checks the model's scenario hash, unless
``--allow-other-scenario``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpssignal.control.gps import model_from_scenario
from gpssignal.control.io import model_to_dict
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import Scenario


def one_line_error(code: int, out: str, err: str, *words: str) -> str:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0]
    return lines[0]


@pytest.fixture
def good(tiny_relief: Scenario) -> dict[str, Any]:
    """A valid model file's data for tiny_relief, with its scenario hash."""
    m = model_from_scenario(tiny_relief)
    m = m.with_params(provenance={"scenario_hash": scenario_hash(tiny_relief)})
    return json.loads(json.dumps(model_to_dict(m)))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return an edit that sets ``a.b[0].c``-style ``path`` of the model data."""
    def edit(d: dict[str, Any]) -> None:
        keys: list[Any] = []
        for part in path.split("."):
            name, _, idx = part.partition("[")
            keys.append(name)
            if idx:
                keys.append(int(idx.rstrip("]")))
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


BAD_VALUES = [
    ("window_s", _set("window_s", float("inf")), "window_s = inf"),
    ("provenance", _set("provenance", "x"), "provenance = 'x'"),
    ("projection_deg", _set("projection_deg", "55,12"), "projection_deg = '55,12'"),
    ("unknown_junction", _set("stretches[0].junction", "NOPE"),
     "stretches[0].junction = 'NOPE'"),
    ("polyline_text", _set("stretches[0].polyline_deg", [["a", "b"], [1, 2]]),
     "stretches[0].polyline_deg[0][0] = 'a'"),
    ("polyline_flat", _set("stretches[0].polyline_deg", [1, 2, 3]),
     "stretches[0].polyline_deg[0] = 1"),
    ("min_points_float", _set("min_points", 2.5), "min_points = 2.5"),
    ("min_points_huge", _set("min_points", 10**100), "min_points = <integer of 101 digits>"),
    ("threshold_text", _set("stretches[0].threshold_low_kmh", "20"),
     "stretches[0].threshold_low_kmh = '20'"),
    ("junction_stretches", _set("junctions[0].stretches", "main_eb"),
     "junctions[0].stretches = 'main_eb'"),
    ("unknown_field", _set("colour", "red"), "model.colour: unknown field"),
    ("not_list", _set("stretches", {}), "stretches = {}"),
]


@pytest.mark.parametrize(("case", "edit", "words"), BAD_VALUES,
                         ids=[c[0] for c in BAD_VALUES])
def test_bad_model_field_is_one_line_naming_it(cli, tmp_path: Path, tiny_relief_toml: Path,
                                               good: dict[str, Any], case: str,
                                               edit: Callable[[dict[str, Any]], None],
                                               words: str) -> None:
    edit(good)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    out = tmp_path / "out"
    res = cli("run", tiny_relief_toml, "--controller", "gps", "--model", path,
              "--out", out, "-q")
    one_line_error(*res, "model file", words)
    assert not out.exists()


RAW_FILES = [
    ("deep_nesting", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("huge_integer", '{"kind": "gpssignal-gps-model", "window_s": ' + "9" * 100_000 + "}",
     "not a usable JSON number"),
    ("window_1e309", None, "window_s = inf"),
]


@pytest.mark.parametrize(("case", "text", "words"), RAW_FILES, ids=[c[0] for c in RAW_FILES])
def test_unreadable_model_text_is_one_line(cli, tmp_path: Path, tiny_relief_toml: Path,
                                           good: dict[str, Any], case: str,
                                           text: str | None, words: str) -> None:
    path = tmp_path / "model.json"
    if text is None:  # 1e309 is valid JSON, read as infinity
        text = json.dumps(good).replace('"window_s": 300.0', '"window_s": 1e309')
        assert "1e309" in text
    path.write_text(text, encoding="utf-8")
    res = cli("replay", tmp_path / "none.csv", "--model", path, "--out",
              tmp_path / "out")
    one_line_error(*res, "model file", words)
    assert not (tmp_path / "out").exists()


def test_latin1_byte_in_a_model_file_is_one_line(cli, tmp_path: Path, tiny_relief_toml: Path,
                                                  good: dict[str, Any]) -> None:
    path = tmp_path / "model.json"
    good["provenance"]["note"] = "Vallensbæk"
    path.write_bytes(json.dumps(good, ensure_ascii=False).encode("latin-1"))
    res = cli("run", tiny_relief_toml, "--controller", "gps", "--model", path,
              "--out", tmp_path / "out", "-q")
    one_line_error(*res, "model file", "not UTF-8", "0xe6")


@pytest.mark.parametrize("provenance", [{}, {"scenario_hash": "0123456789abcdef"}],
                         ids=["no_provenance", "other_scenario"])
@pytest.mark.parametrize("command", ["run", "evaluate", "tune"])
def test_model_of_another_scenario_is_refused_unless_allowed(
        cli, tmp_path: Path, tiny_relief_toml: Path, good: dict[str, Any],
        provenance: dict[str, Any], command: str) -> None:
    good["provenance"] = provenance
    path = tmp_path / "model.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    out = tmp_path / "out"
    extra = {"run": ["--controller", "gps"],
             "evaluate": ["--controllers", "gps", "--replications", 1, "--workers", 1],
             "tune": ["--grid", "window_s=300", "--replications", 1, "--workers", 1,
                      "--no-oracle"]}[command]
    argv = [command, tiny_relief_toml, "--model", path, "--out", out, "-q", *extra]
    line = one_line_error(*cli(*argv), "--model = ", "--allow-other-scenario")
    assert ("records no scenario" in line) == (not provenance)
    assert not out.exists()
    if command == "run":
        code, _, err = cli(*argv, "--allow-other-scenario")
        assert code == 0, err
        assert (out / "meta.json").exists()


def test_model_of_this_scenario_runs(cli, tmp_path: Path, tiny_relief_toml: Path,
                                     good: dict[str, Any]) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    code, _, err = cli("run", tiny_relief_toml, "--controller", "gps", "--model", path,
                       "--out", tmp_path / "out", "-q")
    assert code == 0, err
