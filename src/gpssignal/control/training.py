"""Training the GPS controller on historical probe data.

The steps are:

1. **Speeds from the history.** The history's probe points are read with
   DuckDB, one day (Hive partition) at a time in record batches, so the data
   need not fit in memory. Each batch is matched to the monitored stretches
   with the run-time matcher, and count and speed sum are accumulated per
   (day, stretch, 15-min slot).
2. **Free-flow speed per stretch.** This follows Vejdirektoratet: the speed
   in low-traffic hours, capped at the limit. Here, low-traffic hours are the
   quarter of the (day, slot) cells with the fewest points, among cells with
   at least ``MIN_CELL_POINTS`` points. The typical speed profile is the mean
   per 15-min slot over the days.
3. **Search.** Candidate settings are evaluated by simulating every training
   day under the GPS controller. A training day is the history day's seed,
   so it has the same demand, and the probe feed has the history's settings.
   The candidates are:
   - ``low_fraction``: threshold_low = fraction × free-flow speed;
   - ``hysteresis_kmh``;
   - ``window_s``;
   - ``min_dwell_s``.

   This is a seeded random search. The objective is the mean time loss per
   vehicle over the training days, with vehicles weighted equally. Every
   candidate's outcome is kept in the model, so the relationship can be
   plotted. The existing plan's outcome on the same days is computed from
   the history's ground truth and stored next to it.
4. **Held-out evaluation** (optional). The tuned model, fixed time and time
   of day are run on days that were not used for training (seeds after the
   history's). Each controller gets the same demand per day.

This module holds the data side: steps 1 and 2, the candidates, and the
record stored in the model. The simulations of steps 3 and 4 need the
experiment layer, so they live in :mod:`gpssignal.experiment.training`.
There they run on a process pool. Results do not depend on the number of
workers: every run is a pure function of (scenario, settings, seed).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal import __version__
from gpssignal.control.gps import GpsModel, GpsRuntime, model_from_scenario
from gpssignal.control.matching import match_points
from gpssignal.errors import ScenarioError
from gpssignal.model.io import format_clock, scenario_hash
from gpssignal.model.scenario import Scenario
from gpssignal.probes.io import read_manifest, sim_seconds_from_utc

__all__ = [
    "MIN_CELL_POINTS",
    "SEARCH_SPACE",
    "TrainingData",
    "candidate_settings",
    "free_flow_speeds",
    "history_manifest",
    "load_history_speeds",
    "measured_model",
    "provenance",
    "sanity_notes",
]

log = logging.getLogger(__name__)

#: A (day, slot) cell needs this many points to count toward the free-flow speed.
MIN_CELL_POINTS = 5
#: Ranges of the random search: (low, high) for floats, a tuple of choices otherwise.
SEARCH_SPACE: dict[str, Any] = {
    "low_fraction": (0.40, 0.90),
    "hysteresis_kmh": (2.0, 10.0),
    "window_s": (120.0, 180.0, 300.0, 450.0, 600.0),
    "min_dwell_s": (300.0, 600.0, 900.0),
}


@dataclass
class TrainingData:
    """Speeds aggregated from a history, and where they came from."""

    dates: list[str]
    seeds: list[int]
    slot_s: float
    slot_starts_s: np.ndarray          # clock seconds of each slot
    count: np.ndarray                  # (days, stretches, slots)
    speed_sum: np.ndarray              # (days, stretches, slots) [km/h]
    points_read: int
    points_matched: int
    files: dict[str, str]              # relative path -> sha256
    probe_settings: dict[str, Any]
    manifest: dict[str, Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def history_manifest(root: Path, scenario: Scenario) -> dict[str, Any]:
    """Return a history's manifest, checked to come from ``scenario``.

    Raises
    ------
    ScenarioError
        If the folder is not a history or was simulated from another scenario
        (the training days could not be simulated again).
    """
    try:
        manifest = read_manifest(root)
    except (OSError, ValueError):
        raise ScenarioError(f"history = {str(root)!r}: not a gpssignal history (no readable "
                            "manifest.json)") from None
    h = scenario_hash(scenario)
    if manifest.get("scenario_hash") != h:
        raise ScenarioError(
            f"history = {str(root)!r}: simulated from scenario hash "
            f"{manifest.get('scenario_hash')}, not {h}; regenerate it with "
            "`gpssignal history` for this scenario")
    return manifest


def load_history_speeds(history_dir: str | Path, base: GpsModel, scenario: Scenario,
                        slot_s: float = 900.0, batch_rows: int = 500_000) -> TrainingData:
    """Match a history's probe points and aggregate speeds per day, stretch and slot.

    Raises
    ------
    ScenarioError
        If the folder is not a gpssignal history.
    """
    import duckdb

    root = Path(history_dir)
    manifest = history_manifest(root, scenario)
    days = manifest.get("days", [])
    if not days:
        raise ScenarioError(f"history = {str(root)!r}: the manifest lists no days")
    dates = [d["date"] for d in days]
    seeds = [int(d["seed"]) for d in days]
    n_slots = int(np.ceil(scenario.duration_s / slot_s))
    count = np.zeros((len(dates), len(base.stretches), n_slots))
    total = np.zeros_like(count)
    rt = GpsRuntime(base)
    files: dict[str, str] = {}
    read = matched = 0
    con = duckdb.connect()
    try:
        for di, day in enumerate(dates):
            part = root / "probes" / f"date={day}"
            paths = sorted(part.glob("*.parquet"))
            if not paths:
                raise ScenarioError(f"history = {str(root)!r}: no probe file for {day}")
            for p in paths:
                files[str(p.relative_to(root))] = _sha256(p)
            reader = con.sql(
                "SELECT epoch_ms(time_sent) AS t, lat_deg, lon_deg, speed_kmh, heading_deg "
                "FROM read_parquet(?) WHERE speed_kmh BETWEEN 0 AND 250 "
                "AND lat_deg BETWEEN -90 AND 90 AND lon_deg BETWEEN -180 AND 180",
                params=[[str(p) for p in paths]]).to_arrow_reader(batch_rows)
            for batch in reader:
                df = batch.to_pandas()
                read += len(df)
                x, y = rt.projection.to_xy(df["lat_deg"].to_numpy(), df["lon_deg"].to_numpy())
                s = match_points(rt.index, x, y, df["heading_deg"].to_numpy(dtype=float))
                ok = s >= 0
                matched += int(ok.sum())
                t_utc = pd.to_datetime(df["t"].to_numpy()[ok], unit="ms", utc=True)
                sim_t = sim_seconds_from_utc(scenario, t_utc, date=day)
                slot = np.floor(sim_t / slot_s).astype(np.int64)
                inside = (slot >= 0) & (slot < n_slots)
                si, sl = s[ok][inside], slot[inside]
                v = df["speed_kmh"].to_numpy()[ok][inside]
                np.add.at(count[di], (si, sl), 1.0)
                np.add.at(total[di], (si, sl), v)
    except RuntimeError as exc:
        # A Ctrl-C or SIGTERM arriving during a query: DuckDB aborts it and
        # reports it as a RuntimeError; it is the interrupt it replaced.
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt(str(exc)) from exc
        raise
    finally:
        con.close()
    return TrainingData(dates=dates, seeds=seeds, slot_s=slot_s,
                        slot_starts_s=scenario.start_clock_s + slot_s * np.arange(n_slots),
                        count=count, speed_sum=total, points_read=read, points_matched=matched,
                        files=files, probe_settings=manifest.get("probe_settings", {}),
                        manifest=manifest)


def free_flow_speeds(data: TrainingData, limits_kmh: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Free-flow speed per stretch and the mean speed profile per slot [km/h].

    The free-flow speed is the speed in the least busy quarter of (day, slot)
    cells with at least ``MIN_CELL_POINTS`` points, capped at the limit. If a
    stretch has no such cell, it is the limit.
    """
    n_st = data.count.shape[1]
    ff = np.array(limits_kmh, dtype=float).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = data.speed_sum.sum(axis=0) / data.count.sum(axis=0)
    for s in range(n_st):
        c = data.count[:, s, :].ravel()
        v = data.speed_sum[:, s, :].ravel()
        ok = c >= MIN_CELL_POINTS
        if not ok.any():
            continue
        cut = np.quantile(c[ok], 0.25)
        quiet = ok & (c <= cut)
        ff[s] = min(float(v[quiet].sum() / c[quiet].sum()), float(limits_kmh[s]))
    return ff, profile


