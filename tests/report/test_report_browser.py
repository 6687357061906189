"""report.html opens in headless Chromium: every figure loads, no console messages.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); without
it the test is skipped with the reason. The page itself has no script; the
test works on a copy with one line of JavaScript added that, after the load
event, counts the images that decoded (``naturalWidth > 0``) and writes the
count into the DOM, which ``--dump-dom`` returns. Console messages come from
Chromium's log on stderr (``--enable-logging=stderr``). A control page with
a broken image and a console error shows that both checks can fail.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gpssignal import cli
from gpssignal.report.plots import FIGURES
from tests.estimate.lists import CROSS, HEADER

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium'; "
    ".ci/run installs it)")

PROBE = ('<script>window.addEventListener("load",()=>{const im=[...document.images];'
         'const ok=im.filter(i=>i.complete&&i.naturalWidth>0).length;'
         'document.body.setAttribute("data-images",ok+"/"+im.length);});</script>')


def _render(page: Path) -> tuple[str, list[str]]:
    """(images "loaded/total", console lines) of ``page`` in headless Chromium."""
    probe = page.with_name(page.stem + ".probe.html")
    text = page.read_text(encoding="utf-8")
    assert text.count("</body>") == 1
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        # Flags: no sandbox (CI runs as root), and no background networking:
        # this machine's closed network refuses Chromium's own connections.
        proc = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
             "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    m = re.search(r'data-images="(\d+/\d+)"', proc.stdout)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return (m.group(1) if m else "no load event"), console


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,iVBORw0KGgo'
                   'AAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ'
                   'RU5ErkJggg=="><img src="missing.png"><script>console.error("boom")'
                   '</script></body></html>', encoding="utf-8")
    images, console = _render(bad)
    assert images == "1/2"
    assert any("boom" in line for line in console)


def test_report_renders_with_every_plot_and_no_console_message(tmp_path: Path,
                                                                tiny_relief_toml: Path
                                                                ) -> None:
    scen = tiny_relief_toml
    out = tmp_path / "ev"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main(["evaluate", str(scen), "--replications", "2", "--workers", "2",
                         "--train-days", "2", "--candidates", "2", "--out", str(out)])
    assert code == 0, err.getvalue()
    images, console = _render(out / "report.html")
    assert images == f"{len(FIGURES)}/{len(FIGURES)}"
    assert console == []


def test_estimate_report_renders_with_its_figure_and_tables(tmp_path: Path) -> None:
    """The estimate's report, from templates, renders in Chromium: its figure, no console."""
    csv = tmp_path / "j.csv"
    csv.write_text(f"{HEADER}\n{CROSS}\n", encoding="utf-8")
    out = tmp_path / "est"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["estimate", str(csv), "--replications", "2", "--train-days", "1",
                         "--candidates", "2", "--no-oracle", "--out", str(out)])
    assert code == 0
    page = out / "estimate.html"
    assert "<h2>Caveats</h2>" in page.read_text(encoding="utf-8")
    images, console = _render(page)
    assert images == "1/1"
    assert console == []
