"""An interrupted estimate keeps its finished junctions; the same command resumes.

Three one-hour junctions with tiny settings (1 training day, 2 candidates, 2
days, no oracle, 1 worker: ~3 s a junction). The interrupt is simulated in
the process: the third call of ``estimate_junction`` raises
``KeyboardInterrupt`` (as Ctrl-C or SIGTERM would, see
tests/hardening/test_hardening_d_estimate_shutdown.py for the real signals).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gpssignal.estimate import run as estimate_run
from gpssignal.estimate.store import STORE_NAME
from tests.estimate.lists import HEADER

ROWS = [
    "Cross,Town A,55.60,12.40,60,07:00-08:00,07:00,S,,"
    "1,50,20,300,20,1,50,20,150,20,2,50,40,700,40,1,50,20,150,20",
    "Tee,Town A,55.61,12.41,60,07:00-08:00,07:00,,,"
    "1,50,30,300,0,1,50,40,0,40,1,50,0,500,30,0,,0,0,0",
    "Busy,Town B,55.62,12.42,70,07:00-08:00,07:00,N,,"
    "2,50,40,900,40,1,50,30,250,30,2,50,40,800,40,1,50,30,250,30",
]
OPTIONS = ["--replications", 2, "--train-days", 1, "--candidates", 2, "--no-oracle",
           "--workers", 1, "-q"]
#: Files that legitimately differ between a resumed and an uninterrupted run:
#: the run log (wall times, how many were reused) and the store (timestamps).
VOLATILE = {"run.log.json", STORE_NAME}
#: The real function, before any test replaces it.
REAL = estimate_run.estimate_junction


class Calls:
    """``estimate_junction`` that counts its calls by junction, interrupting the n-th."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.real = REAL
        self.count: Counter[str] = Counter()
        self.interrupt_at = interrupt_at

    def __call__(self, spec: Any, *args: Any, **kwargs: Any) -> Any:
        if self.interrupt_at is not None and sum(self.count.values()) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.count[spec.id] += 1
        return self.real(spec, *args, **kwargs)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in VOLATILE}


def test_an_interrupted_estimate_resumes_to_the_same_result_running_no_junction_twice(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "junctions.csv"
    csv.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"

    calls = Calls()
    monkeypatch.setattr(estimate_run, "estimate_junction", calls)
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", whole)
    assert code == 0, err
    assert calls.count == {"cross": 1, "tee": 1, "busy": 1}

    # Interrupted when the third junction starts: two are finished and stored.
    first = Calls(interrupt_at=3)
    monkeypatch.setattr(estimate_run, "estimate_junction", first)
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", resumed)
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        f"gpssignal estimate: interrupted; 2 of 3 junctions finished and are kept in "
        f"{resumed / STORE_NAME}; the same command resumes, without running them again")
    assert sorted(p.name for p in resumed.iterdir()) == [STORE_NAME]  # no half output

    # Interrupted again, at once: the two stored junctions are still kept.
    again = Calls(interrupt_at=1)
    monkeypatch.setattr(estimate_run, "estimate_junction", again)
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", resumed)
    assert code == 130 and "2 of 3 junctions finished and are kept" in err, err
    assert again.count == {}

    second = Calls()
    monkeypatch.setattr(estimate_run, "estimate_junction", second)
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", resumed)
    assert code == 0, err
    assert first.count == {"cross": 1, "tee": 1}
    assert second.count == {"busy": 1}          # only the unfinished junction ran
    assert _files(resumed) == _files(whole)      # byte for byte, outputs and models

    # Once complete, a rerun runs nothing and rewrites the same files.
    third = Calls()
    monkeypatch.setattr(estimate_run, "estimate_junction", third)
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", resumed)
    assert code == 0, err
    assert third.count == {} and _files(resumed) == _files(whole)


def test_a_folder_of_other_settings_is_refused_and_left_alone(cli, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    csv = tmp_path / "junctions.csv"
    csv.write_text("\n".join([HEADER, ROWS[1]]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = cli("estimate", csv, *OPTIONS, "--out", out)
    assert code == 0, err
    before = _files(out)
    monkeypatch.setattr(estimate_run, "estimate_junction", Calls(interrupt_at=1))
    code, _, err = cli("estimate", csv, *OPTIONS[:-1], "--replications", 3, "-q",
                       "--out", out)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"gpssignal estimate: error: --out = {str(out)!r}: holds an estimate "
                          "with other settings")
    assert _files(out) == before
