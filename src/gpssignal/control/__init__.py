"""Signal controllers behind the simulator's ``Controller`` protocol.

Clock-driven: :class:`FixedTimeController`, :class:`TimeOfDayController`.
GPS plan selection: a trained :class:`GpsModel` (read with
:func:`read_model`) drives :class:`GpsController` in the simulator, and
:func:`replay` runs the same run-time path on recorded probe points.
"""

from gpssignal.control.fixed import FixedTimeController, TimeOfDayController
from gpssignal.control.gps import (
    GpsController,
    GpsModel,
    GpsRuntime,
    JunctionModel,
    StretchModel,
    model_from_scenario,
    replay,
)
from gpssignal.control.io import read_model, write_model

__all__ = ["FixedTimeController", "GpsController", "GpsModel", "GpsRuntime", "JunctionModel",
           "StretchModel", "TimeOfDayController", "model_from_scenario", "read_model",
           "replay", "write_model"]
