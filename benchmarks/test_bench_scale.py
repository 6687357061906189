"""The scale benchmark (``benchmarks/scale.py``) at small sizes, inside ``make bench``.

Arterials of 1 and 5 junctions, one round each: gpssignal and SUMO (libsumo and
the ``sumo`` binary) on the same exported vehicles. The figures go to
``extra_info``; the full table (to 1,000 junctions) comes from ``python
benchmarks/scale.py`` (its docstring). Skipped without the ``sumo`` extra.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("libsumo", reason="libsumo not installed (the sumo extra)")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import measure  # beside this file (put on the path above)

#: Vehicle-steps of the two simulators may differ by this fraction: both move
#: the same vehicles, but car following and discharge differ in detail (at
#: these sizes they agree to 1 %, docs/validation.md compares them closely).
STEPS_TOLERANCE = 0.05


@pytest.mark.parametrize("junctions", [1, 5])
def test_scale_arterial(benchmark, tmp_path: Path, junctions: int) -> None:
    row = benchmark.pedantic(measure, args=("arterial", junctions, 0.6, 1, tmp_path),
                             rounds=1, iterations=1)
    gps, sumo = row["vehicle_steps_gps"], row["vehicle_steps_sumo"]
    assert abs(gps - sumo) <= STEPS_TOLERANCE * sumo
    benchmark.extra_info.update({
        "vehicles": row["vehicles"], "vehicle_steps_gps": gps, "vehicle_steps_sumo": sumo,
        "libsumo_over_gpssignal": row["min_s"]["libsumo"] / row["min_s"]["gps"],
        "sumo_over_gpssignal_run": row["min_s"]["sumo"] / row["min_s"]["gps_run"],
        "peak_mb": row["peak_mb"]})
