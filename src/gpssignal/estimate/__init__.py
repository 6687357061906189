"""CO₂ and time-loss estimates for junctions elsewhere, from a junction list (CSV)."""

from gpssignal.estimate.junctions import (
           JunctionSpec,
           RowError,
           build_scenario,
           read_junctions,
           read_template,
)
from gpssignal.estimate.run import estimate_junction, junction_table, municipality_table

__all__ = [
           "JunctionSpec",
           "RowError",
           "build_scenario",
           "estimate_junction",
           "junction_table",
           "municipality_table",
           "read_junctions",
           "read_template",
]
