"""Hardening B: a killed or terminated `tune` leaves no worker behind.

``tune --workers 2`` on the tiny scenario is stopped after its first stored
run, by SIGKILL (no clean-up at all: the workers must notice the parent is
gone) and by SIGTERM (the pool is shut down: pending runs cancelled, running
ones ended). Within a few seconds no process the command started is still
running, the runs stored before the stop are kept, and a rerun completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.hardening.processes import alive, children

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

TOTAL = 3 * 2 + 2 * 4  # GPS runs, then per day: tod, each program fixed, oracle


def _stored(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_stopped_tune_leaves_no_worker_and_resumes(sig: signal.Signals,
                                                     tiny_relief_toml: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "gpssignal", "-v", "tune", str(tiny_relief_toml),
            "--grid", "threshold_low_kmh=20:30:5", "--replications", "2", "--first-seed", "41",
            "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    workers: list[int] = []
    for line in proc.stderr:
        if "stored run" in line:
            workers = children(proc.pid)
            proc.send_signal(sig)
            break
    rest = proc.stderr.read()  # to the end: the command exits
    code = proc.wait(timeout=30)
    assert workers, "the pool had started no worker"
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "workers outlived the stopped tune"
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130), rest
    first = _stored(out / "runs.duckdb")
    assert 1 <= first < TOTAL
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{TOTAL} runs: {first} already stored, {TOTAL - first} run now" in done.stdout
    assert _stored(out / "runs.duckdb") == TOTAL
