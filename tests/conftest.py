"""Fixtures shared by every test folder.

``tiny_relief``: ``scenarios/tiny.toml`` with ``relief_program = "peak"`` on
J1 (tiny has none, and the GPS controller needs one); ``tiny_relief_toml``:
the same variant as a file, for the command line.

``cli``: a function running ``gpssignal ARGV`` in-process, returning the exit
code, stdout and stderr; ``snapshot``: a function giving every file below a
folder with its bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gpssignal import cli as gpssignal_cli
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


def run_cli(*argv: object) -> tuple[int, str, str]:
    """Run ``gpssignal ARGV`` in-process; return the exit code, stdout and stderr.

    Arguments are turned into strings; a ``SystemExit`` (argparse's usage
    errors) gives its code. What the command printed is also written to the
    real streams afterwards, so ``capsys`` and pytest's report still see it.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = gpssignal_cli.main([str(a) for a in argv])
            except SystemExit as exc:  # argparse reports usage errors by exiting
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err.getvalue())
    return code, out.getvalue(), err.getvalue()


def files_below(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative (POSIX) path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def cli() -> Callable[..., tuple[int, str, str]]:
    """``cli(*argv) -> (code, stdout, stderr)``: ``gpssignal ARGV`` in-process."""
    return run_cli


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    """``snapshot(folder) -> {relative_path: bytes}`` of every file below ``folder``."""
    return files_below
