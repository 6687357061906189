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
3. **Search.** Candidate settings are evaluated by simulating training
   days under the GPS controller. Which days depends on the method
   (:data:`METHODS`):

   - ``reconstruct`` (what an operator can do): each history day's demand
     level and peak shift are fitted to its probe speeds
     (:mod:`gpssignal.experiment.reconstruct`), and the candidates run on
     days with those factors and *fresh* seeds, never the history's own;
   - ``same-seed`` (an upper bound, not a method an operator has): a
     training day is the history day's own seed, i.e. its very vehicles;
   - ``data-driven`` needs no simulation at all
     (:mod:`gpssignal.control.datadriven`).

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpssignal import __version__
from gpssignal.control.gps import GpsModel, GpsRuntime, model_from_scenario
from gpssignal.control.matching import match_points
from gpssignal.errors import ProbeFileError, ScenarioError
from gpssignal.model.io import format_clock, parse_clock, scenario_hash
from gpssignal.model.scenario import Scenario
from gpssignal.probes.io import read_manifest, read_probes, sim_seconds_from_utc

__all__ = [
    "BIN_S",
    "METHODS",
    "MIN_CELL_POINTS",
    "SEARCH_SPACE",
    "TrainingData",
    "candidate_settings",
    "free_flow_speeds",
    "history_manifest",
    "load_history_speeds",
    "load_probe_history",
    "measured_model",
    "provenance",
    "read_program_log",
    "require_probe_source",
    "sanity_notes",
    "search_record",
]

log = logging.getLogger(__name__)

#: A (day, slot) cell needs this many points to count toward the free-flow speed.
MIN_CELL_POINTS = 5
#: Training methods: what the search simulates (see the module docstring).
METHODS = ("reconstruct", "same-seed", "data-driven")
#: Width of the fine time bins speeds are also kept in [s]: the GPS model's
#: default aggregation window (``GpsModel.window_s``), so the data-driven
#: rule sees the distribution of window means the controller thresholds.
BIN_S = 300.0
#: Ranges of the random search: (low, high) for floats, a tuple of choices otherwise.
SEARCH_SPACE: dict[str, Any] = {
    "low_fraction": (0.40, 0.90),
    "hysteresis_kmh": (2.0, 10.0),
    "window_s": (120.0, 180.0, 300.0, 450.0, 600.0),
    "min_dwell_s": (300.0, 600.0, 900.0),
}


@dataclass
class TrainingData:
    """Speeds aggregated from a probe history, and where they came from.

    ``seeds``, ``probe_settings`` and ``manifest`` are known only for a
    history simulated by ``gpssignal history`` read for the ``same-seed``
    method; a recorded history (and every other method) leaves them empty.
    ``bin_count`` / ``bin_sum`` hold the same points in :data:`BIN_S` bins.
    """

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
    bin_s: float = BIN_S
    bin_count: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    bin_sum: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    source: str = ""                   # what was read, in words


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
    bin_count = np.zeros((len(dates), len(base.stretches), _n_bins(scenario)))
    bin_sum = np.zeros_like(bin_count)
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
                _accumulate(sim_t, s[ok], df["speed_kmh"].to_numpy()[ok], slot_s,
                            (count[di], total[di]), (bin_count[di], bin_sum[di]))
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
                        manifest=manifest, bin_count=bin_count, bin_sum=bin_sum,
                        source=f"gpssignal history {str(root)!r} (simulated; its seeds read "
                        "for the same-seed search)")


def _n_bins(scenario: Scenario) -> int:
    return int(np.ceil(scenario.duration_s / BIN_S))


def _accumulate(sim_t: np.ndarray, stretch: np.ndarray, speed_kmh: np.ndarray, slot_s: float,
                slots: tuple[np.ndarray, np.ndarray], bins: tuple[np.ndarray, np.ndarray]
                ) -> None:
    """Add matched points (sim seconds, stretch index, speed) to slot and bin sums."""
    for width, (cnt, tot) in ((slot_s, slots), (BIN_S, bins)):
        k = np.floor(sim_t / width).astype(np.int64)
        inside = (k >= 0) & (k < cnt.shape[1])
        np.add.at(cnt, (stretch[inside], k[inside]), 1.0)
        np.add.at(tot, (stretch[inside], k[inside]), speed_kmh[inside])


