"""Historical probe data: N simulated weekdays under the existing plan.

Each day is one seed, so its demand level and peak timing differ from the
other days as ``[variability]`` prescribes (and its type, with a day-type
mix). The controller is the scenario's existing plan
(:attr:`Scenario.baseline_plan`: ``[evaluation] existing_plan``, else the
time-of-day schedule if there is one, else the default program fixed).
The output folder holds:

```
DIR/manifest.json                             days, dates, seeds, scenario hash, version,
                                              settings, and the files written
DIR/probes/date=YYYY-MM-DD/probes.parquet     the probe stream (schema: gpssignal.probes.io)
DIR/truth/date=YYYY-MM-DD/vehicles.parquet    ground truth per vehicle (raw times, for evaluation)
DIR/run.log.json                              wall times and worker count
```

Every file but ``run.log.json`` is byte-identical for the same scenario,
days and seeds. A rerun into the same folder replaces only the files listed
in the previous manifest (``files``); anything else in the folder is left
alone, and a file of someone else's where the history would write is an
error, before anything is moved.

The ``date=`` folders are Hive partitions, readable as one data set by
pyarrow, DuckDB or Spark.

The ground truth is raw: times and lengths from which
:mod:`gpssignal.evaluate` computes the KPIs. It is never shown to a
controller.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gpssignal import __version__
from gpssignal._files import ordinary_permissions
from gpssignal.experiment.parallel import DaskBackend, LocalBackend, map_runs
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.io import scenario_hash
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.probes.io import read_manifest, stream_to_frame, write_probes
from gpssignal.sim.engine import SimResult

__all__ = ["read_manifest", "simulate_history", "truth_table", "weekdays"]


def weekdays(start: str, n: int) -> list[str]:
    """Return the first ``n`` weekdays (Monday-Friday) from ``start`` on, as ISO dates."""
    d = date.fromisoformat(start)
    out: list[str] = []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def truth_table(result: SimResult) -> pd.DataFrame:
    """Raw per-vehicle ground truth of a run (times in simulation seconds)."""
    arr, sc, net = result.arrivals, result.scenario, result.network
    ids = np.array(net.link_ids, dtype=object)
    df = pd.DataFrame({
        "vehicle": np.arange(len(arr)),
        "vehicle_class": np.array([c.name for c in sc.vehicle_classes],
                                  dtype=object)[arr.vehicle_class],
        "entry_link": ids[arr.route_links[:, 0]] if len(arr) else np.array([], dtype=object),
        "arrival_s": arr.t_s, "depart_s": result.depart_s, "exit_s": result.exit_s,
        "free_flow_time_s": arr.free_flow_time_s, "route_length_m": arr.route_length_m,
        "stops": result.stops,
    })
    for k, st in enumerate(sc.stretches):
        df[f"stretch_{st.id}_enter_s"] = result.stretch_enter_s[:, k]
        df[f"stretch_{st.id}_exit_s"] = result.stretch_exit_s[:, k]
    return df


def _existing_plan(scenario: Scenario) -> str:
    return scenario.baseline_plan


@dataclass(frozen=True, slots=True)
class _HistoryDay:
    """One history day to simulate and write into ``folder`` (a picklable task)."""

    spec: RunSpec
    date: str
    folder: Path


def _simulate_day(task: _HistoryDay) -> dict[str, Any]:
    """Simulate one history day, write its probes and truth; return its manifest entry."""
    spec, day, tmp = task.spec, task.date, task.folder
    out = run_one(spec)
    assert out.probes is not None
    settings = spec.probe_settings
    frame = stream_to_frame(out.probes, spec.scenario, date=day)
    info = {**out.meta.as_dict(), "date": day, "anonymisation": settings.anonymisation}
    wall_s = info.pop("wall_s", None)  # run.log.json only: the files stay reproducible
    write_probes(frame, tmp / "probes" / f"date={day}" / "probes.parquet", info)
    truth = pa.Table.from_pandas(truth_table(out.result), preserve_index=False)
    truth = truth.replace_schema_metadata({
        **(truth.schema.metadata or {}),
        b"gpssignal": json.dumps(info, sort_keys=True, default=str).encode()})
    tdir = tmp / "truth" / f"date={day}"
    tdir.mkdir(parents=True, exist_ok=True)
    pq.write_table(truth, tdir / "vehicles.parquet")
    return {"date": day, "seed": spec.seed, "points": len(frame),
            "vehicles": len(out.result.arrivals), "demand_level": out.meta.demand_level,
            "peak_shift_s": out.meta.peak_shift_s, "day_type": out.meta.day_type,
            "wall_s": wall_s}


#: Name of the history's run log (timing and workers: differs between runs).
HISTORY_LOG = "run.log.json"


def _day_files(day: str) -> list[str]:
    """Return the files a history writes for one day, relative to its folder."""
    return [f"probes/date={day}/probes.parquet", f"truth/date={day}/vehicles.parquet"]


def _previous_files(out: Path) -> set[str]:
    """Return the files an earlier history in ``out`` wrote (from its manifest).

    A manifest of an older version without ``files`` lists its days, from
    which its files follow. Paths that leave the folder are ignored.
    """
    try:
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(old, dict) or old.get("kind") != "gpssignal-history":
        return set()
    files = old.get("files")
    if not isinstance(files, list):
        files = [f for d in old.get("days", []) if isinstance(d, dict)
                 for f in _day_files(str(d.get("date")))] + ["manifest.json"]
    return {f for f in files if isinstance(f, str) and not Path(f).is_absolute()
            and ".." not in Path(f).parts}


def _check_target(out: Path, files: list[str]) -> set[str]:
    """Raise :class:`FileExistsError` if a file not of a history is where ``files`` go.

    Returns the files of the earlier history in ``out``.
    """
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise FileExistsError(f"{out} exists and is not a gpssignal history; not overwriting")
    previous = _previous_files(out) if out.exists() else set()
    for f in files:
        if (out / f).exists() and f not in previous:
            raise FileExistsError(f"{out / f} exists and was not written by a gpssignal "
                                  "history; not overwriting")
    return previous


def _install(tmp: Path, out: Path, files: list[str]) -> None:
    """Move ``files`` from ``tmp`` into ``out``, replacing only what a history wrote there.

    Checks first that no file is in the way that an earlier history did not
    write (:class:`FileExistsError`, nothing moved). Then moves the new files
    in (``manifest.json`` last), removes the earlier history's files that
    are not written again, and removes folders left empty by that.
    """
    if not out.exists():
        tmp.rename(out)
        return
    previous = _check_target(out, files)
    for f in sorted(files, key=lambda f: f == "manifest.json"):
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / f, out / f)
    for f in sorted(previous - set(files)):
        target = out / f
        if target.is_file() or target.is_symlink():
            target.unlink()
        for parent in target.parents:
            if parent == out:
                break
            try:
                parent.rmdir()  # only if empty: never a folder holding others' files
            except OSError:
                break


def simulate_history(scenario: Scenario, days: int, out_dir: str | Path, *,
                     start_date: str | None = None, first_seed: int | None = None,
                     probes: ProbeSettings | None = None,
                     backend: LocalBackend | DaskBackend | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate ``days`` weekdays and write their probe streams and ground truth.

    Day ``i`` (0-based) uses seed ``first_seed + i`` and the ``i``-th
    weekday from ``start_date`` (default: the scenario's date). The folder is
    written next to ``out_dir`` first and moved into place when complete.
    Into a folder already at ``out_dir`` (only a history: it has a
    ``manifest.json``) only the files are moved; the files of the earlier
    history not written again are removed, nothing else (see
    :func:`_install`).

    Days run on ``backend`` (default: this process, one after another); each
    worker writes its day's files into the temporary folder, so a Dask
    cluster needs a file system shared with this machine.

    Returns
    -------
    dict
        The manifest.
    """
    out = Path(out_dir)
    settings = scenario.probes if probes is None else probes
    seed0 = scenario.seed if first_seed is None else first_seed
    dates = weekdays(start_date or scenario.date, days)
    files = [*sorted(f for d in dates for f in _day_files(d)), "manifest.json", HISTORY_LOG]
    _check_target(out, files)  # before any work
    plan = _existing_plan(scenario)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # mkdtemp makes the folder private (0700); the history is an ordinary output.
    ordinary_permissions(tmp, directory=True)
    manifest: dict[str, Any] = {
        "kind": "gpssignal-history", "version": __version__, "scenario": scenario.name,
        "scenario_hash": scenario_hash(scenario), "controller": plan,
        "probe_settings": asdict(settings), "days": []}
    t0 = time.perf_counter()
    try:
        tasks = [_HistoryDay(RunSpec(scenario=scenario, controller=ControllerSpec.parse(plan),
                                     seed=seed0 + i, probes=settings, sample_probes=True),
                             day, tmp) for i, day in enumerate(dates)]
        days_out = map_runs(_simulate_day, tasks, backend, progress)
        walls = {d["date"]: d.pop("wall_s") for d in days_out}
        manifest["days"] = days_out
        manifest["files"] = files
        log = {"command": "history", "workers": backend.workers if backend else 1,
               "day_wall_s": walls, "wall_s": time.perf_counter() - t0}
        (tmp / HISTORY_LOG).write_text(json.dumps(log, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
        _install(tmp, out, manifest["files"])
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
