"""gpssignal: GPS probe speed plan selection for signalised junctions, simulated and evaluated.

The few entry points a notebook needs are available here (imported on first
use, so that ``import gpssignal`` and ``gpssignal --version`` stay fast):

* :func:`read_scenario` (``gpssignal.model``): a scenario file, validated;
* :func:`run_scenario` (``gpssignal.experiment``): one day under one controller;
* :func:`evaluate_controllers` (``gpssignal.experiment.evaluation``): paired
  evaluation of controllers over N days;
* :func:`read_model` (``gpssignal.control``): a trained GPS controller model;
* :func:`read_probes` (``gpssignal.probes``): a probe file (CSV or Parquet).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("gpssignal")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

#: Public entry point -> the module that defines it.
_ENTRY_POINTS = {
    "read_scenario": "gpssignal.model.io",
    "run_scenario": "gpssignal.experiment.run",
    "evaluate_controllers": "gpssignal.experiment.evaluation",
    "read_model": "gpssignal.control.io",
    "read_probes": "gpssignal.probes.io",
}

__all__ = ["__version__", "evaluate_controllers", "read_model", "read_probes", "read_scenario",
           "run_scenario"]


def __getattr__(name: str) -> Any:
    """Import an entry point on first use (PEP 562)."""
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gpssignal' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENTRY_POINTS))
