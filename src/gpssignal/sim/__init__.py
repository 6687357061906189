"""The simulator: SimPy event engine, vectorised vehicle kernel, signal runtime."""

from gpssignal.sim.controller import Controller
from gpssignal.sim.demand import Arrivals, DayFactors, draw_day, generate_arrivals
from gpssignal.sim.engine import (
    CONTROL_DELAY_MARK_M,
    QUEUE_SPEED_MPS,
    STOP_SPEED_MPS,
    SimResult,
    Simulation,
    StepView,
    day_streams,
)
from gpssignal.sim.kernel import ballistic_update, idm_acceleration
from gpssignal.sim.network import CompiledNetwork, compile_network
from gpssignal.sim.signals import ConflictMonitor, JunctionSignals, ProgramSwitch, SafetyViolation

__all__ = [
    "CONTROL_DELAY_MARK_M",
    "QUEUE_SPEED_MPS",
    "STOP_SPEED_MPS",
    "Arrivals",
    "CompiledNetwork",
    "ConflictMonitor",
    "Controller",
    "DayFactors",
    "JunctionSignals",
    "ProgramSwitch",
    "SafetyViolation",
    "SimResult",
    "Simulation",
    "StepView",
    "ballistic_update",
    "compile_network",
    "day_streams",
    "draw_day",
    "generate_arrivals",
    "idm_acceleration",
]
