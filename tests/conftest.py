"""Fixtures shared by every test folder.

``tiny_relief``: ``scenarios/tiny.toml`` with ``relief_program = "peak"`` on
J1 (tiny has none, and the GPS controller needs one); ``tiny_relief_toml``:
the same variant as a file, for the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpssignal.model.io import read_scenario
from gpssignal.model.scenario import Scenario

TINY_PATH = Path(__file__).resolve().parents[1] / "scenarios" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_relief() -> Scenario:
    """tiny.toml with ``relief_program = "peak"`` on J1."""
    sc = read_scenario(TINY_PATH)
    j = dataclasses.replace(sc.junctions[0], relief_program="peak")
    return dataclasses.replace(sc, junctions=(j,))


@pytest.fixture(scope="session")
def tiny_relief_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same variant as a TOML file (for the command line)."""
    text = TINY_PATH.read_text(encoding="utf-8")
    old = 'default_program = "normal"\n'
    assert text.count(old) == 1
    path = tmp_path_factory.mktemp("scenario") / "tiny_relief.toml"
    path.write_text(text.replace(old, old + 'relief_program = "peak"\n'), encoding="utf-8")
    return path
