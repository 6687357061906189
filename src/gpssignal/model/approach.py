"""What happens on an approach besides car following: give-way rules and platoon feeds.

* :class:`GiveWay`: vehicles of one movement of a link yield, while both have
  green, to named movements of other links into the same junction (a
  permissive left turn yields to the opposing through and right traffic).
  Gap acceptance with a critical gap and a follow-up time
  (docs/references.md#permitted-left-turn).
* :class:`UpstreamSignal`: an entry link is fed through a signal just
  upstream of the modelled network, so its vehicles arrive in platoons that
  disperse on the way (Robertson's model, docs/references.md#platoon-dispersion).

Both validate themselves; references to other links are checked with the
whole network (:func:`gpssignal.model.network.validate_network`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpssignal.model.checks import MOVEMENTS, check_non_negative, check_positive, fail, is_number

__all__ = ["GiveWay", "UpstreamSignal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveWay:
    """Vehicles of ``movement`` on the link yield to the movements ``to``.

    Parameters
    ----------
    movement : str
        The yielding movement of this link (``left``, ``through`` or ``right``).
    to : tuple[str, ...]
        The movements it yields to, as ``"LINK.MOVEMENT"`` of links into the
        same junction (e.g. ``"torvevej_n_in.through"``).
    critical_gap_s, follow_up_s : float or None
        The smallest time gap to the next opposing vehicle a driver accepts,
        and the least time between two yielding vehicles of one lane using
        gaps [s]; ``None``: the scenario's ``[driver]`` defaults.
    """

    movement: str
    to: tuple[str, ...]
    critical_gap_s: float | None = None
    follow_up_s: float | None = None

    def check(self, where: str) -> None:
        """Raise :class:`ScenarioError` naming the first bad field under ``where``."""
        if self.movement not in MOVEMENTS:
            fail(f"{where}.movement", self.movement, f"must be one of {MOVEMENTS}")
        if not self.to:
            fail(f"{where}.to", list(self.to), "name at least one 'LINK.MOVEMENT' to yield to")
        for ref in self.to:
            if not isinstance(ref, str) or ref.count(".") != 1 or \
                    ref.split(".")[1] not in MOVEMENTS:
                fail(f"{where}.to", ref, "must be 'LINK.MOVEMENT' with a movement of "
                     f"{MOVEMENTS}")
        for f in ("critical_gap_s", "follow_up_s"):
            value = getattr(self, f)
            if value is not None:
                check_positive(f"{where}.{f}", value)
                if value > _MAX_GAP_S:
                    fail(f"{where}.{f}", value, f"must be <= {_MAX_GAP_S:g} s")


#: Longest critical gap or follow-up time accepted [s]; published values are
#: 2-8 s (docs/references.md#permitted-left-turn).
_MAX_GAP_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSignal:
    """A fixed-time signal upstream of an entry link that makes its arrivals platoons.

    Vehicles reach the upstream stop line at the entry's demand rates; they
    leave it during its green, queued ones at ``saturation_flow_vph`` per
    lane of the entry link, and reach the entry link after the travel time
    over ``distance_m`` dispersed as Robertson's platoon-dispersion model
    states (docs/references.md#platoon-dispersion).

    Parameters
    ----------
    cycle_s, green_s, offset_s : float
        The upstream signal's cycle, effective green and the cycle second
        (of the clock, as program offsets) its green starts [s].
    distance_m : float
        From the upstream stop line to the start of the entry link [m].
    saturation_flow_vph : float
        Discharge rate of a queue at the upstream signal, per lane [veh/h].
    alpha, beta : float
        Robertson's dispersion factor and travel-time factor [-]
        (TRANSYT defaults 0.35 and 0.8 for 1-s steps).
    """

    cycle_s: float
    green_s: float
    offset_s: float = 0.0
    distance_m: float
    saturation_flow_vph: float = 1800.0
    alpha: float = 0.35
    beta: float = 0.8

    def check(self, where: str) -> None:
        """Raise :class:`ScenarioError` naming the first bad field under ``where``."""
        check_positive(f"{where}.cycle_s", self.cycle_s)
        if self.cycle_s > _MAX_CYCLE_S:
            fail(f"{where}.cycle_s", self.cycle_s, f"must be <= {_MAX_CYCLE_S:g} s")
        check_positive(f"{where}.green_s", self.green_s)
        if self.green_s > self.cycle_s:
            fail(f"{where}.green_s", self.green_s, f"must be <= cycle_s = {self.cycle_s:g}")
        if not (is_number(self.offset_s) and 0 <= self.offset_s < self.cycle_s):
            fail(f"{where}.offset_s", self.offset_s, f"must be in [0, cycle_s={self.cycle_s:g})")
        check_non_negative(f"{where}.distance_m", self.distance_m)
        if self.distance_m > _MAX_DISTANCE_M:
            fail(f"{where}.distance_m", self.distance_m, f"must be <= {_MAX_DISTANCE_M:g} m")
        check_positive(f"{where}.saturation_flow_vph", self.saturation_flow_vph)
        if self.saturation_flow_vph > _MAX_SATURATION_VPH:
            fail(f"{where}.saturation_flow_vph", self.saturation_flow_vph,
                 f"must be <= {_MAX_SATURATION_VPH:g} veh/h per lane")
        check_non_negative(f"{where}.alpha", self.alpha)
        if self.alpha > 1:
            fail(f"{where}.alpha", self.alpha, "must be in [0, 1]")
        if not (is_number(self.beta) and 0 < self.beta <= 1):
            fail(f"{where}.beta", self.beta, "must be in (0, 1]")


#: Bounds on an upstream signal: a cycle longer than 5 min, a feed further
#: than 5 km or a lane discharging more than one vehicle a second are not a
#: signal upstream of an arterial approach.
_MAX_CYCLE_S = 300.0
_MAX_DISTANCE_M = 5000.0
_MAX_SATURATION_VPH = 3600.0
