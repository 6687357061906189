"""Thresholds from the historical speed distribution alone: no simulation.

For users without a calibrated scenario (only the geometry of the monitored
stretches and the programs), the GPS controller's thresholds can come from
the probe history itself:

1. **Window speeds.** Per stretch, the mean probe speed of every
   (day, :data:`~gpssignal.control.training.BIN_S`-wide bin) of the history
   with at least the model's ``min_points`` points: the same quantity the
   controller thresholds at run time, over a window of the same length.
2. **Two traffic states.** These speeds are fitted with a mixture of two
   normal distributions by expectation-maximisation: a congested component
   (the lower mean) and a free-flowing one, as Elhenawy, Chen and Rakha do
   with historical probe speeds (docs/references.md#congestion-mixture).
3. **Is there a congested state?** The two components count as distinct
   when Ashman's D = √2 |μ₁ − μ₂| / √(σ₁² + σ₂²) exceeds
   :data:`MIN_ASHMAN_D` (a clean separation of two normals,
   docs/references.md#congestion-mixture), the congested one holds at
   least :data:`MIN_CONGESTED_WEIGHT` of the windows, and its mean is below
   :data:`MAX_CONGESTED_FRACTION` of the measured free-flow speed (two
   clusters of free-flowing windows are not congestion).
4. **Thresholds.** ``threshold_low`` is the speed at which a window is as
   likely congested as free-flowing (equal posterior, the cut-off that
   minimises the Bayes classification error); ``threshold_high`` the speed
   above which a window is congested with probability at most
   :data:`HIGH_POSTERIOR` (an assumption: switch back only when fairly
   sure the congestion is over), capped at the measured free-flow speed.
5. **Dwell.** The median duration of the history's low-speed episodes
   (windows below ``threshold_low`` until a window above
   ``threshold_high``), clipped to :data:`DWELL_RANGE_S`: how long low speeds
   persist. Without an episode, the model's default dwell.

Without a distinct congested state, the history shows no breakdown to learn
from: ``threshold_low`` is then the slowest window seen (the controller
switches only on a day slower than any in the history) and
``threshold_high`` the median window; a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpssignal.control.gps import GpsModel
from gpssignal.control.training import BIN_S, TrainingData, measured_model

__all__ = [
    "DWELL_RANGE_S",
    "HIGH_POSTERIOR",
    "MAX_CONGESTED_FRACTION",
    "MIN_ASHMAN_D",
    "MIN_CONGESTED_WEIGHT",
    "Mixture",
    "data_driven_model",
    "episode_durations_s",
    "fit_two_normals",
    "posterior_speed_kmh",
]

#: Ashman's D above which two normal components are distinct (Ashman, Bird &
#: Zepf 1994: D > 2 for a clean separation) [-].
MIN_ASHMAN_D = 2.0
#: Smallest share of windows the congested component must hold [-]. ASSUMED:
#: below 5 % of the history's windows a "state" is a handful of outliers.
MIN_CONGESTED_WEIGHT = 0.05
#: The congested component's mean must lie below this share of the measured
#: free-flow speed [-]. ASSUMED: a state at least 25 % slower than free flow.
MAX_CONGESTED_FRACTION = 0.75
#: Posterior probability of congestion at the high (switch-back) threshold [-].
#: ASSUMED: back only when a window is at most 10 % likely congested.
HIGH_POSTERIOR = 0.10
#: Range of the data-driven dwell [s]: the search's dwell choices
#: (control.training.SEARCH_SPACE).
DWELL_RANGE_S = (300.0, 900.0)
#: Smallest standard deviation of a component [km/h]: keeps EM away from a
#: degenerate component on repeated values (below the GPS speed noise).
_MIN_SD_KMH = 0.5
_EM_ITERATIONS = 500
_EM_TOLERANCE = 1e-10


@dataclass(frozen=True, slots=True)
class Mixture:
    """Two normal components, the congested (lower mean) one first.

    ``weight``, ``mean_kmh``, ``sd_kmh`` are pairs; ``ashman_d`` the
    separation [-]; ``n`` the number of windows fitted.
    """

    weight: tuple[float, float]
    mean_kmh: tuple[float, float]
    sd_kmh: tuple[float, float]
    ashman_d: float
    n: int

    def distinct(self, free_flow_kmh: float) -> bool:
        """Whether the history holds a distinct congested state (see the module)."""
        return (self.ashman_d > MIN_ASHMAN_D and self.weight[0] >= MIN_CONGESTED_WEIGHT
                and self.mean_kmh[0] < MAX_CONGESTED_FRACTION * free_flow_kmh)

    def posterior_congested(self, v_kmh: np.ndarray | float) -> np.ndarray:
        """P(congested | window speed ``v_kmh``) [-]."""
        v = np.asarray(v_kmh, dtype=float)
        dens = [w / s * np.exp(-0.5 * ((v - m) / s) ** 2)
                for w, m, s in zip(self.weight, self.mean_kmh, self.sd_kmh, strict=True)]
        total = dens[0] + dens[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, dens[0] / total, (v < np.mean(self.mean_kmh)) * 1.0)


def fit_two_normals(x_kmh: np.ndarray) -> Mixture:
    """Fit two normals to window speeds by expectation-maximisation.

    Deterministic: the components start at the lower and upper quartiles with
    half the sample's spread each. Needs at least 4 finite values.

    Raises
    ------
    ValueError
        With fewer than 4 values.
    """
    x = np.asarray(x_kmh, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 4:
        raise ValueError(f"window speeds: {len(x)} values, need at least 4")
    mu = np.quantile(x, [0.25, 0.75]).astype(float)
    sd = np.full(2, max(float(np.std(x)) / 2, _MIN_SD_KMH))
    w = np.array([0.5, 0.5])
    last = -np.inf
    for _ in range(_EM_ITERATIONS):
        dens = w / sd * np.exp(-0.5 * ((x[:, None] - mu) / sd) ** 2) / np.sqrt(2 * np.pi)
        total = dens.sum(axis=1, keepdims=True)
        total[total == 0] = 1e-300
        r = dens / total
        loglik = float(np.log(total).sum())
        nk = r.sum(axis=0)
        if (nk == 0).any():
            break
        w = nk / len(x)
        mu = (r * x[:, None]).sum(axis=0) / nk
        sd = np.maximum(np.sqrt((r * (x[:, None] - mu) ** 2).sum(axis=0) / nk), _MIN_SD_KMH)
        if abs(loglik - last) < _EM_TOLERANCE * max(1.0, abs(loglik)):
            break
        last = loglik
    order = np.argsort(mu)
    w, mu, sd = w[order], mu[order], sd[order]
    d = float(np.sqrt(2) * abs(mu[1] - mu[0]) / np.sqrt(sd[0] ** 2 + sd[1] ** 2))
    return Mixture(weight=(float(w[0]), float(w[1])), mean_kmh=(float(mu[0]), float(mu[1])),
                   sd_kmh=(float(sd[0]), float(sd[1])), ashman_d=d, n=len(x))


def posterior_speed_kmh(mix: Mixture, p: float) -> float:
    """Return the speed between the two means at which P(congested) = ``p`` [km/h].

    Found by bisection; the posterior falls from the congested mean to the
    free-flowing one for distinct components. Returns the nearer mean if
    ``p`` is not reached between them.
    """
    lo, hi = mix.mean_kmh
    f_lo, f_hi = float(mix.posterior_congested(lo)), float(mix.posterior_congested(hi))
    if f_lo <= p:
        return lo
    if f_hi >= p:
        return hi
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(mix.posterior_congested(mid)) > p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def episode_durations_s(speeds_kmh: np.ndarray, low_kmh: float, high_kmh: float,
                        bin_s: float = BIN_S) -> list[float]:
    """Durations of low-speed episodes in each row of bin speeds [s].

    An episode starts at a bin below ``low_kmh`` and ends at the first later
    bin above ``high_kmh`` (NaN bins, without enough points, continue the
    state); one still open at the end of a row counts to the row's end.
    """
    out = []
    for row in np.atleast_2d(speeds_kmh):
        start = None
        for k, v in enumerate(row):
            if start is None and v < low_kmh:
                start = k
            elif start is not None and v > high_kmh:
                out.append((k - start) * bin_s)
                start = None
        if start is not None:
            out.append((len(row) - start) * bin_s)
    return out


def data_driven_model(scenario: Any, data: TrainingData,
                      base_params: dict[str, Any] | None = None
                      ) -> tuple[GpsModel, dict[str, Any], list[str]]:
    """Set every stretch's thresholds, the window and the dwell from ``data`` alone.

    Returns the model (free-flow speeds and profiles as measured, see
    :func:`~gpssignal.control.training.measured_model`), the rule's record
    per stretch for the provenance, and notes for the reader.
    """
    model = measured_model(scenario, data, base_params)
    min_points = model.min_points
    with np.errstate(invalid="ignore", divide="ignore"):
        speeds = np.where(data.bin_count >= min_points, data.bin_sum / data.bin_count, np.nan)
    stretches = []
    record: dict[str, Any] = {}
    notes: list[str] = []
    dwells: list[float] = []
    for k, st in enumerate(model.stretches):
        v = speeds[:, k, :]
        x = v[np.isfinite(v)]
        if len(x) < 4:
            notes.append(f"stretch {st.id}: only {len(x)} windows with >= {min_points} points; "
                         "thresholds left at the untrained model's")
            stretches.append(st)
            record[st.id] = {"windows": int(len(x))}
            continue
        mix = fit_two_normals(x)
        distinct = mix.distinct(st.free_flow_kmh)
        if distinct:
            low = posterior_speed_kmh(mix, 0.5)
            high = posterior_speed_kmh(mix, HIGH_POSTERIOR)
            how = "equal posterior (low), P(congested) = 0.1 (high)"
        else:
            low, high = float(np.min(x)), float(np.median(x))
            how = "no distinct congested state: slowest window seen (low), median (high)"
            notes.append(f"stretch {st.id}: no distinct congested state in the history "
                         f"(Ashman's D = {mix.ashman_d:.2f}, slower component "
                         f"{mix.mean_kmh[0]:.1f} km/h, share {mix.weight[0]:.2f}): switches "
                         f"only below the slowest window seen, {low:.1f} km/h")
        if high > st.free_flow_kmh:
            notes.append(f"stretch {st.id}: high threshold {high:.1f} km/h capped at the "
                         f"measured free-flow speed {st.free_flow_kmh:.1f} km/h")
            high = max(st.free_flow_kmh, low)
        dwells += episode_durations_s(v, low, high, data.bin_s)
        stretches.append(replace(st, threshold_low_kmh=round(low, 2),
                                 threshold_high_kmh=round(max(high, low), 2)))
        record[st.id] = {"windows": mix.n, "weight": list(mix.weight),
                         "mean_kmh": list(mix.mean_kmh), "sd_kmh": list(mix.sd_kmh),
                         "ashman_d": mix.ashman_d, "distinct": distinct, "rule": how}
    if dwells:
        dwell = float(np.clip(np.median(dwells), *DWELL_RANGE_S))
    else:
        dwell = model.min_dwell_s
        notes.append(f"no low-speed episode in the history: dwell left at {dwell:g} s")
    rule = {"window_s": data.bin_s, "min_dwell_s": dwell, "episodes": len(dwells),
            "median_episode_s": float(np.median(dwells)) if dwells else None,
            "stretches": record, "min_ashman_d": MIN_ASHMAN_D,
            "min_congested_weight": MIN_CONGESTED_WEIGHT,
            "max_congested_fraction": MAX_CONGESTED_FRACTION, "high_posterior": HIGH_POSTERIOR,
            "dwell_range_s": list(DWELL_RANGE_S)}
    return (replace(model, stretches=stretches, window_s=data.bin_s, min_dwell_s=dwell),
            rule, notes)