def candidate_settings(n: int, seed: int) -> list[dict[str, float]]:
    """``n`` settings drawn from :data:`SEARCH_SPACE` with a seeded generator."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c: dict[str, float] = {}
        for name, space in SEARCH_SPACE.items():
            if len(space) == 2 and name in ("low_fraction", "hysteresis_kmh"):
                c[name] = round(float(rng.uniform(*space)), 3)
            else:
                c[name] = float(space[int(rng.integers(len(space)))])
        out.append(c)
    return out


#: Parameters searched over a continuous range (the others over a list of choices).
CONTINUOUS = ("low_fraction", "hysteresis_kmh")
#: A chosen value within this share of its continuous range's width from an end
#: counts as at the edge of the range [-].
EDGE_SHARE = 0.05


def sanity_notes(model: GpsModel, chosen: dict[str, float]) -> list[str]:
    """Return what a reader of the trained model should know about its values.

    A chosen value at (or within :data:`EDGE_SHARE` of) an end of its search
    range, or the first or last of its choices, may lie beyond the range: the
    search would have gone further. A high threshold above the measured
    free-flow speed means the controller switches back only once the stretch
    runs faster than free flow, which a window mean rarely does: the relief
    program then stays until the feed goes stale or the dwell allows a change
    back on a better window.
    """
    notes = []
    for name, space in SEARCH_SPACE.items():
        v = chosen[name]
        if name in CONTINUOUS:
            lo, hi = space
            edge = EDGE_SHARE * (hi - lo)
            end = "low" if v <= lo + edge else "high" if v >= hi - edge else ""
            if end:
                notes.append(f"{name} = {v:g} lies at the {end} end of its search range "
                             f"[{lo:g}, {hi:g}]: the best value may lie beyond it")
        elif v in (min(space), max(space)):
            end = "smallest" if v == min(space) else "largest"
            notes.append(f"{name} = {v:g} is the {end} of the choices {list(space)}: the best "
                         "value may lie beyond them")
    for st in model.stretches:
        if st.threshold_high_kmh > st.free_flow_kmh:
            notes.append(f"stretch {st.id}: the high threshold {st.threshold_high_kmh:.1f} km/h "
                         f"is above the measured free-flow speed {st.free_flow_kmh:.1f} km/h: "
                         "the controller switches back only when a window runs faster than "
                         "free flow")
    return notes


def measured_model(scenario: Scenario, data: TrainingData,
                   base_params: dict[str, Any] | None = None) -> GpsModel:
    """Return the scenario's model with free-flow speeds and profiles measured from ``data``."""
    base = model_from_scenario(scenario, **(base_params or {}))
    limits = np.array([s.speed_limit_kmh for s in base.stretches])
    ff, profile = free_flow_speeds(data, limits)
    stretches = []
    for k, s in enumerate(base.stretches):
        # JSON has no NaN: slots without points are left out of the profile.
        prof = {format_clock(t): round(float(v), 2)
                for t, v in zip(data.slot_starts_s, profile[k], strict=True) if not np.isnan(v)}
        stretches.append(replace(s, free_flow_kmh=float(ff[k]), profile_kmh=prof))
    return replace(base, stretches=stretches)


def provenance(scenario: Scenario, root: Path, data: TrainingData, search_seed: int,
               table: list[dict[str, Any]], best: int) -> dict[str, Any]:
    """Return the training record stored in a model file."""
    return {
        "version": __version__, "scenario": scenario.name,
        "scenario_hash": scenario_hash(scenario), "history": str(root),
        "history_files_sha256": data.files, "training_days": data.dates,
        "training_seeds": data.seeds, "points_read": data.points_read,
        "points_matched": data.points_matched,
        "free_flow_definition": "mean speed in the least busy quarter of (day, 15-min) cells "
                                f"with >= {MIN_CELL_POINTS} points, capped at the limit",
        "search": {"method": "random", "seed": search_seed,
                   "space": {k: list(v) for k, v in SEARCH_SPACE.items()},
                   "objective": "mean time loss per vehicle over the training days "
                                "(simulated with the history days' demand)",
                   "candidates": table, "best": best},
    }
