"""The hindsight bound of plan selection: the best plan of a day, found after the fact.

Plan selection can do no better than running, on each day, the schedule of
programs that suits that day's traffic best. Nobody knows that schedule in
advance; here it is searched for by simulating the day itself (same seed,
same vehicles) under candidate schedules. The result is the benchmark a
plan-selecting controller is measured against: the **capture ratio**
(existing − controller) ÷ (existing − oracle) says how much of what plan
selection could give the controller gets.

The search (documented in docs/evaluation.md):

* a schedule gives one program per slot over the demand period: slots of
  ``slot_s`` (default: the demand interval, 15 min), split further at the
  clock plan's change times so that the existing plan is one of the
  schedules; after the period the last slot's program runs on. Every
  junction runs the slot's program (the programs every junction has,
  :attr:`Scenario.program_names`). A change
  takes effect at the junctions' next synchronisation point, through the
  same checked transitions as any controller, so the bound never cuts a
  minimum green or an intergreen;
* start: every program fixed all period and the clock plan (when there is
  one); the best of these is the incumbent;
* coordinate descent: for each slot in time order, try every other program
  in that slot with the rest of the incumbent unchanged; keep a change when
  the day's total time loss (veh·h, docs/definitions.md) falls. Repeat for
  ``passes`` passes or until a pass changes nothing.

The result is the best schedule *found*, not a proven optimum: it is never
worse than any fixed program or the clock plan on that day (they are its
starting points), but an exhaustive search over all ``P**K`` schedules could
find a better one. A controller may therefore beat it on some days (by
switching between slot boundaries, for example); the report shows that
rather than hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpssignal.evaluate.metrics import replication_kpis, run_tables
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one
from gpssignal.model.scenario import Scenario
from gpssignal.sim.engine import SimResult

__all__ = ["ORACLE", "OracleResult", "plan_entries", "search_plan", "slot_starts"]

#: The hindsight bound's name in outputs.
ORACLE = "oracle"
#: The quantity the search minimises (a KPI of evaluate.metrics.EVAL_KPIS).
OBJECTIVE = "total_time_loss_veh_h"


@dataclass(frozen=True, slots=True)
class OracleResult:
    """The best schedule found for one day.

    ``slots`` holds one program per slot, ``starts_s`` each slot's start
    [s after simulation start]; ``objective`` the schedule's total time loss
    [veh·h]; ``simulations`` how many days were simulated to find it;
    ``result`` the simulation of the best schedule.
    """

    slots: tuple[str, ...]
    starts_s: tuple[float, ...]
    objective: float
    simulations: int
    result: SimResult

    def entries(self, scenario: Scenario) -> tuple[tuple[float, str], ...]:
        """Return the schedule as clock-time entries (for a ``plan`` controller)."""
        return plan_entries(scenario, self.slots, self.starts_s)


def slot_starts(scenario: Scenario, slot_s: float | None = None) -> tuple[float, ...]:
    """Return the slot starts [s after simulation start].

    A slot starts every ``slot_s`` and at every change of the scenario's clock
    plan inside the period.
    """
    slot = float(slot_s or scenario.demand.interval_s)
    n = max(1, int(round(scenario.duration_s / slot)))
    edges = {k * slot for k in range(n)}
    edges |= {e.at_clock_s - scenario.start_clock_s for e in scenario.schedule
              if 0 < e.at_clock_s - scenario.start_clock_s < scenario.duration_s}
    return tuple(sorted(edges))


def plan_entries(scenario: Scenario, slots: tuple[str, ...], starts_s: tuple[float, ...]
                 ) -> tuple[tuple[float, str], ...]:
    """Return a slot schedule as clock-time entries, merging equal neighbours."""
    out: list[tuple[float, str]] = []
    for start, program in zip(starts_s, slots, strict=True):
        if not out or out[-1][1] != program:
            out.append((scenario.start_clock_s + start, program))
    return tuple(out)


def _slots_of_plan(scenario: Scenario, starts_s: tuple[float, ...]) -> tuple[str, ...]:
    """Return the scenario's clock plan at each slot's start (exact: slots split at its changes)."""
    from gpssignal.control.fixed import TimeOfDayController

    tod = TimeOfDayController(scenario)
    first = scenario.junctions[0].id
    return tuple(tod.requested_program(first, scenario.start_clock_s + t) for t in starts_s)


def search_plan(scenario: Scenario, seed: int, slot_s: float | None = None,
                passes: int = 1, day_type: str | None = None) -> OracleResult:
    """Find the best slot schedule of programs for the day ``seed`` by simulation.

    Parameters
    ----------
    scenario : Scenario
    seed : int
        The day.
    slot_s : float, optional
        Slot length [s]; default the demand interval.
    passes : int
        Coordinate-descent passes over the slots (>= 0; 0 keeps the best
        starting point).
    day_type : str, optional
        Run the day as this type of the scenario's mix (as :class:`RunSpec`).
    """
    starts = slot_starts(scenario, slot_s)
    n = len(starts)
    programs = scenario.program_names
    cache: dict[tuple[str, ...], tuple[float, SimResult]] = {}

    def cost(slots: tuple[str, ...]) -> float:
        if slots not in cache:
            spec = ControllerSpec(kind="plan", plan=plan_entries(scenario, slots, starts),
                                  name=ORACLE)
            result = run_one(RunSpec(scenario=scenario, controller=spec, seed=seed,
                                     day_type=day_type)).result
            cache[slots] = (replication_kpis(result, run_tables(result, routes=False))[OBJECTIVE],
                            result)
        return cache[slots][0]

    initial = [tuple([p] * n) for p in programs]
    if scenario.schedule:
        initial.append(_slots_of_plan(scenario, starts))
    best = min(initial, key=cost)
    for _ in range(passes):
        changed = False
        for k in range(n):
            for p in programs:
                if p == best[k]:
                    continue
                trial = (*best[:k], p, *best[k + 1:])
                if cost(trial) < cost(best):
                    best, changed = trial, True
        if not changed:
            break
    return OracleResult(slots=best, starts_s=starts, objective=cache[best][0],
                        simulations=len(cache), result=cache[best][1])
