"""The size limits as command-line options: refused with the figure, the limit and
the option that raises it; raised, the same input runs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VB = REPO / "scenarios" / "vallensbaek.toml"
TINY = REPO / "scenarios" / "tiny.toml"


def test_a_scenario_above_a_limit_names_the_figure_limit_and_option(cli) -> None:
    code, _, err = cli("validate", str(VB), "--max-vehicles", "5000")
    assert code == 2 and err.count("\n") == 1
    assert "5,000" in err and "--max-vehicles" in err and "Traceback" not in err
    code, _, err = cli("validate", str(VB), "--max-cycle-s", "60")
    assert code == 2 and "90" in err and "--max-cycle-s" in err


def test_raising_a_limit_lets_the_scenario_through(cli) -> None:
    code, out, err = cli("validate", str(VB), "--max-cycle-s", "90")
    assert code == 0, err
    assert "torvevej_parkalle" in out


def test_bad_limit_values_are_usage_errors(cli) -> None:
    for option in ("--max-vehicles", "--max-steps", "--max-cycle-s", "--max-file-mb"):
        code, _, err = cli("validate", str(TINY), option, "0")
        assert code == 2 and option in err and err.count("\n") == 1


def test_a_sweep_above_the_point_limit_names_the_option(cli, tmp_path: Path) -> None:
    code, _, err = cli("tune", str(TINY), "--grid", "threshold_low_kmh=10:40:1",
                       "--max-points", "5", "--out", str(tmp_path / "s"))
    assert code == 2 and "31 points" in err and "--max-points" in err
    assert not (tmp_path / "s").exists()


def test_a_run_that_ends_with_a_backlog_says_so(cli, tmp_path: Path) -> None:
    # tiny.toml with a 1 s drain: vehicles are still in the network at the end,
    # and their time loss is not in the totals; the command says so on stderr.
    text = TINY.read_text(encoding="utf-8").replace("drain_s = 300", "drain_s = 1")
    short = tmp_path / "short.toml"
    short.write_text(text, encoding="utf-8")
    code, _, err = cli("run", str(short), "-q", "--out", str(tmp_path / "o"))
    assert code == 0
    assert "warning:" in err and "were in the network when the run ended" in err
    code, _, err = cli("run", str(TINY), "-q", "--out", str(tmp_path / "p"))
    assert code == 0 and "warning" not in err
