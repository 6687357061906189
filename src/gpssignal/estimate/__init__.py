"""CO₂ and time-loss estimates for junctions elsewhere, from a junction list (CSV or .xlsx)."""

from gpssignal.estimate.junctions import (
    JunctionSpec,
    RowError,
    build_scenario,
    bundled_scenario,
    parse_junctions,
    read_junctions,
    read_template,
)
from gpssignal.estimate.run import (
    EstimateRun,
    JunctionSummary,
    estimate_all,
    estimate_junction,
    junction_table,
    municipality_table,
)
from gpssignal.estimate.store import EstimateStore, store_identity

__all__ = [
    "EstimateRun",
    "EstimateStore",
    "JunctionSpec",
    "JunctionSummary",
    "RowError",
    "build_scenario",
    "bundled_scenario",
    "estimate_all",
    "estimate_junction",
    "junction_table",
    "municipality_table",
    "parse_junctions",
    "read_junctions",
    "read_template",
    "store_identity",
]
