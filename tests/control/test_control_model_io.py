"""Model files (:mod:`gpssignal.control.io`) and model validation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from gpssignal.control.gps import GpsModel, StretchModel, model_from_scenario
from gpssignal.control.io import MODEL_KIND, model_to_dict, read_model, write_model
from gpssignal.errors import GpssignalError, ModelError, ScenarioError


@pytest.fixture
def model(tiny_relief) -> GpsModel:
    """A model with every kind of field filled, incl. a nested provenance."""
    m = model_from_scenario(tiny_relief, low_fraction=0.55, hysteresis_kmh=4.25,
                            window_s=180.0, min_points=4, min_dwell_s=450.0,
                            stale_after_s=300.0, decision_interval_s=15.0,
                            max_distance_m=17.5, max_heading_diff_deg=40.0)
    st = dataclasses.replace(m.stretches[0], free_flow_kmh=47.123456789012345,
                             profile_kmh={"07:00": 41.2, "07:15": 38.95})
    prov = {"scenario_hash": "abc", "training_seeds": [1, 2],
            "search": {"candidates": [{"low_fraction": 0.6, "mean_time_loss_s": 12.5}],
                       "best": 0}}
    return dataclasses.replace(m, stretches=[st], provenance=prov)


def test_round_trip_equals(model, tmp_path) -> None:
    path = write_model(model, tmp_path / "sub" / "m.json")
    assert path == tmp_path / "sub" / "m.json"
    back = read_model(path)
    assert back == model
    assert isinstance(back.projection_deg, tuple)
    # Floats survive exactly (JSON keeps 17 significant digits).
    assert back.stretches[0].free_flow_kmh == 47.123456789012345
    # Writing again gives the same bytes, and no temporary file is left.
    text = path.read_text(encoding="utf-8")
    write_model(back, path)
    assert path.read_text(encoding="utf-8") == text
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]


def write_json(path, data) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_missing_file(tmp_path) -> None:
    p = tmp_path / "nope.json"
    with pytest.raises(ModelError, match=r"nope\.json") as exc:
        read_model(p)
    assert "cannot read" in str(exc.value)


def test_device_folder_and_oversized_file_are_refused_unread(tmp_path, monkeypatch) -> None:
    """``--model /dev/zero`` used to be read until the memory ran out."""
    with pytest.raises(ModelError, match=r"/dev/zero.*not a regular file"):
        read_model("/dev/zero")
    with pytest.raises(ModelError, match="is a folder"):
        read_model(tmp_path)
    big = tmp_path / "big.json"
    big.write_text("{}" + " " * 2000, encoding="utf-8")
    monkeypatch.setattr("gpssignal.control.io.MAX_MODEL_BYTES", 1000)
    with pytest.raises(ModelError, match=r"big\.json.*2,002 bytes, above the limit of 1,000"):
        read_model(big)


def test_not_json(tmp_path) -> None:
    p = tmp_path / "bad.json"
    p.write_text("{kind: oops", encoding="utf-8")
    with pytest.raises(ModelError, match=r"bad\.json.*not JSON"):
        read_model(p)


@pytest.mark.parametrize("data", [{"kind": "something-else"}, {"no": "kind"}, [1, 2],
                                  "text", None])
def test_wrong_kind(tmp_path, data) -> None:
    p = write_json(tmp_path / "other.json", data)
    with pytest.raises(ModelError, match=rf"other\.json.*{MODEL_KIND}"):
        read_model(p)


def test_model_error_is_a_gpssignal_error_not_a_scenario_error() -> None:
    # The command line reports every GpssignalError as a one-line exit-2 error;
    # a bad model is not a bad scenario.
    assert issubclass(ModelError, GpssignalError)
    assert not issubclass(ModelError, ScenarioError)


def malformed_variants(d: dict) -> list[tuple[str, dict]]:
    out = []
    for key in ("junctions", "stretches", "projection_deg"):
        out.append((f"no {key}", {k: v for k, v in d.items() if k != key}))
    out.append(("unknown field", {**d, "colour": "red"}))
    out.append(("stretch lacks id", {**d, "stretches": [
        {k: v for k, v in d["stretches"][0].items() if k != "id"}]}))
    out.append(("projection too short", {**d, "projection_deg": [55.0]}))
    out.append(("projection not numbers", {**d, "projection_deg": ["a", "b"]}))
    out.append(("stretches not a list of objects", {**d, "stretches": [1]}))
    out.append(("high < low", {**d, "stretches": [
        {**d["stretches"][0], "threshold_high_kmh": 1.0}]}))
    out.append(("bad min_points", {**d, "min_points": 0}))
    out.append(("unknown stretch", {**d, "junctions": [
        {**d["junctions"][0], "stretches": ["ghost"]}]}))
    return out


@pytest.mark.parametrize("case", range(11))
def test_malformed_names_the_file(model, tmp_path, case) -> None:
    name, data = malformed_variants(model_to_dict(model))[case]
    p = write_json(tmp_path / "broken.json", data)
    with pytest.raises(ModelError, match=r"broken\.json") as exc:
        read_model(p)
    assert "\n" not in str(exc.value), name


def test_stretch_thresholds_validated() -> None:
    kw = dict(id="s", junction="J", polyline_deg=[[55.0, 12.0], [55.0, 12.01]],
              length_m=600.0, speed_limit_kmh=50.0, free_flow_kmh=50.0)
    StretchModel(**kw, threshold_low_kmh=30.0, threshold_high_kmh=30.0)   # no gap: allowed
    with pytest.raises(ModelError, match=r"stretch\[s\]\.threshold_high_kmh = 29"):
        StretchModel(**kw, threshold_low_kmh=30.0, threshold_high_kmh=29.0)
    for low in (0.0, -5.0, math.nan):
        with pytest.raises(ModelError, match="threshold"):
            StretchModel(**kw, threshold_low_kmh=low, threshold_high_kmh=40.0)


def test_model_parameters_validated(model) -> None:
    for interval in (7.0, 11.0, 0.7):
        with pytest.raises(ModelError, match=r"decision_interval_s.*divide 3600"):
            dataclasses.replace(model, decision_interval_s=interval)
    for ok in (1.0, 10.0, 15.0, 60.0, 3600.0):
        assert dataclasses.replace(model, decision_interval_s=ok).decision_interval_s == ok
    for bad in (0, -1, 2.0, "3"):
        with pytest.raises(ModelError, match="min_points"):
            dataclasses.replace(model, min_points=bad)
    with pytest.raises(ModelError, match="window_s"):
        dataclasses.replace(model, window_s=0.0)
    for f in ("min_dwell_s", "stale_after_s", "max_distance_m"):
        with pytest.raises(ModelError, match=f):
            dataclasses.replace(model, **{f: -1.0})
    with pytest.raises(ModelError, match="ghost"):
        dataclasses.replace(model, junctions=[dataclasses.replace(
            model.junctions[0], stretches=["ghost"])])


def test_min_points_rejects_bool(model, tmp_path) -> None:
    with pytest.raises(ModelError, match="min_points"):
        dataclasses.replace(model, min_points=True)
    p = write_json(tmp_path / "m.json", {**model_to_dict(model), "min_points": True})
    with pytest.raises(ModelError, match="min_points"):
        read_model(p)
