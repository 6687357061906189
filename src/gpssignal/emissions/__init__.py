"""Emission models: HBEFA4 CO₂ and fuel per vehicle and time step.

See :mod:`gpssignal.emissions.hbefa4` for the model and its sources.
"""

from gpssignal.emissions.hbefa4 import (
    EmissionModel,
    coefficients,
    emission_model,
    fuel_of,
    fuels,
    rate_mg_s,
    rates_mg_s,
    scenario_emissions,
)

__all__ = ["EmissionModel", "coefficients", "emission_model", "fuel_of", "fuels", "rate_mg_s",
           "rates_mg_s",
           "scenario_emissions"]
