"""The estimate's result store: each finished junction, committed as it finishes.

The same design as the sweep's :class:`~gpssignal.experiment.sweep.ResultStore`
(``gpssignal tune``): a DuckDB file in the output folder (``estimate.duckdb``),
one committed row per finished unit of work, a stored identity that refuses
another job's folder, and a rerun that skips what is stored. A sweep's unit is
one simulated day (KPIs only); an estimate's is a whole junction (its
generated scenario, trained model and per-day savings:
:class:`~gpssignal.estimate.run.JunctionSummary`), hence a store of its own
rather than a row type of the sweep's.

A junction is found again by its id *and* its generated scenario text: a row
whose volumes, plan or position changed (or whose template did) gives another
scenario and is estimated anew; a junction stored under the same id with
another scenario is replaced. The identity covers what else a result depends
on: evaluation days, training days, candidates, the hindsight bound, the
package version.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpssignal import __version__
from gpssignal.errors import EstimateInputError

if TYPE_CHECKING:
    import duckdb

    from gpssignal.estimate.junctions import JunctionSpec
    from gpssignal.estimate.run import JunctionSummary

__all__ = ["STORE_FORMAT", "STORE_NAME", "EstimateStore", "store_identity"]

#: The store's file name in the output folder.
STORE_NAME = "estimate.duckdb"
#: Version of the stored layout: a store of another layout is refused, not misread.
STORE_FORMAT = 2


def store_identity(seeds: list[int], train_days: int, candidates: int, oracle: bool
                   ) -> dict[str, Any]:
    """Return what every stored junction's result depends on besides its scenario."""
    return {"format": STORE_FORMAT, "version": __version__, "seeds": list(seeds),
            "train_days": train_days, "candidates": candidates, "oracle": oracle}


class EstimateStore:
    """Finished junctions of one estimate in a DuckDB file (see the module docstring).

    The file is created only when the first junction is stored, so an
    estimate interrupted before any junction finished leaves nothing behind.

    Raises
    ------
    EstimateInputError
        If the file holds an estimate of other settings, or cannot be opened.
    """

    def __init__(self, path: str | Path, identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.identity = json.dumps(identity, sort_keys=True)
        self.con: duckdb.DuckDBPyConnection | None = None
        if self.path.exists():
            self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        if self.con is not None:
            return self.con
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path))
            self.con.execute("CREATE TABLE IF NOT EXISTS estimate (name VARCHAR PRIMARY KEY, "
                             "value VARCHAR)")
            self.con.execute("CREATE TABLE IF NOT EXISTS junctions (id VARCHAR PRIMARY KEY, "
                             "scenario_toml VARCHAR, model_json BLOB, summary VARCHAR, "
                             "train_wall_s DOUBLE, finished_at DOUBLE)")
            row = self.con.execute("SELECT value FROM estimate WHERE name = 'identity'"
                                   ).fetchone()
        except (duckdb.Error, OSError) as exc:
            self.close()
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            why = ("is in use by another estimate (DuckDB lock); wait for it to finish or use "
                   "another folder" if "lock" in first.lower() else
                   f"cannot be opened as an estimate's store ({first}); it is left as it is: "
                   "move it away or use another folder")
            raise EstimateInputError(f"out = {str(self.path)!r}: {why}") from None
        if row is None:
            self.con.execute("INSERT INTO estimate VALUES ('identity', ?)", [self.identity])
        elif row[0] != self.identity:
            self.close()
            raise EstimateInputError(
                f"out = {str(self.path.parent)!r}: holds an estimate with other settings "
                f"({row[0]}); give the same --replications, --first-seed, --train-days, "
                "--candidates and --no-oracle to resume it, or use another folder")
        return self.con

    def __len__(self) -> int:
        """Return the number of stored junctions."""
        if self.con is None:
            return 0
        row = self.con.execute("SELECT count(*) FROM junctions").fetchone()
        return int(row[0]) if row else 0

    def get(self, spec: JunctionSpec, scenario_toml: str) -> JunctionSummary | None:
        """Return the stored junction of ``spec`` if its scenario is ``scenario_toml``."""
        from gpssignal.estimate.run import JunctionSummary

        if self.con is None:
            return None
        row = self.con.execute("SELECT model_json, summary, train_wall_s FROM junctions "
                               "WHERE id = ? AND scenario_toml = ?",
                               [spec.id, scenario_toml]).fetchone()
        if row is None:
            return None
        s = json.loads(row[1])
        return JunctionSummary(spec=spec, scenario_toml=scenario_toml, model_json=bytes(row[0]),
                               seeds=tuple(s["seeds"]),
                               time_loss_saved_veh_h=tuple(s["time_loss_saved_veh_h"]),
                               co2_saved_kg=tuple(s["co2_saved_kg"]),
                               working_days_per_year=s["working_days_per_year"],
                               columns=s["columns"], train_wall_s=row[2],
                               movements=tuple(s["movements"]))

    def add(self, summary: JunctionSummary) -> None:
        """Store one finished junction (committed at once; replaces one of the same id)."""
        con = self._connect()
        blob = json.dumps({
            "seeds": list(summary.seeds),
            "time_loss_saved_veh_h": list(summary.time_loss_saved_veh_h),
            "co2_saved_kg": list(summary.co2_saved_kg),
            "working_days_per_year": summary.working_days_per_year,
            "columns": summary.columns,  # NaN is written as NaN and read back
            "movements": list(summary.movements),
        })
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM junctions WHERE id = ?", [summary.spec.id])
            con.execute("INSERT INTO junctions VALUES (?, ?, ?, ?, ?, ?)",
                        [summary.spec.id, summary.scenario_toml, summary.model_json, blob,
                         summary.train_wall_s, time.time()])
            con.execute("COMMIT")
        except RuntimeError as exc:
            # A Ctrl-C or SIGTERM during the query: DuckDB aborts it (nothing of
            # it is stored) and reports it as a RuntimeError.
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt(str(exc)) from exc
            raise

    def close(self) -> None:
        """Close the database connection."""
        if self.con is not None:
            self.con.close()
            self.con = None
