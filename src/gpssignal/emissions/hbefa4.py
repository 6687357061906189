"""HBEFA4 tailpipe CO₂ and fuel per vehicle and time step (docs/references.md#hbefa4-model).

The model is Eclipse SUMO's HBEFA4 closed form (``HelpersHBEFA4``), with the
coefficients transcribed in ``data/hbefa4_sumo.csv`` (source and commit in its
header)::

    E [mg/s] = f0 + f1 v + f2 a + f3 v² + f4 v³ + f5 a v + f6 a v²      v [m/s], a [m/s²]

Rules, as in SUMO unless stated:

* E = 0 while the vehicle is moving (v > 0.5 m/s, SUMO's
  ``ZERO_SPEED_ACCURACY``) and decelerating harder than its *coasting
  deceleration* (engine drag without fuel; ``PollutantsInterface::Helper::
  getCoastingDecel``). That deceleration depends on the vehicle's mass and
  frontal area (π/4 · width · height), fitted by SUMO (ticket #13264)::

      incl = area / mass · (−9.05337017) − 0.00017774
      d(v) = min(0, incl · v + 0.00001066 · mass − 0.38347107 − 20 · incl)
      for v < 10 km/h: d(v) = v / (10/3.6) · d(10/3.6)

  on a flat road (no slope term).
* E is clipped at ≥ 0 (docs/definitions.md); SUMO 1.28 also returns 0 where the
  polynomial is negative (checked against it, docs/validation.md).
* Battery-electric classes: 0 tailpipe CO₂ and fuel (their rows are zero).
* SUMO's engine-off after 300 s stopped is not modelled (stops here are
  far shorter).
* Per step, SUMO uses the speed at the END of the step and the step's mean
  acceleration (v_end − v_start) / dt, times the step length; the kernel in
  :mod:`gpssignal.sim.kernel` does the same.

Fuel: the FC row is mg of fuel per second; litres via the density of the
class's fuel (``data/fuels.csv``, docs/references.md#co2-per-litre: petrol 742 g/L, diesel
836 g/L). The fuel of a class: ``petrol`` if its name contains ``petrol``,
``electric`` if it contains ``BEV``, otherwise ``diesel`` (HBEFA's heavy
vehicle classes are diesel).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from gpssignal._compiled import njit
from gpssignal.errors import ScenarioError
from gpssignal.model.scenario import ZERO_EMISSION, Scenario

__all__ = [
    "COASTING_FIT",
    "EmissionModel",
    "co2_and_fuel_mg_s",
    "coasting_decel_mps2",
    "coefficients",
    "emission_model",
    "fuel_of",
    "fuels",
    "rate_mg_s",
    "rates_mg_s",
    "scenario_emissions",
]

#: SUMO's coasting-deceleration fit (PollutantsInterface.cpp, ticket #13264):
#: (area/mass factor, incl constant, mass factor, constant, incl factor).
COASTING_FIT = (-9.05337017, -0.00017774, 0.00001066, -0.38347107, -20.0)
#: Below this speed the coasting deceleration is scaled down linearly [m/s]
#: (PHEMlight V5 ``SPEED_DCEL_MIN`` = 10 km/h).
SPEED_DCEL_MIN_MPS = 10.0 / 3.6
#: Speeds at or below this count as standing for the coasting rule [m/s]
#: (SUMO ``ZERO_SPEED_ACCURACY``).
ZERO_SPEED_MPS = 0.5


@lru_cache(maxsize=1)
def coefficients() -> pd.DataFrame:
    """Return the coefficient table: one row per (emission_class, pollutant), f0..f6."""
    with resources.files("gpssignal.emissions").joinpath("data/hbefa4_sumo.csv").open(
            encoding="utf-8") as fh:
        return pd.read_csv(fh, comment="#")


@lru_cache(maxsize=1)
def fuels() -> pd.DataFrame:
    """Fuel properties (density g/L, CO₂ kg/L), indexed by fuel name."""
    with resources.files("gpssignal.emissions").joinpath("data/fuels.csv").open(
            encoding="utf-8") as fh:
        return pd.read_csv(fh, comment="#").set_index("fuel")


def fuel_of(emission_class: str) -> str:
    """``petrol``, ``diesel`` or ``electric`` for an HBEFA4 class name."""
    if "BEV" in emission_class:
        return "electric"
    return "petrol" if "petrol" in emission_class else "diesel"


@njit
def coasting_decel_mps2(v: float, incl: float, const: float) -> float:
    """Coasting deceleration (≤ 0) at speed ``v`` for a class's ``incl``/``const``."""
    vv = max(v, SPEED_DCEL_MIN_MPS)
    d = min(0.0, incl * vv + const)
    if v < SPEED_DCEL_MIN_MPS:
        d *= v / SPEED_DCEL_MIN_MPS
    return d


@njit
def rate_mg_s(f: np.ndarray, v: float, a: float, incl: float, const: float) -> float:
    """Emission rate [mg/s] of one vehicle with coefficients ``f`` (length 7)."""
    if v > ZERO_SPEED_MPS and a < coasting_decel_mps2(v, incl, const):
        return 0.0
    e = f[0] + f[1] * v + f[2] * a + f[3] * v * v + f[4] * v * v * v + f[5] * a * v \
        + f[6] * a * v * v
    return max(e, 0.0)


