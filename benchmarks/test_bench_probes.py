"""Probe file throughput (pytest-benchmark; `make bench`): points per second.

The data are synthetic points with the schema of gpssignal.probes.io, made
in the benchmark's set-up with a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpssignal.probes.io import import_fcd, read_probes, write_probes


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    t = pd.Timestamp("2019-05-06T04:00:00Z") + pd.to_timedelta(np.sort(rng.uniform(0, 10800, n)),
                                                               unit="s")
    return pd.DataFrame({
        "time_sent": pd.DatetimeIndex(t).as_unit("ms"),
        "time_received": pd.DatetimeIndex(t + pd.Timedelta(seconds=10)).as_unit("ms"),
        "lat_deg": 55.649 + rng.normal(0, 0.002, n), "lon_deg": 12.387 + rng.normal(0, 0.003, n),
        "speed_kmh": rng.uniform(0, 70, n), "heading_deg": rng.uniform(0, 360, n)})


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_probes(benchmark, tmp_path: Path, suffix: str) -> None:
    n = 1_000_000 if suffix == ".parquet" else 200_000
    df = _frame(n)
    benchmark.pedantic(lambda: write_probes(df, tmp_path / f"p{suffix}"), rounds=3)
    benchmark.extra_info["points_per_s"] = n / benchmark.stats.stats.mean


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_read_probes(benchmark, tmp_path: Path, suffix: str) -> None:
    """Reading includes parsing and every bad-row check of read_probes."""
    n = 1_000_000 if suffix == ".parquet" else 200_000
    path = write_probes(_frame(n), tmp_path / f"p{suffix}")
    result = benchmark.pedantic(lambda: read_probes(path), rounds=3)
    assert result.report.rows_kept == n
    benchmark.extra_info["points_per_s"] = n / benchmark.stats.stats.mean


def _write_fcd(path: Path, steps: int, vehicles: int) -> int:
    rng = np.random.default_rng(2)
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<fcd-export>\n')
        for t in range(steps):
            f.write(f'    <timestep time="{t:.2f}">\n')
            xs = rng.uniform(-500, 500, vehicles)
            for v in range(vehicles):
                f.write(f'        <vehicle id="veh{v}" x="{xs[v]:.2f}" y="{t * 0.5:.2f}" '
                        f'angle="90.00" type="DEFAULT_VEHTYPE" speed="13.89" pos="{t:.2f}" '
                        f'lane="e_0" slope="0.00"/>\n')
            f.write("    </timestep>\n")
        f.write("</fcd-export>\n")
    return steps * vehicles


def test_import_fcd(benchmark, tmp_path: Path) -> None:
    """Streaming SUMO FCD XML -> Parquet, plain x/y with an origin."""
    src = tmp_path / "fcd.xml"
    n = _write_fcd(src, steps=2000, vehicles=100)
    out = tmp_path / "fcd.parquet"
    result = benchmark.pedantic(
        lambda: import_fcd(src, out, origin=(55.649, 12.387)), rounds=3)
    assert result[1] == n
    benchmark.extra_info["points_per_s"] = n / benchmark.stats.stats.mean
