"""Eclipse SUMO as a reference: where it is, and its emission model on our trajectories.

SUMO is an optional dependency (the ``sumo`` extra: PyPI ``eclipse-sumo``,
about 700 MB). :func:`sumo_home` finds it; everything else raises
:class:`SumoNotFound` (a one-line message) without it.

:func:`sumo_emission_rates` evaluates SUMO's own HBEFA4 implementation
(its ``emissionsDrivingCycle`` tool, which drives a given time line through
``PollutantsInterface``) at given (v, a) points, so gpssignal's emission
module can be compared with SUMO's on identical trajectories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from gpssignal.errors import ScenarioError, SumoNotFound

__all__ = ["SumoNotFound", "sumo_binary", "sumo_emission_rates", "sumo_home", "sumo_version"]


def sumo_home() -> Path:
    """SUMO's installation folder: ``$SUMO_HOME``, else the ``eclipse-sumo`` package."""
    env = os.environ.get("SUMO_HOME")
    if env and (Path(env) / "bin").is_dir():
        return Path(env)
    try:
        import sumo  # type: ignore[import-not-found]
    except ImportError:
        raise SumoNotFound("Eclipse SUMO not found: install the optional extra "
                           "(pip install 'gpssignal[sumo]') or set SUMO_HOME") from None
    return Path(sumo.SUMO_HOME)


def sumo_binary(name: str) -> Path:
    """Path of one of SUMO's programs (``sumo``, ``netconvert``, ...)."""
    p = sumo_home() / "bin" / name
    if not p.exists():
        found = shutil.which(name)
        if found is None:
            raise SumoNotFound(f"SUMO program {name!r} not found under {sumo_home()}")
        return Path(found)
    return p


def sumo_version() -> str:
    """Return the first line of ``sumo --version``."""
    out = subprocess.run([str(sumo_binary("sumo")), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.splitlines()[0].strip()


def sumo_emission_rates(emission_class: str, v_mps: np.ndarray, a_mps2: np.ndarray
                        ) -> pd.DataFrame:
    """SUMO's CO₂ and fuel rates [mg/s] at each (v, a), for one HBEFA4 class.

    Every row is evaluated on its own (the acceleration is given, not
    computed from consecutive speeds; flat road). Returns columns
    ``co2_mg_s`` and ``fuel_mg_s`` in input order.
    """
    v = np.asarray(v_mps, dtype=float)
    a = np.asarray(a_mps2, dtype=float)
    with tempfile.TemporaryDirectory(prefix="gpssignal-sumo-") as work:
        cycle = Path(work) / "cycle.csv"
        out = Path(work) / "out.csv"
        # One line per point: time;speed;acceleration. The time is only an index.
        np.savetxt(cycle, np.column_stack([np.arange(len(v), dtype=float), v, a]),
                   delimiter=";", fmt="%.17g")
        proc = subprocess.run(
            [str(sumo_binary("emissionsDrivingCycle")), "-t", str(cycle),
             "-e", f"HBEFA4/{emission_class}", "-o", str(out)],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ScenarioError(f"SUMO emissionsDrivingCycle failed for {emission_class!r}: "
                                f"{proc.stderr.strip().splitlines()[-1:]}")
        df = pd.read_csv(out, sep=";", header=None)
    if len(df) != len(v):
        raise ScenarioError(f"SUMO returned {len(df)} rows for {len(v)} points")
    # Columns: time, speed, acceleration, slope, CO, CO2, HC, PMx, NOx, fuel,
    # electricity (SUMO's PollutantsInterface order; fuel in mg/s).
    return pd.DataFrame({"co2_mg_s": df.iloc[:, 5].to_numpy(float),
                         "fuel_mg_s": df.iloc[:, 9].to_numpy(float)})
