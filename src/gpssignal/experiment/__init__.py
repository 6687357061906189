"""Experiments: the one run path, the one pool loop, histories, training, evaluation, sweeps."""

from gpssignal.experiment.parallel import (
    BACKENDS,
    DaskBackend,
    LocalBackend,
    make_backend,
    map_runs,
)
from gpssignal.experiment.run import (
    CONTROLLERS,
    ControllerSpec,
    RunMeta,
    RunOutput,
    RunSpec,
    make_controller,
    run_one,
    run_scenario,
)

__all__ = ["BACKENDS", "CONTROLLERS", "ControllerSpec", "DaskBackend", "LocalBackend",
           "RunMeta", "RunOutput", "RunSpec", "make_backend", "make_controller", "map_runs",
           "run_one", "run_scenario"]
