"""The size limits as command-line options: refused with the figure, the limit and
the option that raises it; raised, the same input runs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from gpssignal import cli

REPO = Path(__file__).resolve().parents[2]
VB = REPO / "scenarios" / "vallensbaek.toml"
TINY = REPO / "scenarios" / "tiny.toml"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_a_scenario_above_a_limit_names_the_figure_limit_and_option() -> None:
    code, _, err = _cli("validate", str(VB), "--max-vehicles", "5000")
    assert code == 2 and err.count("\n") == 1
    assert "5,000" in err and "--max-vehicles" in err and "Traceback" not in err
    code, _, err = _cli("validate", str(VB), "--max-cycle-s", "60")
    assert code == 2 and "90" in err and "--max-cycle-s" in err


def test_raising_a_limit_lets_the_scenario_through() -> None:
    code, out, err = _cli("validate", str(VB), "--max-cycle-s", "90")
    assert code == 0, err
    assert "torvevej_parkalle" in out


def test_bad_limit_values_are_usage_errors() -> None:
    for option in ("--max-vehicles", "--max-steps", "--max-cycle-s", "--max-file-mb"):
        code, _, err = _cli("validate", str(TINY), option, "0")
        assert code == 2 and option in err and err.count("\n") == 1


def test_a_sweep_above_the_point_limit_names_the_option(tmp_path: Path) -> None:
    code, _, err = _cli("tune", str(TINY), "--grid", "threshold_low_kmh=10:40:1",
                        "--max-points", "5", "--out", str(tmp_path / "s"))
    assert code == 2 and "31 points" in err and "--max-points" in err
    assert not (tmp_path / "s").exists()
