"""Comparing two simulation results bit for bit (shared by the tests of equal step loops)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: The fields of SimResult the comparisons check (all of them but the wall time).
FIELDS = ("depart_s", "exit_s", "stops", "stretch_enter_s", "stretch_exit_s", "passages",
          "queue_t_s", "queue_lanes", "queue_m", "queue_veh", "waiting_outside", "signal_log",
          "trajectories", "end_s", "in_network", "waiting", "monitor_checks", "red_crossings",
          "emergency_brakings", "held_back", "n_steps", "co2_mg", "fuel_mg", "distance_m",
          "pedestrians", "red_clearances", "switches")


def assert_same(a: Any, b: Any, where: str) -> None:
    """Assert ``a`` and ``b`` are identical (arrays bit for bit, NaN where NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype == object:
            assert a.tolist() == b.tolist(), where
        else:
            assert a.tobytes() == b.tobytes(), where
    else:
        assert a == b, where
