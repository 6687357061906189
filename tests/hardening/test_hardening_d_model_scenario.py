"""Hardening D: every command that reads a model for a scenario checks its hash.

``replay`` takes no scenario of its own; with ``--scenario`` it checks that
the model was trained for it (the same check as ``run --controller gps``,
``evaluate`` and ``tune``), unless ``--allow-other-scenario``. ``cross-check
--model`` checks it too, before SUMO is started (so this runs without SUMO).
A refused model is one line, exit code 2, and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpssignal.control.gps import model_from_scenario
from gpssignal.control.io import model_to_dict
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import Scenario

OTHER_HASH = "0123456789abcdef"


def one_line_error(code: int, out: str, err: str, *words: str) -> str:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def model_file(tiny_relief: Scenario, tmp_path: Path):
    """``model_file(provenance) -> path`` of a valid model of tiny_relief with that provenance."""
    def write(provenance: dict[str, Any]) -> Path:
        m = model_from_scenario(tiny_relief).with_params(provenance=provenance)
        path = tmp_path / "model.json"
        path.write_text(json.dumps(model_to_dict(m)), encoding="utf-8")
        return path
    return write


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory: pytest.TempPathFactory, tiny_relief_toml: Path, cli) -> Path:
    path = tmp_path_factory.mktemp("probes") / "probes.csv"
    code, _, err = cli("probes", tiny_relief_toml, "--out", path, "-q", "--penetration", 0.2)
    assert code == 0, err
    return path


@pytest.mark.parametrize("provenance", [{}, {"scenario_hash": OTHER_HASH}],
                         ids=["no_provenance", "other_scenario"])
def test_replay_with_scenario_refuses_a_model_of_another_scenario_unless_allowed(
        cli, tmp_path: Path, tiny_relief: Scenario, tiny_relief_toml: Path, probe_file: Path,
        model_file, provenance: dict[str, Any]) -> None:
    model = model_file(provenance)
    out = tmp_path / "out"
    argv = ["replay", probe_file, "--model", model, "--scenario", tiny_relief_toml,
            "--out", out]
    line = one_line_error(*cli(*argv), "gpssignal replay: error: --model = ",
                          scenario_hash(tiny_relief), "--allow-other-scenario")
    assert ("records no scenario" in line) == (not provenance)
    assert not out.exists()
    code, _, err = cli(*argv, "--allow-other-scenario")
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["scenario_hash"] == scenario_hash(tiny_relief)
    assert meta["model_training"] == provenance.get("scenario_hash")
    assert meta["allow_other_scenario"] is True


def test_replay_with_the_model_s_scenario_runs(cli, tmp_path: Path, tiny_relief: Scenario,
                                                tiny_relief_toml: Path, probe_file: Path,
                                                model_file) -> None:
    h = scenario_hash(tiny_relief)
    model = model_file({"scenario_hash": h})
    code, _, err = cli("replay", probe_file, "--model", model, "--scenario", tiny_relief_toml,
                       "--out", tmp_path / "out")
    assert code == 0, err
    meta = json.loads((tmp_path / "out" / "meta.json").read_text(encoding="utf-8"))
    assert meta["model_training"] == meta["scenario_hash"] == h
    assert meta["allow_other_scenario"] is False


def test_replay_without_scenario_checks_nothing_as_before(cli, tmp_path: Path,
                                                          probe_file: Path,
                                                          model_file) -> None:
    code, _, err = cli("replay", probe_file, "--model", model_file({}), "--out",
                       tmp_path / "out")
    assert code == 0, err
    assert "scenario_hash" not in json.loads((tmp_path / "out" / "meta.json").read_text(
        encoding="utf-8"))


def test_replay_allow_other_scenario_needs_a_scenario(cli, tmp_path: Path, probe_file: Path,
                                                      model_file) -> None:
    out = tmp_path / "out"
    one_line_error(*cli("replay", probe_file, "--model", model_file({}), "--out", out,
                        "--allow-other-scenario"), "--allow-other-scenario", "--scenario")
    assert not out.exists()


def test_replay_bad_scenario_file_is_one_line(cli, tmp_path: Path, probe_file: Path,
                                              model_file) -> None:
    out = tmp_path / "out"
    one_line_error(*cli("replay", probe_file, "--model", model_file({}), "--out", out,
                        "--scenario", tmp_path / "missing.toml"),
                   "gpssignal replay: error: scenario file = ", "missing.toml", "cannot read")
    assert not out.exists()


@pytest.mark.parametrize("provenance", [{}, {"scenario_hash": OTHER_HASH}],
                         ids=["no_provenance", "other_scenario"])
def test_cross_check_refuses_a_model_of_another_scenario_before_sumo(
        cli, tmp_path: Path, tiny_relief: Scenario, tiny_relief_toml: Path, model_file,
        provenance: dict[str, Any]) -> None:
    out = tmp_path / "out"
    line = one_line_error(*cli("cross-check", tiny_relief_toml, "--seeds", 1, "--model",
                               model_file(provenance), "--out", out, "-q"),
                          "gpssignal cross-check: error: --model = ",
                          scenario_hash(tiny_relief), "--allow-other-scenario")
    assert ("records no scenario" in line) == (not provenance)
    assert not out.exists()
