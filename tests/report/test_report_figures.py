"""The report's figures drawn early and from the showcase's kept rows.

``evaluate`` with workers draws the showcase figures while the other runs go
on (:class:`gpssignal.report.document.EarlyFigures`), and a showcase keeps
only the trajectory rows those figures draw. Both must leave every file of
the report byte for byte as it was.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import time

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.experiment import evaluation as evaluation_module
from gpssignal.experiment.evaluation import Evaluation, StopRule, evaluate_controllers
from gpssignal.experiment.parallel import LocalBackend
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.scenario import Scenario
from gpssignal.report import document as document_module
from gpssignal.report import plots as plots_module
from gpssignal.report.document import EarlyFigures, build_report
from gpssignal.report.plots import FIGURES, SHOWCASE_FIGURES

SEEDS = [3, 4]


@pytest.fixture(scope="module")
def early(tiny_relief: Scenario) -> tuple[Evaluation, list[Evaluation], list[Evaluation]]:
    # Every program fixed: the best one is selected on two more days, which
    # run after the evaluation days.
    got: list[Evaluation] = []
    days: list[Evaluation] = []
    ev = evaluate_controllers(tiny_relief, ["fixed:normal", "fixed:peak", "tod"], SEEDS,
                              backend=LocalBackend(2), on_showcase=got.append,
                              on_days=days.append)
    return ev, got, days


def test_the_showcase_callback_comes_once_with_each_arms_showcase_day(early) -> None:
    ev, got, _ = early
    assert len(got) == 1
    part = got[0]
    assert part.controllers == ev.controllers and part.seeds == ev.seeds
    assert [(r.controller, r.seed) for r in part.replications] == \
        [(c, SEEDS[0]) for c in ev.controllers]
    for c in ev.controllers:
        mine, final = part.showcase(c), ev.showcase(c)
        assert mine is not None and final is not None
        assert_frame_equal(mine.trajectories, final.trajectories)


def test_the_days_callback_comes_once_with_every_day_before_the_selection(early) -> None:
    ev, _, days = early
    assert len(days) == 1
    assert days[0].best_fixed is None and ev.best_fixed is not None   # selected afterwards
    assert [(r.controller, r.seed) for r in days[0].replications] == \
        [(r.controller, r.seed) for r in ev.replications]
    assert days[0].replications == ev.replications


def test_with_until_ci_the_callbacks_see_only_the_first_days(tiny_relief: Scenario) -> None:
    # --until-ci adds days in later batches: the callbacks still come once,
    # with the days asked for.
    calls: list[tuple[str, list[int]]] = []
    rule = StopRule(kpi="mean_time_loss_s", half_width=1e-9, max_days=4,
                    controller="fixed:normal")
    ev = evaluate_controllers(
        tiny_relief, ["fixed:normal", "tod"], [1, 2], until_ci=rule,
        on_showcase=lambda e: calls.append(("showcase", [r.seed for r in e.replications])),
        on_days=lambda e: calls.append(("days", [r.seed for r in e.replications])))
    assert ev.seeds == [1, 2, 3, 4]   # the rule added days
    assert calls == [("showcase", [1, 1]), ("days", [1, 1, 2, 2])]


def test_figures_drawn_early_are_the_figures_drawn_at_the_end(early) -> None:
    ev, got, days = early
    figures = EarlyFigures()
    assert figures.result() == {}   # never started: nothing drawn
    figures.start_showcase(got[0])
    assert set(figures.result()) == set(SHOWCASE_FIGURES)
    figures.start_rest(days[0])     # the others, in a forked process
    assert set(figures.result()) == {name for name, _, _ in FIGURES}
    assert build_report(ev, figures.result) == build_report(ev)
    rest = EarlyFigures()           # never started with the showcase: every figure forked
    rest.start_rest(ev)
    assert build_report(ev, rest.result()) == build_report(ev)


_PARENT = os.getpid()
_DRAW = document_module._draw


def _dying(e: Evaluation, names: tuple[str, ...]) -> dict[str, bytes]:
    """Draw as usual here; die in the forked process (killed, say)."""
    if os.getpid() != _PARENT:
        os._exit(1)
    return _DRAW(e, names)


def test_a_figure_process_that_dies_leaves_its_figures_to_build_report(
        early, monkeypatch: pytest.MonkeyPatch) -> None:
    ev, _, days = early
    monkeypatch.setattr(document_module, "_draw", _dying)
    figures = EarlyFigures()
    figures.start_rest(days[0])
    assert figures.result() == {}
    monkeypatch.undo()
    assert build_report(ev, figures.result) == build_report(ev)


#: The child sleeps this long [s]: far beyond the lowered limit, as if hung.
_HUNG_S = 600.0


def _hanging(e: Evaluation, names: tuple[str, ...]) -> dict[str, bytes]:
    """Draw as usual here; hang in the forked process (a lock copied locked, say)."""
    if os.getpid() != _PARENT:
        time.sleep(_HUNG_S)
    return _DRAW(e, names)


def test_a_figure_process_that_hangs_is_killed_and_leaves_its_figures_to_build_report(
        early, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ev, _, days = early
    limit_s = 1.0
    monkeypatch.setattr(document_module, "_draw", _hanging)
    monkeypatch.setattr(document_module, "FIGURE_PROCESS_WAIT_S", limit_s)
    figures = EarlyFigures()
    figures.start_rest(days[0])
    forked = [p for p in mp.active_children() if p.name == "gpssignal-figures"]
    assert len(forked) == 1
    pid = forked[0].pid
    assert pid is not None
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=document_module.__name__):
        assert figures.result() == {}   # nothing from the child
    waited_s = time.monotonic() - t0
    # It waited the limit (poll timeouts are rounded up, never down: 0.05 s
    # for the clocks' granularity), then killed and reaped the child, which
    # takes milliseconds: 4 s more is slack for a loaded 2-core machine, and
    # still far below the child's sleep.
    assert limit_s - 0.05 <= waited_s < limit_s + 4.0
    assert "sent nothing within 1 s and was stopped" in caplog.text
    with pytest.raises(ProcessLookupError):   # gone and reaped: even a zombie takes signal 0
        os.kill(pid, 0)
    assert forked[0] not in mp.active_children()
    monkeypatch.undo()
    assert build_report(ev, figures.result) == build_report(ev)


def _narrow(sc: Scenario) -> tuple[float, float]:
    """A 3-min window in the middle of the period: many vehicles reach the
    approach after it, so their first rows are kept outside the window."""
    return sc.duration_s / 2 - 90.0, sc.duration_s / 2 + 90.0


@pytest.mark.parametrize("window", [None, _narrow])
def test_showcase_figures_from_the_kept_rows_equal_those_from_whole_trajectories(
        early, tiny_relief: Scenario, monkeypatch: pytest.MonkeyPatch, window) -> None:
    ev, _, _ = early
    results = {c: run_one(RunSpec(scenario=tiny_relief, controller=ControllerSpec.parse(c),
                                  seed=SEEDS[0], record_trajectories=True)).result
               for c in ev.controllers}

    def with_showcases(bounds) -> Evaluation:
        with monkeypatch.context() as m:
            if bounds is not None:
                m.setattr(evaluation_module, "showcase_window", bounds)
            shows = {c: evaluation_module._showcase(r) for c, r in results.items()}
        return dataclasses.replace(ev, replications=[
            dataclasses.replace(r, showcase=shows[r.controller]) if r.showcase is not None
            else r for r in ev.replications])

    kept = with_showcases(window)
    # The whole day's rows on the stretch, as a showcase kept them before it
    # kept only the figures' rows: an unbounded window keeps every row.
    whole = with_showcases(lambda sc: (-np.inf, np.inf))
    sizes = [sum(len(s.trajectories) for c in ev.controllers if (s := e.showcase(c)))
             for e in (kept, whole)]
    assert sizes[0] < sizes[1]   # something was left out
    if window is not None:
        monkeypatch.setattr(plots_module, "showcase_window", window)
        t0, t1 = window(tiny_relief)
        outside = sum(int(((s.trajectories["t_s"] < t0) | (s.trajectories["t_s"] > t1)).sum())
                      for c in ev.controllers if (s := kept.showcase(c)))
        assert outside > 0   # first rows on the approach kept outside the window
    for name, _, draw in FIGURES:
        if name in SHOWCASE_FIGURES:
            assert draw(kept) == draw(whole), name
