"""Training on a probe history (:mod:`gpssignal.experiment.training`) on the
tiny variant: a 2-day history (seeds 1, 2; 30 % penetration), 2 candidates,
1 held-out day."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from gpssignal.control.training import candidate_settings
from gpssignal.errors import ScenarioError
from gpssignal.experiment.parallel import LocalBackend
from gpssignal.experiment.training import train
from gpssignal.model.io import scenario_hash

#: Search seed 9 draws one candidate that switches on these days (low =
#: 0.835 x free flow, 120-s window) and one that never does, so the two
#: objectives differ and the best is not simply the first.
KW = dict(candidates=2, search_seed=9, test_days=1)


@pytest.fixture(scope="module")
def trained(tiny_relief, history_dir):
    return train(tiny_relief, history_dir, **KW)


@pytest.fixture(scope="module")
def manifest(history_dir):
    return json.loads((history_dir / "manifest.json").read_text(encoding="utf-8"))


def test_provenance_identifies_the_data(trained, history_dir, manifest, tiny_relief) -> None:
    prov = trained.provenance
    assert prov["scenario_hash"] == scenario_hash(tiny_relief) == manifest["scenario_hash"]
    files = prov["history_files_sha256"]
    assert sorted(files) == sorted(f"probes/date={d['date']}/probes.parquet"
                                   for d in manifest["days"])
    rel = sorted(files)[0]
    assert files[rel] == hashlib.sha256((history_dir / rel).read_bytes()).hexdigest()
    assert prov["training_days"] == [d["date"] for d in manifest["days"]]
    assert prov["training_seeds"] == [d["seed"] for d in manifest["days"]] == [1, 2]
    assert 0 < prov["points_matched"] <= prov["points_read"]
    assert prov["probe_settings"]["penetration"] == 0.3
    assert prov["existing_plan"]["controller"] == "tod"       # tiny has a schedule
    assert np.isfinite(prov["existing_plan"]["mean_time_loss_s"])


def test_search_keeps_every_candidate_and_picks_the_best(trained) -> None:
    search = trained.provenance["search"]
    table = search["candidates"]
    assert len(table) == 2
    assert search["seed"] == 9
    drawn = candidate_settings(2, 9)
    for row, cand in zip(table, drawn, strict=True):
        assert {k: row[k] for k in cand} == cand
        assert np.isfinite(row["mean_time_loss_s"]) and row["mean_time_loss_s"] > 0
    losses = [r["mean_time_loss_s"] for r in table]
    assert losses[0] != losses[1]
    best = search["best"]
    assert best == int(np.argmin(losses))
    # The model carries the best candidate's settings.
    c = table[best]
    assert trained.window_s == c["window_s"]
    assert trained.min_dwell_s == c["min_dwell_s"]
    for st in trained.stretches:
        np.testing.assert_allclose(st.threshold_low_kmh, c["low_fraction"] * st.free_flow_kmh,
                                   rtol=1e-12)
        np.testing.assert_allclose(st.threshold_high_kmh - st.threshold_low_kmh,
                                   c["hysteresis_kmh"], rtol=1e-9)


def test_held_out_days_compare_three_controllers_on_the_same_seeds(trained) -> None:
    ho = trained.provenance["held_out"]
    assert ho["seeds"] == [3]                     # after the history's seeds 1, 2
    assert [r["controller"] for r in ho["results"]] == ["fixed", "tod", "gps"]
    for r in ho["results"]:
        assert r["seeds"] == ho["seeds"]
        assert r["vehicles"] > 0 and np.isfinite(r["mean_time_loss_s"])
    # Same demand per seed: the trained model (which, on this day, never
    # leaves the default program) gives exactly the fixed-time outcome.
    fixed, _, gps = ho["results"]
    assert gps["switches_per_day"] == [0]
    assert gps["mean_time_loss_s"] == fixed["mean_time_loss_s"]
    assert gps["vehicles"] == fixed["vehicles"]


def test_free_flow_speeds_are_measured_and_capped(trained) -> None:
    for st in trained.stretches:
        assert 0 < st.free_flow_kmh <= st.speed_limit_kmh
        assert st.profile_kmh                     # measured slots
        assert all(v > 0 for v in st.profile_kmh.values())


def test_history_from_another_scenario_is_refused(tiny_relief, history_dir) -> None:
    other = dataclasses.replace(tiny_relief, drain_s=tiny_relief.drain_s + 60)
    assert scenario_hash(other) != scenario_hash(tiny_relief)
    with pytest.raises(ScenarioError, match=r"history.*scenario hash"):
        train(other, history_dir, **KW)


def test_not_a_history_is_refused(tiny_relief, tmp_path) -> None:
    (tmp_path / "x.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not a gpssignal history"):
        train(tiny_relief, tmp_path, **KW)


def test_same_model_with_two_workers(trained, tiny_relief, history_dir) -> None:
    two = train(tiny_relief, history_dir, backend=LocalBackend(2), **KW)
    a = dataclasses.replace(trained, provenance={**trained.provenance, "train_wall_s": 0})
    b = dataclasses.replace(two, provenance={**two.provenance, "train_wall_s": 0})
    assert a == b


def test_values_at_the_edge_of_the_search_and_thresholds_above_free_flow_are_noted(
        trained) -> None:
    from gpssignal.control.training import SEARCH_SPACE, sanity_notes

    lo, hi = SEARCH_SPACE["low_fraction"]
    inside = {"low_fraction": (lo + hi) / 2, "hysteresis_kmh": 6.0, "window_s": 300.0,
              "min_dwell_s": 600.0}
    st = trained.stretches[0]
    calm = dataclasses.replace(trained, stretches=(dataclasses.replace(
        st, threshold_low_kmh=st.free_flow_kmh - 10, threshold_high_kmh=st.free_flow_kmh - 5),))
    assert sanity_notes(calm, inside) == []
    edge = {**inside, "low_fraction": lo + 0.01, "min_dwell_s": max(SEARCH_SPACE["min_dwell_s"])}
    notes = sanity_notes(calm, edge)
    assert any("low_fraction = 0.41 lies at the low end" in n for n in notes)
    assert any("min_dwell_s = 900 is the largest of the choices" in n for n in notes)
    high = dataclasses.replace(trained, stretches=(dataclasses.replace(
        st, threshold_low_kmh=st.free_flow_kmh - 1, threshold_high_kmh=st.free_flow_kmh + 3),))
    assert any("above the measured free-flow speed" in n for n in sanity_notes(high, inside))
    # The trained model records its notes.
    assert trained.provenance["search"]["notes"] == sanity_notes(
        trained, candidate_settings(len(trained.provenance["search"]["candidates"]), 9)[
            trained.provenance["search"]["best"]])
