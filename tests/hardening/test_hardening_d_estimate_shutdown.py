"""Hardening D: a killed or terminated `estimate` leaves no worker behind.

``estimate`` on two one-hour junctions (1 training day, 2 candidates, 2
evaluation days, no oracle) is stopped while the second junction runs: by
SIGKILL (no clean-up at all: the workers must notice the parent is gone) and
by SIGTERM (pool stopped, exit code 130, one line, no traceback), with a
pool of 2 workers and, for SIGTERM, also with ``--workers 1`` (everything in
the command's own process, where no pool turns SIGTERM into an interrupt).
Within a few seconds no process the command started is still running,
``--out`` holds only the store with the first (finished) junction, after
SIGTERM the temporary folders are gone and the message says what is kept;
the same command then resumes, running only the second junction.

A Ctrl-C or SIGTERM arriving while training reads the history with DuckDB
is reported by DuckDB as ``RuntimeError: Query interrupted``; training turns
it back into the interrupt it is (exit code 130, not a traceback and 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from gpssignal.control.gps import model_from_scenario
from gpssignal.control.training import load_history_speeds
from gpssignal.experiment.parallel import sigterm_interrupts
from gpssignal.model.scenario import Scenario
from tests.estimate.lists import CROSS, HEADER, TEE
from tests.hardening.processes import alive, children

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")



@pytest.mark.parametrize("sig, workers", [(signal.SIGKILL, 2), (signal.SIGTERM, 2),
                                          (signal.SIGTERM, 1)],
                         ids=["kill", "term", "term-in-process"])
def test_a_stopped_estimate_leaves_no_worker(sig: signal.Signals, workers: int,
                                             tmp_path: Path) -> None:
    csv = tmp_path / "junctions.csv"
    csv.write_text("\n".join([HEADER, CROSS, TEE]) + "\n", encoding="utf-8")
    out, tmp = tmp_path / "est", tmp_path / "tmp"
    tmp.mkdir()
    args = [sys.executable, "-m", "gpssignal", "estimate", str(csv), "--replications", "2",
            "--train-days", "1", "--candidates", "2", "--no-oracle", "--workers",
            str(workers), "--out", str(out)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)})
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("[1/2]") and "done" in line:
            break  # the second junction starts now
    seen: list[int] = []
    deadline = time.monotonic() + 10
    while workers > 1 and not seen and time.monotonic() < deadline:
        seen = [c for c in children(proc.pid) if alive(c)]
        time.sleep(0.02)
    proc.send_signal(sig)
    rest = proc.stderr.read()  # to the end: the command exits
    code = proc.wait(timeout=30)
    assert bool(seen) == (workers > 1), "the pool of the second junction had no worker"
    deadline = time.monotonic() + 5
    while any(alive(w) for w in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in seen if alive(w)], "workers outlived the stopped estimate"
    # Only the store (after SIGKILL with its write-ahead log, which holds the
    # committed junction until DuckDB next opens the file).
    kept = {p.name for p in out.iterdir()}
    assert "estimate.duckdb" in kept and kept <= {"estimate.duckdb", "estimate.duckdb.wal"}
    if sig == signal.SIGTERM:
        assert code == 130, rest
        assert "Traceback" not in rest
        assert rest.strip().splitlines()[-1] == (
            f"gpssignal estimate: interrupted; 1 of 2 junctions finished and are kept in "
            f"{out / 'estimate.duckdb'}; the same command resumes, without running them again")
        assert sorted(p.name for p in tmp.iterdir()) == []  # temporary folders removed
    else:
        assert code == -signal.SIGKILL
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr
    assert "[1/2] Cross: done before (kept in the store, not run again)" in done.stderr
    assert "[2/2] Tee: done (" in done.stderr
    assert (out / "junctions.csv").is_file()


def test_an_interrupted_history_read_is_an_interrupt(cli, tiny_relief: Scenario,
                                                     tiny_relief_toml: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    hist = tmp_path / "history"
    code, _, err = cli("history", tiny_relief_toml, "--days", 1, "--out", hist, "-q",
                       "--workers", 1)
    assert code == 0, err
    connect = duckdb.connect

    class Slow:
        """A connection whose every query takes ~10 s (interrupted after 0.5 s)."""

        def __init__(self) -> None:
            self.con = connect()

        def sql(self, *args: object, **kwargs: object) -> duckdb.DuckDBPyRelation:
            return self.con.sql("SELECT sum(range * 2) FROM range(3000000000)")

        def close(self) -> None:
            self.con.close()

    monkeypatch.setattr(duckdb, "connect", Slow)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt) as caught:
        timer.start()
        try:
            load_history_speeds(hist, model_from_scenario(tiny_relief), tiny_relief)
        finally:
            timer.cancel()
    # DuckDB aborted the query and reported it as a RuntimeError; that became the interrupt.
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "interrupted" in str(caught.value).lower()


def test_an_interrupt_ending_source_text_still_exits_130_under_dash_m(tmp_path: Path) -> None:
    # dataclasses and numba define functions by exec of source text; an
    # interrupt landing there made `python -m gpssignal` end by SIGINT (-2)
    # after printing its message, instead of returning 130.
    (tmp_path / "interrupted_cmd.py").write_text(
        "import sys\n"
        "import gpssignal.cli.simulate as simulate\n"
        "def interrupted(args):\n"
        "    exec('raise KeyboardInterrupt', {})\n"
        "simulate._cmd_validate = interrupted\n"
        "from gpssignal.cli import main\n"
        "sys.exit(main(['validate', 'any.toml']))\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "interrupted_cmd"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "gpssignal validate: interrupted; no output written\n"
