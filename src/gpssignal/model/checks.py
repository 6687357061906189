"""Value checks shared by the model's validators, and the movement names.

The leaf of the ``model`` package: it imports no other model module, so
``scenario``, ``signals`` and ``network`` can all use it without an import
cycle. Every check raises :class:`~gpssignal.errors.ScenarioError` with the
field's name and the bad value.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from gpssignal.errors import ScenarioError

__all__ = ["MOVEMENTS", "check_non_negative", "check_positive", "fail", "is_number"]

#: Movements a lane can carry at its downstream end. ``exit`` is implicit for
#: links that leave the network.
MOVEMENTS = ("left", "through", "right")


def fail(fieldname: str, value: Any, reason: str) -> NoReturn:
    """Raise :class:`ScenarioError` as ``"<field> = <value>: <reason>"``."""
    raise ScenarioError(f"{fieldname} = {value!r}: {reason}")


def is_number(value: Any) -> bool:
    """Tell whether ``value`` is a real number: int or float, not bool (TOML ``true``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive(fieldname: str, value: float) -> None:
    """Refuse anything but a finite number > 0."""
    if not (is_number(value) and math.isfinite(value) and value > 0):
        fail(fieldname, value, "must be a finite number > 0")


def check_non_negative(fieldname: str, value: float) -> None:
    """Refuse anything but a finite number >= 0."""
    if not (is_number(value) and math.isfinite(value) and value >= 0):
        fail(fieldname, value, "must be a finite number >= 0")
