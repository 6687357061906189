"""Experiments: one run, replications and sweeps."""

from gpssignal.experiment.run import (
    CONTROLLERS,
    RunMeta,
    make_controller,
    run_scenario,
    run_with_probes,
)

__all__ = ["CONTROLLERS", "RunMeta", "make_controller", "run_scenario", "run_with_probes"]
