"""Fixtures of the live tests: the tiny variant with a relief program and a model that
switches several times on seed 1 (the same model as tests/control/test_control_replay.py,
at the scenario's own probe feed)."""

from __future__ import annotations

import pytest

from gpssignal.control.gps import GpsModel, model_from_scenario
from gpssignal.model.scenario import Scenario


@pytest.fixture(scope="session")
def tiny_model(tiny_relief: Scenario) -> GpsModel:
    """low = 0.72 x 50 km/h, 2 km/h hysteresis, 60-s windows and dwell, 120-s stale limit."""
    return model_from_scenario(tiny_relief, low_fraction=0.72, hysteresis_kmh=2.0,
                               window_s=60.0, min_dwell_s=60.0, stale_after_s=120.0)
