"""Intergreen >= amber: refused at load, and flagged by the conflict monitor.

An intergreen is measured from the end of green of the group losing right of
way, so it includes that group's amber; a shorter one would let a
conflicting group turn green while the other still shows amber.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpssignal.errors import ScenarioError
from gpssignal.model.io import read_scenario
from gpssignal.model.signals import AMBER, GREEN, RED, RED_AMBER
from gpssignal.sim.signals import ConflictMonitor, SafetyViolation

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "tiny.toml"
A, B = 0, 1


def short_intergreen_toml(tmp_path: Path) -> Path:
    text = TINY.read_text(encoding="utf-8")
    assert text.count("A = { B = 5 }") == 1
    path = tmp_path / "short.toml"
    path.write_text(text.replace("A = { B = 5 }", "A = { B = 3 }"), encoding="utf-8")
    return path


def test_intergreen_shorter_than_amber_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as exc:
        read_scenario(short_intergreen_toml(tmp_path))
    msg = str(exc.value)
    assert msg.startswith("junction[J1].intergreen_s.A.B = 3:")
    assert "A->B 3 s" in msg and "amber_s = 4 s" in msg


def test_intergreen_equal_to_amber_is_accepted(tmp_path: Path) -> None:
    text = TINY.read_text(encoding="utf-8").replace("A = { B = 5 }", "A = { B = 4 }")
    path = tmp_path / "equal.toml"
    path.write_text(text, encoding="utf-8")
    assert read_scenario(path).junctions[0].intergreen_s[("A", "B")] == 4


def test_validate_reports_a_short_intergreen_in_one_line(cli, tmp_path: Path) -> None:
    code, out, err = cli("validate", short_intergreen_toml(tmp_path))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "junction[J1].intergreen_s.A.B = 3" in lines[0]


def test_monitor_refuses_a_junction_with_an_intergreen_shorter_than_amber() -> None:
    j = read_scenario(TINY).junctions[0]
    object.__setattr__(j, "intergreen_s", {("A", "B"): 3.0, ("B", "A"): 6.0})
    with pytest.raises(SafetyViolation, match=r"intergreen A->B 3 s < amber 4 s"):
        ConflictMonitor(j)


def test_monitor_flags_green_while_a_conflicting_group_is_amber() -> None:
    m = ConflictMonitor(read_scenario(TINY).junctions[0])
    m.intergreen[A, B] = 3.0  # as if the matrix had slipped past validation
    m.start(0.0, np.array([GREEN, RED]))
    m.observe(10.0, A, AMBER)
    m.observe(11.0, B, RED_AMBER)
    with pytest.raises(SafetyViolation,
                       match=r"group B green while conflicting A is amber"):
        m.observe(13.0, B, GREEN)