def require_probe_source(history: object) -> Path:
    """Return ``history`` as a path to probe points, refusing anything else.

    Training from probe data takes a probe file or folder, never a
    simulator result (which carries the day's ground truth and seed).

    Raises
    ------
    ScenarioError
        If ``history`` is not a path (e.g. a ``SimResult`` or ``RunOutput``).
    """
    if not isinstance(history, (str, Path)):
        raise ScenarioError(f"history = <{type(history).__name__}>: training reads probe "
                            "points (a CSV/Parquet file or folder), never a simulator result")
    return Path(history)


def _is_history_folder(p: Path) -> bool:
    return p.is_dir() and (p / "manifest.json").is_file() and (p / "probes").is_dir()


def load_probe_history(source: str | Path, base: GpsModel, scenario: Scenario,
                       timezone: str = "UTC", slot_s: float = 900.0) -> TrainingData:
    """Match recorded probe points and aggregate speeds per day, stretch and slot.

    ``source`` is a probe file (CSV or Parquet), a folder of Parquet files, or
    a ``gpssignal history`` folder, of which only the probe points are read
    (``probes/``: never its manifest's seeds nor its ground truth). Rows are
    read and checked by :func:`gpssignal.probes.io.read_probes`. A day is a
    local calendar date in the scenario's time zone; only points sent within
    the scenario's period count.

    Parameters
    ----------
    timezone : str
        Time zone of CSV timestamps without an offset (IANA name).

    Raises
    ------
    ProbeFileError
        If the file cannot be read, or no point falls in the period of any day.
    ScenarioError
        If ``source`` is not a path.
    """
    root = require_probe_source(source)
    path = root / "probes" if _is_history_folder(root) else root
    read = read_probes(path, naive_tz=timezone)
    f = read.frame
    rt = GpsRuntime(base)
    x, y = rt.projection.to_xy(f["lat_deg"].to_numpy(), f["lon_deg"].to_numpy())
    s = match_points(rt.index, x, y, f["heading_deg"].to_numpy(dtype=float))
    local = pd.DatetimeIndex(f["time_sent"]).tz_convert(scenario.timezone)
    day_of = np.asarray(local.strftime("%Y-%m-%d"), dtype=object)
    n_slots = int(np.ceil(scenario.duration_s / slot_s))
    dates, counts, totals, bcounts, bsums = [], [], [], [], []
    matched = 0
    for day in sorted(set(day_of[s >= 0])):
        sel = (day_of == day) & (s >= 0)
        sim_t = sim_seconds_from_utc(scenario, pd.DatetimeIndex(f["time_sent"][sel]), date=day)
        inside = (sim_t >= 0) & (sim_t < scenario.duration_s)
        if not inside.any():
            continue
        c = np.zeros((len(base.stretches), n_slots))
        t = np.zeros_like(c)
        bc = np.zeros((len(base.stretches), _n_bins(scenario)))
        bt = np.zeros_like(bc)
        _accumulate(sim_t[inside], s[sel][inside], f["speed_kmh"].to_numpy()[sel][inside],
                    slot_s, (c, t), (bc, bt))
        matched += int(inside.sum())
        dates.append(day)
        counts.append(c)
        totals.append(t)
        bcounts.append(bc)
        bsums.append(bt)
    if not dates:
        raise ProbeFileError(f"probe history {str(root)!r}: no point on a monitored stretch "
                             f"within the scenario's period ({format_clock(scenario.start_clock_s)}"
                             f" + {scenario.duration_s:g} s, {scenario.timezone}) on any day")
    files = {str(p.relative_to(root)) if p != root else p.name: _sha256(p)
             for p in ([path] if path.is_file() else sorted(q for q in path.rglob("*")
                                                            if q.is_file()))}
    return TrainingData(dates=dates, seeds=[], slot_s=slot_s,
                        slot_starts_s=scenario.start_clock_s + slot_s * np.arange(n_slots),
                        count=np.array(counts), speed_sum=np.array(totals),
                        points_read=read.report.rows_read, points_matched=matched,
                        files=files, probe_settings={}, manifest={}, bin_count=np.array(bcounts),
                        bin_sum=np.array(bsums),
                        source=f"probe points {str(path)!r} ({read.report.summary()})")


