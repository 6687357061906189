"""KPIs, their definitions and output tables."""

from gpssignal.evaluate.definitions import (
    LOS_BOUNDS_S,
    entry_wait_s,
    free_flow_time_s,
    level_of_service,
    space_mean_speed_kmh,
    time_loss_s,
    travel_time_s,
)
from gpssignal.evaluate.io import write_tables
from gpssignal.evaluate.metrics import (
    KPI_DEFINITIONS,
    approach_table,
    interval_table,
    movement_table,
    run_tables,
    stretch_length_m,
    summary_table,
    vehicle_table,
)

__all__ = [
    "KPI_DEFINITIONS",
    "LOS_BOUNDS_S",
    "approach_table",
    "entry_wait_s",
    "free_flow_time_s",
    "interval_table",
    "level_of_service",
    "movement_table",
    "run_tables",
    "space_mean_speed_kmh",
    "stretch_length_m",
    "summary_table",
    "time_loss_s",
    "travel_time_s",
    "vehicle_table",
    "write_tables",
]
