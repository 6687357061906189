"""Historical probe data: N simulated weekdays under the existing plan.

Each day is one seed, so its demand level and peak timing differ from the
other days as ``[variability]`` prescribes (and its type, with a day-type
mix). The controller is the scenario's existing plan
(:attr:`Scenario.baseline_plan`: ``[evaluation] existing_plan``, else the
time-of-day schedule if there is one, else the default program fixed).
The output folder holds:

```
DIR/manifest.json                             days, dates, seeds, scenario hash, version, settings
DIR/probes/date=YYYY-MM-DD/probes.parquet     the probe stream (schema: gpssignal.probes.io)
DIR/truth/date=YYYY-MM-DD/vehicles.parquet    ground truth per vehicle (raw times, for evaluation)
```

The ``date=`` folders are Hive partitions, readable as one data set by
pyarrow, DuckDB or Spark.

The ground truth is raw: times and lengths from which
:mod:`gpssignal.evaluate` computes the KPIs. It is never shown to a
controller.
"""

from __future__ import annotations

import json
import shutil
import tempfile
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
            "peak_shift_s": out.meta.peak_shift_s, "day_type": out.meta.day_type}


def simulate_history(scenario: Scenario, days: int, out_dir: str | Path, *,
                     start_date: str | None = None, first_seed: int | None = None,
                     probes: ProbeSettings | None = None,
                     backend: LocalBackend | DaskBackend | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate ``days`` weekdays and write their probe streams and ground truth.

    Day ``i`` (0-based) uses seed ``first_seed + i`` and the ``i``-th
    weekday from ``start_date`` (default: the scenario's date). The folder is
    written next to ``out_dir`` first and moved into place when complete;
    a folder already at ``out_dir`` is replaced only if it is a history
    (it has a ``manifest.json``).

    Days run on ``backend`` (default: this process, one after another); each
    worker writes its day's files into the temporary folder, so a Dask
    cluster needs a file system shared with this machine.

    Returns
    -------
    dict
        The manifest.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise FileExistsError(f"{out} exists and is not a gpssignal history; not overwriting")
    settings = scenario.probes if probes is None else probes
    seed0 = scenario.seed if first_seed is None else first_seed
    dates = weekdays(start_date or scenario.date, days)
    plan = _existing_plan(scenario)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # mkdtemp makes the folder private (0700); the history is an ordinary output.
    ordinary_permissions(tmp, directory=True)
    manifest: dict[str, Any] = {
        "kind": "gpssignal-history", "version": __version__, "scenario": scenario.name,
        "scenario_hash": scenario_hash(scenario), "controller": plan,
        "probe_settings": asdict(settings), "days": []}
    try:
        tasks = [_HistoryDay(RunSpec(scenario=scenario, controller=ControllerSpec.parse(plan),
                                     seed=seed0 + i, probes=settings, sample_probes=True),
                             day, tmp) for i, day in enumerate(dates)]
        manifest["days"] = map_runs(_simulate_day, tasks, backend, progress)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