def read_program_log(path: str | Path, scenario: Scenario, dates: list[str]
                     ) -> dict[str, tuple[tuple[float, str], ...]]:
    """Read the log of which program ran when; return each date's plan.

    The log is a CSV file with columns ``time`` (local clock ``HH:MM`` or
    ``HH:MM:SS``) and ``program`` (run by every junction from then on), and
    optionally ``date`` (``YYYY-MM-DD``): without it, the same plan held on
    every day.

    Raises
    ------
    ScenarioError
        A missing column, a bad time, a program the scenario lacks, or a
        history day the log does not cover (named with the value).
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ScenarioError(f"program_log = {str(p)!r}: not readable CSV ({exc})") from None
    for col in ("time", "program"):
        if col not in df.columns:
            raise ScenarioError(f"program_log = {str(p)!r}: missing column {col!r} (has "
                                f"{', '.join(map(repr, df.columns)) or 'none'})")
    if df.empty:
        raise ScenarioError(f"program_log = {str(p)!r}: no rows")
    programs = set(scenario.program_names)
    plans: dict[str, list[tuple[float, str]]] = {}
    for i, row in df.iterrows():
        where = f"program_log row {int(str(i)) + 2}"
        at = parse_clock(row["time"].strip(), f"{where} time")
        prog = row["program"].strip()
        if prog not in programs:
            raise ScenarioError(f"{where} program = {prog!r}: not a program of the scenario "
                                f"({', '.join(sorted(programs))})")
        day = row["date"].strip() if "date" in df.columns else "*"
        plans.setdefault(day, []).append((at, prog))
    out = {}
    for day in dates:
        entries = plans.get(day, plans.get("*"))
        if entries is None:
            raise ScenarioError(f"program_log date = {day!r}: a history day the log does not "
                                "cover")
        entries = sorted(entries)
        times = [t for t, _ in entries]
        if len(set(times)) != len(times):
            raise ScenarioError(f"program_log date = {day!r}: two programs at the same time")
        out[day] = tuple(entries)
    return out


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


#: What each method's search simulates, in words (the model file's ``method`` record).
METHOD_LABELS = {
    "same-seed": "UPPER BOUND, not an operator's method: candidates simulated on the history "
                 "days' own seeds (their very vehicles and demand)",
    "reconstruct": "candidates simulated on days reconstructed from the probe speeds (each "
                   "day's demand level and peak shift fitted), with fresh seeds",
    "data-driven": "no simulation: thresholds from the historical distribution of window "
                   "speeds per stretch (two-component normal mixture)",
}


def provenance(scenario: Scenario, root: Path, data: TrainingData, method: str,
               search: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the training record stored in a model file.

    It names the ``method`` and the data: the source, its files with their
    SHA-256, the days, and (``same-seed`` only) the history's seeds.
    """
    prov: dict[str, Any] = {
        "version": __version__, "scenario": scenario.name,
        "scenario_hash": scenario_hash(scenario),
        "method": {"name": method, "what": METHOD_LABELS[method]},
        "history": str(root), "history_source": data.source,
        "history_files_sha256": data.files, "training_days": data.dates,
        "points_read": data.points_read, "points_matched": data.points_matched,
        "free_flow_definition": "mean speed in the least busy quarter of (day, 15-min) cells "
                                f"with >= {MIN_CELL_POINTS} points, capped at the limit",
    }
    if method == "same-seed":
        prov["training_seeds"] = data.seeds
    if search is not None:
        prov["search"] = search
    return prov


def search_record(search_seed: int, objective: str, table: list[dict[str, Any]],
                  best: int) -> dict[str, Any]:
    """Return the random search's record (space, objective, every candidate, the best)."""
    return {"method": "random", "seed": search_seed,
            "space": {k: list(v) for k, v in SEARCH_SPACE.items()},
            "objective": objective, "candidates": table, "best": best}
