"""Shared fixtures for the GPS-controller tests (``tests/control``).

Test modules here are named ``test_control_*.py``: ``tests/`` has no
``__init__.py`` files, so basenames must be unique across the tree.

The scenario used throughout is ``tiny_relief`` (tests/conftest.py):
``scenarios/tiny.toml`` with ``relief_program = "peak"`` on J1.
Its stretch ``main_eb`` leads into J1. Probe runs use 30 % penetration
instead of the default 5 %, so a 15-minute day yields a few hundred points on
the stretch: enough for windows of 60 s to carry information.

Helpers are handed out as fixtures that return functions, because a conftest
is not importable as a module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gpssignal.control.gps import GpsModel, GpsRuntime, JunctionModel, StretchModel
from gpssignal.model.geo import LocalProjection
from gpssignal.model.scenario import ProbeSettings, Scenario

REPO = Path(__file__).resolve().parents[2]
TINY_PATH = REPO / "scenarios" / "tiny.toml"

#: Origin of the synthetic models' local frame (near tiny's J1).
ORIGIN = (55.63, 12.38)
#: A UTC instant on the 10-s decision grid (2019-05-06 05:00:00Z) [ms].
T0_MS = 1_557_118_800_000


@pytest.fixture(scope="session")
def probes_30(tiny_relief: Scenario) -> ProbeSettings:
    """The scenario's probe feed at 30 % penetration."""
    return dataclasses.replace(tiny_relief.probes, penetration=0.3)


@pytest.fixture(scope="session")
def history_dir(tmp_path_factory: pytest.TempPathFactory, tiny_relief: Scenario,
                probes_30: ProbeSettings) -> Path:
    """A 2-day history of the tiny variant (seeds 1, 2) at 30 % penetration."""
    from gpssignal.experiment.history import simulate_history

    out = tmp_path_factory.mktemp("history") / "hist"
    simulate_history(tiny_relief, 2, out, probes=probes_30)
    return out


def line_model(n_junctions: int = 1, *, low: float = 30.0, high: float = 40.0,
               stretches_per_junction: int = 1, **params: object) -> GpsModel:
    """A synthetic model: junction ``J{k}`` watches eastbound stretches ``s{k}_{i}``.

    Stretch ``(k, i)`` runs from x = -300 m to x = 0 at y = 1000 k + 100 i in the
    frame about :data:`ORIGIN` (heading 90°), far enough apart that no
    point matches two of them.
    """
    proj = LocalProjection(*ORIGIN)
    stretches, junctions = [], []
    for k in range(n_junctions):
        ids = []
        for i in range(stretches_per_junction):
            y = 1000.0 * k + 100.0 * i
            lat, lon = proj.to_latlon(np.array([-300.0, 0.0]), np.array([y, y]))
            sid = f"s{k}_{i}"
            ids.append(sid)
            stretches.append(StretchModel(
                id=sid, junction=f"J{k}", polyline_deg=[[float(a), float(b)] for a, b in
                                                        zip(lat, lon, strict=True)],
                length_m=300.0, speed_limit_kmh=50.0, free_flow_kmh=50.0,
                threshold_low_kmh=low, threshold_high_kmh=high))
        junctions.append(JunctionModel(id=f"J{k}", default_program="normal",
                                       relief_program="peak", stretches=ids))
    return GpsModel(projection_deg=ORIGIN, junctions=junctions, stretches=stretches,
                    **params)  # type: ignore[arg-type]


class Driver:
    """Drives a :class:`GpsRuntime` one decision (10 s) at a time.

    ``tick({stretch_index: speeds})`` advances the clock by 10 s, ingests one
    point per speed on each named stretch (sent and received at the new
    instant, spread along the stretch, heading 90°) and decides. It records
    the window statistics seen just before the decision, and the changes.
    """

    def __init__(self, model: GpsModel) -> None:
        self.rt = GpsRuntime(model)
        self.model = model
        self.now = T0_MS
        self.history: list[tuple[int, np.ndarray, list[int], list[tuple[int, str]]]] = []
        self._rng = np.random.default_rng(0)

    def points(self, stretch: int, speeds: list[float]) -> tuple[np.ndarray, ...]:
        n = len(speeds)
        st = self.model.stretches[stretch]
        lat0, lon0 = st.polyline_deg[0]
        x0, y0 = self.rt.projection.to_xy(np.array([lat0]), np.array([lon0]))
        # Along the stretch, 10-290 m from its start, on the centre line.
        x = x0[0] + self._rng.uniform(10.0, 290.0, n)
        y = np.full(n, y0[0])
        lat, lon = self.rt.projection.to_latlon(x, y)
        return lat, lon, np.asarray(speeds, dtype=float), np.full(n, 90.0)

    def tick(self, speeds: dict[int, list[float]] | None = None) -> list[tuple[int, str]]:
        self.now += 10_000
        for s, v in (speeds or {}).items():
            if len(v) == 0:
                continue
            lat, lon, spd, hdg = self.points(s, v)
            t = np.full(len(v), self.now, dtype=np.int64)
            self.rt.ingest(t, t, lat, lon, spd, hdg)
        _, mean, _ = self.rt.window_stats(self.now)  # idempotent at a fixed instant
        modes_before = [int(m) for m in self.rt.mode]
        changes = self.rt.decide(self.now)
        self.history.append((self.now, mean.copy(), modes_before, changes))
        return changes


@pytest.fixture(scope="session")
def make_line_model() -> Callable[..., GpsModel]:
    return line_model


@pytest.fixture(scope="session")
def make_driver() -> Callable[[GpsModel], Driver]:
    return Driver
