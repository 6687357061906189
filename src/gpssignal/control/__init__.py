"""Signal controllers behind the simulator's ``Controller`` protocol."""

from gpssignal.control.fixed import FixedTimeController, TimeOfDayController

__all__ = ["FixedTimeController", "TimeOfDayController"]