@njit
def co2_and_fuel_mg_s(coef: np.ndarray, c: int, v: float, a: float, incl: float,
                      const: float) -> tuple[float, float]:
    """Return the CO₂ and fuel rates [mg/s] of class ``c`` at once.

    The vehicle kernel's form of :func:`rate_mg_s`: one coasting check, shared
    polynomial terms.
    """
    if v > ZERO_SPEED_MPS and a < coasting_decel_mps2(v, incl, const):
        return 0.0, 0.0
    v2 = v * v
    t = (1.0, v, a, v2, v2 * v, a * v, a * v2)
    e0 = 0.0
    e1 = 0.0
    for k in range(7):
        e0 += coef[c, 0, k] * t[k]
        e1 += coef[c, 1, k] * t[k]
    return max(e0, 0.0), max(e1, 0.0)


@njit
def _rates(coef: np.ndarray, coast: np.ndarray, cls: np.ndarray, v: np.ndarray,
           a: np.ndarray, pollutant: int, out: np.ndarray) -> None:
    for i in range(v.shape[0]):
        c = cls[i]
        out[i] = rate_mg_s(coef[c, pollutant], v[i], a[i], coast[c, 0], coast[c, 1])


@dataclass(frozen=True)
class EmissionModel:
    """The HBEFA4 data of a scenario's vehicle classes, as arrays by class index.

    ``coef[c, p]``: f0..f6 of class ``c`` for pollutant ``p`` (0 = CO₂,
    1 = fuel); ``coast[c]``: (incl, const) of the coasting deceleration;
    ``density_g_per_l[c]``: fuel density (NaN for electric).
    """

    classes: tuple[str, ...]
    emission_classes: tuple[str, ...]
    coef: np.ndarray
    coast: np.ndarray
    density_g_per_l: np.ndarray

    @property
    def idle_mg_s(self) -> np.ndarray:
        """Standing-still rates (v = 0, a = 0) per class, shape (n, 2)."""
        return self.coef[:, :, 0].copy()

    def fuel_litres(self, cls: np.ndarray, fuel_mg: np.ndarray) -> np.ndarray:
        """Litres of fuel from mg per vehicle (0 for electric)."""
        d = self.density_g_per_l[np.asarray(cls)]
        return np.where(np.isnan(d), 0.0, np.asarray(fuel_mg) / 1000.0 / np.where(
            np.isnan(d), 1.0, d))


POLLUTANTS = {"CO2": 0, "FC": 1}



def rates_mg_s(model: EmissionModel, cls: np.ndarray, v: np.ndarray, a: np.ndarray,
               pollutant: str = "CO2") -> np.ndarray:
    """Vectorised rates [mg/s] for vehicles of class index ``cls`` at (v, a)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    cls = np.ascontiguousarray(np.broadcast_to(cls, v.shape), dtype=np.int64)
    out = np.empty(v.shape[0])
    _rates(model.coef, model.coast, cls, v, a, POLLUTANTS[pollutant], out)
    return out


def emission_model(classes: list[tuple[str, str, float, float, float]]) -> EmissionModel:
    """Build the arrays for vehicle classes ``(name, emission_class, mass_kg, width_m, height_m)``.

    The arrays are the caller's own copies; the table lookups behind them are
    done once per set of classes (every run of a scenario asks again).

    Raises
    ------
    KeyError
        With a message naming the class and the unknown emission class.
    """
    coef, coast, density = _model_arrays(tuple(classes))
    return EmissionModel(classes=tuple(c[0] for c in classes),
                         emission_classes=tuple(c[1] for c in classes), coef=coef.copy(),
                         coast=coast.copy(), density_g_per_l=density.copy())


@lru_cache(maxsize=64)
def _model_arrays(classes: tuple[tuple[str, str, float, float, float], ...]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return :func:`emission_model`'s arrays (coefficients, coasting, fuel density), read-only."""
    table = coefficients().set_index(["emission_class", "pollutant"])
    known = set(table.index.get_level_values(0))
    dens = fuels()
    n = len(classes)
    coef = np.zeros((n, 2, 7))
    coast = np.zeros((n, 2))
    density = np.full(n, np.nan)
    fcols = [f"f{k}" for k in range(7)]
    a_fac, a_const, m_fac, const, i_fac = COASTING_FIT
    for i, (name, ecls, mass, width, height) in enumerate(classes):
        if ecls == ZERO_EMISSION:  # bicycles: no tailpipe, no fuel (coefficients stay 0)
            coast[i] = (0.0, 0.0)
            continue
        if ecls not in known:
            raise KeyError(f"vehicle_class[{name}].emission_class = {ecls!r}: not an HBEFA4 "
                           f"class in the coefficient table (known: {', '.join(sorted(known))})")
        coef[i, 0] = table.loc[(ecls, "CO2"), fcols].to_numpy(dtype=float)
        coef[i, 1] = table.loc[(ecls, "FC"), fcols].to_numpy(dtype=float)
        area = np.pi / 4.0 * width * height
        incl = area / mass * a_fac + a_const
        coast[i] = (incl, m_fac * mass + const + i_fac * incl)
        fuel = fuel_of(ecls)
        if fuel != "electric":
            density[i] = float(dens.loc[fuel, "density_g_per_l"])
    for a in (coef, coast, density):
        a.setflags(write=False)
    return coef, coast, density


def scenario_emissions(scenario: Scenario) -> EmissionModel:
    """Return the emission model of a scenario's vehicle classes (in class order).

    Raises
    ------
    ScenarioError
        Naming the vehicle class whose ``emission_class`` is unknown.
    """
    try:
        return emission_model([(c.name, c.emission_class, c.mass_kg, c.width_m, c.height_m)
                               for c in scenario.vehicle_classes])
    except KeyError as e:
        raise ScenarioError(str(e.args[0])) from None
