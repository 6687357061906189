"""Training from what an operator has (issue 16): a probe history that
``gpssignal history`` did not make (SUMO FCD through ``import-fcd``, a
hand-edited CSV), a program log, and the guarantee that the reconstruction
and data-driven methods never read a history day's seed or ground truth.

The scenario is the tiny variant with a relief program; its history
(``history_dir``) has 2 days at 30 % penetration. The reconstruction runs on
a 3 x 3 library with 2 candidates to stay fast.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpssignal.control.gps import model_from_scenario
from gpssignal.control.training import load_probe_history, read_program_log
from gpssignal.errors import ProbeFileError, ScenarioError
from gpssignal.experiment.training import train
from gpssignal.probes.io import read_probes

FAST = dict(candidates=2, search_seed=9, grid=(3, 3))


def _day_file(history: Path, k: int = 0) -> Path:
    return sorted((history / "probes").glob("date=*/probes.parquet"))[k]


# ---------------------------------------------------------------------------
# A hand-edited CSV
# ---------------------------------------------------------------------------

def _hand_edited_csv(src: Path, dst: Path) -> int:
    """Write ``src``'s points as an operator's export might look; return its good rows.

    Local naive timestamps (Europe/Copenhagen), columns in another order, no
    time_received, an extra column, a point with an impossible speed and a
    ragged row.
    """
    f = read_probes(src).frame
    local = pd.DatetimeIndex(f["time_sent"]).tz_convert("Europe/Copenhagen").tz_localize(None)
    with dst.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["speed_kmh", "lat_deg", "lon_deg", "heading_deg", "time_sent", "note"])
        for t, r in zip(local, f.itertuples(index=False), strict=True):
            w.writerow([f"{r.speed_kmh:.3f}", f"{r.lat_deg:.7f}", f"{r.lon_deg:.7f}",
                        "" if np.isnan(r.heading_deg) else f"{r.heading_deg:.2f}",
                        t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "edited by hand"])
        w.writerow(["999", "55.63", "12.38", "90", "2019-05-06 07:05:00", "bad speed"])
        w.writerow(["30", "55.63"])
    return len(f)


def test_hand_edited_csv_gives_the_same_speeds_as_the_file_it_came_from(
        tiny_relief, history_dir, tmp_path) -> None:
    src = _day_file(history_dir)
    csv_path = tmp_path / "recorded.csv"
    _hand_edited_csv(src, csv_path)
    base = model_from_scenario(tiny_relief)
    a = load_probe_history(src, base, tiny_relief)
    b = load_probe_history(csv_path, base, tiny_relief, timezone="Europe/Copenhagen")
    assert b.dates == a.dates == ["2019-05-06"]
    np.testing.assert_array_equal(b.count, a.count)
    # 3 decimals written: each speed within 0.0005 km/h, so a sum within n x 0.0005.
    np.testing.assert_allclose(b.speed_sum, a.speed_sum, atol=0.0005 * a.count.max())
    assert b.points_read == a.points_read + 2                    # the bad and ragged rows
    # Read as UTC (the wrong zone), the points fall 2 h off the period: refused.
    with pytest.raises(ProbeFileError, match="no point on a monitored stretch"):
        load_probe_history(csv_path, base, tiny_relief, timezone="UTC")


def test_train_on_a_hand_edited_csv(tiny_relief, history_dir, tmp_path) -> None:
    csv_path = tmp_path / "recorded.csv"
    _hand_edited_csv(_day_file(history_dir), csv_path)
    for method in ("data-driven", "reconstruct"):
        model = train(tiny_relief, csv_path, method=method, timezone="Europe/Copenhagen",
                      **FAST)
        prov = model.provenance
        assert prov["method"]["name"] == method
        assert prov["training_days"] == ["2019-05-06"]
        assert "training_seeds" not in prov
        assert list(prov["history_files_sha256"]) == ["recorded.csv"]
        assert "recorded.csv" in prov["history_source"]
    with pytest.raises(ScenarioError, match="not a gpssignal history"):
        train(tiny_relief, csv_path, method="same-seed", **FAST)


# ---------------------------------------------------------------------------
# Never a seed, never the ground truth
# ---------------------------------------------------------------------------

def test_training_refuses_a_simulator_result(tiny_relief) -> None:
    from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one

    out = run_one(RunSpec(scenario=tiny_relief, controller=ControllerSpec.parse("tod"),
                          seed=1, sample_probes=True))
    for wrong in (out, out.result, out.probes):
        for method in ("reconstruct", "data-driven", "same-seed"):
            with pytest.raises(ScenarioError, match="never a simulator result"):
                train(tiny_relief, wrong, method=method, **FAST)  # type: ignore[arg-type]


def _tampered(history: Path, dst: Path, *, drop_truth: bool) -> Path:
    """A copy of ``history`` whose manifest lists other seeds (and, optionally, no truth)."""
    shutil.copytree(history, dst)
    m = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    for k, d in enumerate(m["days"]):
        d["seed"] = 4242 + k
        d["demand_level"] = d["peak_shift_s"] = None
    (dst / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    if drop_truth:
        shutil.rmtree(dst / "truth")
    return dst


def _essence(model) -> dict:
    """What training chose, and from what it chose it (not where the files lay)."""
    prov = model.provenance
    return {"stretches": [dataclasses.astuple(s) for s in model.stretches],
            "window_s": model.window_s, "min_dwell_s": model.min_dwell_s,
            "search": prov.get("search"), "reconstruction": prov.get("reconstruction"),
            "rule": prov.get("rule"), "existing_plan": prov.get("existing_plan")}


def test_reconstruction_never_reads_the_history_seeds_or_truth(tiny_relief, history_dir,
                                                               tmp_path) -> None:
    tampered = _tampered(history_dir, tmp_path / "tampered", drop_truth=True)
    models = {}
    for method in ("reconstruct", "data-driven"):
        a = train(tiny_relief, history_dir, method=method, **FAST)
        b = train(tiny_relief, tampered, method=method, **FAST)
        assert _essence(a) == _essence(b)
        assert a.provenance["history_files_sha256"] == b.provenance["history_files_sha256"]
        models[method] = a
    # Fresh seeds: neither the library nor the search used a history seed.
    rec = models["reconstruct"].provenance["reconstruction"]
    used = set(range(rec["search_seeds"][0], rec["search_seeds"][1] + 1))
    for lib in rec["libraries"]:
        used |= set(range(lib["seeds"][0], lib["seeds"][1] + 1))
    assert not used & {1, 2}


def test_the_same_seed_shortcut_does_read_them(tiny_relief, history_dir, tmp_path) -> None:
    # The check above can fail: the same-seed method, given other seeds, finds other days.
    tampered = _tampered(history_dir, tmp_path / "tampered", drop_truth=False)
    a = train(tiny_relief, history_dir, method="same-seed", candidates=2, search_seed=9)
    b = train(tiny_relief, tampered, method="same-seed", candidates=2, search_seed=9)
    assert a.provenance["training_seeds"] == [1, 2]
    assert b.provenance["training_seeds"] == [4242, 4243]
    assert [r["mean_time_loss_s"] for r in a.provenance["search"]["candidates"]] != \
        [r["mean_time_loss_s"] for r in b.provenance["search"]["candidates"]]
    assert "UPPER BOUND" in a.provenance["method"]["what"]


# ---------------------------------------------------------------------------
# The program log
# ---------------------------------------------------------------------------

def test_program_log(tiny_relief, history_dir, tmp_path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("time,program\n07:00,normal\n07:05,peak\n", encoding="utf-8")
    plans = read_program_log(log, tiny_relief, ["2019-05-06", "2019-05-07"])
    assert plans["2019-05-07"] == ((25200.0, "normal"), (25500.0, "peak"))
    model = train(tiny_relief, history_dir, method="reconstruct", program_log=log, **FAST)
    assert model.provenance["existing_plan"]["controller"] == "logged plan"
    assert model.provenance["reconstruction"]["libraries"][0]["plan"] == "logged plan"
    bad = tmp_path / "bad.csv"
    bad.write_text("date,time,program\n2019-05-06,07:00,rush\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="program = 'rush'"):
        read_program_log(bad, tiny_relief, ["2019-05-06"])
    bad.write_text("date,time,program\n2019-05-06,07:00,peak\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="date = '2019-05-07'"):
        read_program_log(bad, tiny_relief, ["2019-05-06", "2019-05-07"])
    bad.write_text("when,program\n07:00,peak\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="missing column 'time'"):
        read_program_log(bad, tiny_relief, ["2019-05-06"])


# ---------------------------------------------------------------------------
# SUMO FCD through import-fcd
# ---------------------------------------------------------------------------

def test_train_on_sumo_fcd_imported_with_import_fcd(tiny_relief, probes_30, tmp_path) -> None:
    pytest.importorskip("libsumo", reason="libsumo not installed (the sumo extra)")
    from gpssignal.interop.compare import run_sumo
    from gpssignal.interop.sumo_export import export_sumo
    from gpssignal.model.geo import link_geometry
    from gpssignal.probes.io import import_fcd

    sc = dataclasses.replace(tiny_relief, probes=probes_30)
    proj = link_geometry(sc).projection
    folder = tmp_path / "recorded"
    folder.mkdir()
    dates = ["2019-05-13", "2019-05-14"]
    for seed, day in zip((11, 12), dates, strict=True):
        ex = export_sumo(sc, tmp_path / f"sumo{seed}", seed=seed)
        run_sumo(ex.config)
        done = import_fcd(ex.folder / "fcd.xml", folder / f"fcd-{day}.parquet", date=day,
                          start_clock_s=sc.start_clock_s, timezone=sc.timezone,
                          origin=(proj.lat0_deg, proj.lon0_deg))
        assert done.rows > 0
    model = train(tiny_relief, folder, method="reconstruct", **FAST)
    prov = model.provenance
    assert prov["training_days"] == dates
    assert sorted(prov["history_files_sha256"]) == [f"fcd-{d}.parquet" for d in dates]
    assert prov["points_matched"] > 100
    assert [f["date"] for f in prov["reconstruction"]["fits"]] == dates
    for st in model.stretches:
        # SUMO's cars on an empty-ish one-lane road: a free-flow speed near the limit.
        assert 0.6 * st.speed_limit_kmh < st.free_flow_kmh <= st.speed_limit_kmh
