"""Tests marked ``sumo`` need Eclipse SUMO (the ``sumo`` extra); without it
they are skipped with the reason. ``.ci/run`` installs the extra."""

from __future__ import annotations

import pytest

from gpssignal.errors import SumoNotFound
from gpssignal.interop.sumo import sumo_home


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        sumo_home()
        return
    except SumoNotFound:
        pass
    skip = pytest.mark.skip(reason="Eclipse SUMO not installed (pip install 'gpssignal[sumo]'; "
                            ".ci/run installs it)")
    for item in items:
        if item.get_closest_marker("sumo") is not None:
            item.add_marker(skip)
