"""Errors by kind: every error a user can cause is a :class:`GpssignalError`.

A leaf module (it imports nothing of gpssignal), so every layer can raise
these. Library messages name the parameter and its value
(``replications = 0: must be at least 1``); the command line translates them
to option names and maps every :class:`GpssignalError` to exit code 2 with a
one-line message.
"""

from __future__ import annotations

__all__ = [
    "EstimateInputError",
    "GpssignalError",
    "ModelError",
    "ProbeFileError",
    "ScenarioError",
    "SumoNotFound",
    "SweepSpecError",
]


class GpssignalError(ValueError):
    """Bad input of any kind; the message names the field and the value."""


class ScenarioError(GpssignalError):
    """A scenario value, or an argument about a scenario, is invalid."""


class ModelError(GpssignalError):
    """A controller model (file or object) cannot be used."""


class ProbeFileError(GpssignalError):
    """A probe file cannot be read at all; the message names file and problem."""


class SweepSpecError(GpssignalError):
    """A sweep specification (grid, ranges, store) is invalid."""


class EstimateInputError(GpssignalError):
    """A junction list or one of its rows is invalid."""


class SumoNotFound(GpssignalError):  # noqa: N818 - public name, used by callers and tests
    """Eclipse SUMO is not installed (``pip install 'gpssignal[sumo]'``)."""
