"""Outputs written atomically through a temporary file get ordinary permissions.

``tempfile.mkstemp`` creates files readable by the owner only; a user's
results (models, probe files) should be as readable as any file they write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd

from gpssignal.control.gps import model_from_scenario
from gpssignal.control.io import write_model
from gpssignal.model.io import read_scenario
from gpssignal.probes.io import write_probes

REPO = Path(__file__).resolve().parents[1]


def _expected() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_model_and_probe_files_have_the_umask_mode(tmp_path: Path) -> None:
    sc = read_scenario(REPO / "scenarios" / "tiny.toml")
    import dataclasses

    sc = dataclasses.replace(sc, junctions=(dataclasses.replace(sc.junctions[0],
                                                                relief_program="peak"),))
    m = write_model(model_from_scenario(sc), tmp_path / "m.json")
    frame = pd.DataFrame({"time_sent": pd.to_datetime([0], unit="ms", utc=True),
                          "time_received": pd.to_datetime([1000], unit="ms", utc=True),
                          "lat": [55.6], "lon": [12.4], "speed_kmh": [30.0],
                          "heading_deg": [90.0]})
    p = write_probes(frame, tmp_path / "p.parquet")
    for path in (m, p):
        assert stat.S_IMODE(path.stat().st_mode) == _expected(), path
