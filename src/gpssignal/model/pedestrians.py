"""Pedestrian crossings at signalised junctions, and the rules their greens obey.

A :class:`Crossing` is a signalised pedestrian crossing over one arm of a
junction, controlled by one of the junction's signal groups (a pedestrian
group). Pedestrians arrive at it at a 15-min profile of rates (both
directions together) and may start crossing while their group is green.

A pedestrian green plus the intergreen after it must let a slow walker who
starts just after green begins cross (or reach the refuge island):
:meth:`PedestrianSettings.walk_and_clear_s` (docs/references.md#pedestrian-timing). Vehicle
movements that leave the junction across a crossing whose group does not
conflict with theirs yield to the pedestrians on it; vehicles entering from
the crossing's arm must conflict with its group (they cross it at the stop
line). Both are checked with the whole scenario (:mod:`gpssignal.model.network`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpssignal.model.checks import check_non_negative, check_positive, fail

__all__ = ["MAX_CROSSING_M", "Crossing", "PedestrianSettings"]

#: Longest crossing accepted [m]: a crossing over eight lanes and islands is
#: about 40 m; anything longer is a typing error.
MAX_CROSSING_M = 100.0
#: Highest pedestrian flow accepted per crossing [ped/h]: a busy city-centre
#: crossing carries a few thousand an hour.
MAX_PED_FLOW_PH = 20_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Crossing:
    """A signalised pedestrian crossing over arm ``arm`` of its junction.

    Parameters
    ----------
    arm : str
        The arm it crosses (an arm id of the junction).
    group : str
        The signal group of the pedestrians (a group of the junction that no
        lane uses).
    length_m : float
        Kerb-to-kerb length [m] (islands included: pedestrians cross in one go).
    flow_pph : tuple[float, ...]
        Pedestrians arriving per hour, both directions together, one rate per
        demand interval [ped/h].
    pushbutton : bool
        ``True``: the group shows green only in cycles in which a pedestrian
        has pushed the button before its green starts (otherwise it stays red
        and pedestrians arriving in that green wait for the next one);
        ``False``: green every cycle (recall).
    island : bool
        A refuge island splits the crossing into two equal parts under the
        same group; the timing rule applies to a part, and a pedestrian who
        reaches the island after green has ended waits there for the next.
    """

    arm: str
    group: str
    length_m: float
    flow_pph: tuple[float, ...]
    pushbutton: bool = False
    island: bool = False

    @property
    def part_length_m(self) -> float:
        """Length the timing rule applies to: the whole crossing, or half with an island [m]."""
        return self.length_m / 2 if self.island else self.length_m

    def check(self, where: str) -> None:
        """Raise :class:`~gpssignal.errors.ScenarioError` naming the first bad field."""
        check_positive(f"{where}.length_m", self.length_m)
        if self.length_m > MAX_CROSSING_M:
            fail(f"{where}.length_m", self.length_m, f"must be <= {MAX_CROSSING_M:g} m")
        if not self.flow_pph:
            fail(f"{where}.flow_pph", [], "needs at least one interval")
        for k, q in enumerate(self.flow_pph):
            check_non_negative(f"{where}.flow_pph[{k}]", q)
            if q > MAX_PED_FLOW_PH:
                fail(f"{where}.flow_pph[{k}]", q, f"must be <= {MAX_PED_FLOW_PH:g} ped/h")
        for f in ("pushbutton", "island"):
            if not isinstance(getattr(self, f), bool):
                fail(f"{where}.{f}", getattr(self, f), "must be true or false")


@dataclass(frozen=True, slots=True, kw_only=True)
class PedestrianSettings:
    """How pedestrians walk, and the Danish rule their greens must meet.

    The rule (Bekendtgørelse om anvendelse af vejafmærkning §238 stk. 4,
    docs/references.md#pedestrian-timing): the pedestrian green plus the
    intergreen to the conflicting vehicle groups must let a pedestrian who
    steps off the kerb ``start_up_s`` after green begins, walking at
    ``design_speed_mps``, reach the far kerb, or the refuge island of a
    crossing split by one.

    Parameters
    ----------
    walking_speed_mps : float
        Mean walking speed of the simulated pedestrians [m/s]: how long each
        occupies the crossing (and holds up turning vehicles).
    design_speed_mps : float
        Walking speed of the rule [m/s].
    start_up_s : float
        Time after green begins at which the rule's pedestrian steps off [s].
    """

    walking_speed_mps: float = 1.39
    design_speed_mps: float = 1.0
    start_up_s: float = 2.0

    def __post_init__(self) -> None:
        """Check the fields; raise :class:`ScenarioError` naming the first bad one."""
        for f in ("walking_speed_mps", "design_speed_mps"):
            check_positive(f"pedestrians.{f}", getattr(self, f))
            if getattr(self, f) > 3.0:
                fail(f"pedestrians.{f}", getattr(self, f), "must be <= 3 m/s (a walk)")
        check_non_negative("pedestrians.start_up_s", self.start_up_s)
        if self.start_up_s > 10:
            fail("pedestrians.start_up_s", self.start_up_s, "must be <= 10 s")

    def walk_and_clear_s(self, crossing: Crossing) -> float:
        """Least green + intergreen for ``crossing`` [s]: start-up + part length / design speed."""
        return self.start_up_s + crossing.part_length_m / self.design_speed_mps
