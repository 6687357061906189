"""KPI tables of one run, built from a :class:`~gpssignal.sim.engine.SimResult`.

Measuring is kept apart from the dynamics: the simulator records raw times
and samples; this module turns them into tables with the definitions of
:mod:`gpssignal.evaluate.definitions`.

Tables (pandas DataFrames):

``vehicles``
    One row per vehicle that arrived during the demand period.
``intervals``
    One row per demand interval (15 min), vehicles grouped by arrival time
    (stretch speed by the time a vehicle entered the stretch, throughput by
    exit time).
``approaches``
    One row per junction approach: queues (sampled every second), stop-line
    crossings, control delay and LOS.
``movements``
    One row per junction, approach and movement: control delay and LOS.
``summary``
    One row per KPI, for the whole period and the peak hour.
``pedestrians``
    One row per pedestrian (only with crossings): crossing, arrival, start,
    delay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpssignal.evaluate.definitions import (
    entry_wait_s,
    level_of_service,
    space_mean_speed_kmh,
    time_loss_s,
    travel_time_s,
)
from gpssignal.model.io import format_clock
from gpssignal.model.scenario import MOVEMENTS
from gpssignal.sim.engine import SimResult

__all__ = [
    "EVAL_KPIS",
    "KPI_DEFINITIONS",
    "approach_table",
    "interval_table",
    "monitored_approach",
    "movement_table",
    "replication_kpis",
    "run_tables",
    "stretch_length_m",
    "summary_table",
    "vehicle_table",
]


def stretch_length_m(result: SimResult, index: int) -> float:
    """Length of monitored stretch ``index`` along its links [m]."""
    st = result.scenario.stretches[index]
    net = result.network
    lengths = [float(net.link_length_m[net.link_index(lid)]) for lid in st.links]
    end = st.end_m if st.end_m is not None else lengths[-1]
    return float(sum(lengths[:-1]) - st.start_m + end)


def vehicle_table(result: SimResult, routes: bool = True) -> pd.DataFrame:
    """Per-vehicle results (see docs/definitions.md for every column).

    ``routes=False`` leaves the ``route`` column empty (the links as text
    take a third of the time, and no KPI uses them).
    """
    arr, net, sc = result.arrivals, result.network, result.scenario
    wait = entry_wait_s(arr.t_s, result.depart_s)
    travel = travel_time_s(result.depart_s, result.exit_s)
    loss = time_loss_s(travel, arr.free_flow_time_s, wait)
    ids = np.array([*net.link_ids, ""], dtype=object)
    route = ["→".join(ids[r[r >= 0]]) for r in arr.route_links] if routes else ""
    df = pd.DataFrame({
        "vehicle": np.arange(len(arr)),
        "vehicle_class": np.array([c.name for c in sc.vehicle_classes],
                                  dtype=object)[arr.vehicle_class],
        "mode": np.array([c.mode for c in sc.vehicle_classes], dtype=object)[arr.vehicle_class],
        "occupancy": np.array([c.occupancy for c in sc.vehicle_classes])[arr.vehicle_class],
        "entry_link": ids[arr.route_links[:, 0]] if len(arr) else np.array([], dtype=object),
        "first_movement": np.array(MOVEMENTS, dtype=object)[arr.route_moves[:, 0]]
        if len(arr) else np.array([], dtype=object),
        "route": route,
        "arrival_s": arr.t_s,
        "depart_s": result.depart_s,
        "exit_s": result.exit_s,
        "entry_wait_s": wait,
        "travel_time_s": travel,
        "free_flow_time_s": arr.free_flow_time_s,
        "time_loss_s": loss,
        "route_length_m": arr.route_length_m,
        "stops": result.stops,
        "speed_factor": arr.speed_factor,
        "completed": ~np.isnan(result.exit_s),
    })
    # Emissions (gpssignal.emissions.hbefa4): driving inside the network, plus
    # idling (v = 0, a = 0) while waiting to enter, which happens upstream on
    # the real road. SUMO counts neither the wait nor its emissions.
    em = result.emissions
    cls = arr.vehicle_class
    idle = em.idle_mg_s[cls] if len(arr) else np.zeros((0, 2))
    w = np.nan_to_num(np.where(np.isnan(result.depart_s), result.end_s - arr.t_s, wait))
    co2_wait = idle[:, 0] * w
    fuel_wait = idle[:, 1] * w
    df["distance_m"] = result.distance_m
    df["co2_g"] = (result.co2_mg + co2_wait) / 1000.0
    df["co2_entry_wait_g"] = co2_wait / 1000.0
    df["fuel_g"] = (result.fuel_mg + fuel_wait) / 1000.0
    df["fuel_l"] = em.fuel_litres(cls, result.fuel_mg + fuel_wait)
    for k, st in enumerate(sc.stretches):
        df[f"stretch_{st.id}_s"] = result.stretch_exit_s[:, k] - result.stretch_enter_s[:, k]
    return df


def _interval_index(t_s: np.ndarray, interval_s: float, n: int) -> np.ndarray:
    k = np.floor(np.asarray(t_s) / interval_s)
    return np.where(np.isnan(k) | (k < 0) | (k >= n), -1, k).astype(np.int64)


def interval_table(result: SimResult, vehicles: pd.DataFrame | None = None) -> pd.DataFrame:
    """KPIs per demand interval (15 min by default), of motor vehicles (buses included)."""
    sc = result.scenario
    veh = vehicle_table(result) if vehicles is None else vehicles
    veh = veh[veh["mode"] != "bicycle"]
    iv = sc.demand.interval_s
    n = int(np.ceil(sc.duration_s / iv - 1e-9))
    k_arr = _interval_index(veh["arrival_s"].to_numpy(), iv, n)
    k_exit = _interval_index(veh["exit_s"].to_numpy(), iv, n)
    rows = []
    for k in range(n):
        sel = k_arr == k
        done = sel & veh["completed"].to_numpy()
        tl = veh["time_loss_s"].to_numpy()[done]
        row = {
            "interval_start": format_clock(sc.start_clock_s + k * iv),
            "t0_s": k * iv,
            "arrivals": int(sel.sum()),
            "completed": int(done.sum()),
            "mean_time_loss_s": float(tl.mean()) if tl.size else np.nan,
            "total_time_loss_veh_h": float(tl.sum() / 3600.0),
            "mean_travel_time_s": float(veh["travel_time_s"].to_numpy()[done].mean())
            if done.any() else np.nan,
            "stops_per_veh": float(veh["stops"].to_numpy()[done].mean()) if done.any()
            else np.nan,
            "throughput_vph": float((k_exit == k).sum() * 3600.0 / iv),
        }
        for s, st in enumerate(sc.stretches):
            enter = result.stretch_enter_s[:, s]
            in_k = _interval_index(enter, iv, n) == k
            trav = (result.stretch_exit_s[:, s] - enter)[in_k]
            row[f"speed_{st.id}_kmh"] = space_mean_speed_kmh(stretch_length_m(result, s), trav)
            row[f"n_{st.id}"] = int(np.sum(~np.isnan(trav)))
        rows.append(row)
    return pd.DataFrame(rows)


def _approach_lanes(result: SimResult) -> dict[int, np.ndarray]:
    """Columns of ``queue_m`` per approach link."""
    net = result.network
    lane_link = net.lane_link[result.queue_lanes]
    return {int(lk): np.flatnonzero(lane_link == lk) for lk in np.unique(lane_link)}


def approach_table(result: SimResult) -> pd.DataFrame:
    """Per junction approach: queue statistics, crossings, control delay, LOS.

    Queue length of an approach at a sample is its longest lane queue: metres
    from the stop line to the back of the rearmost vehicle slower than 5 km/h.
    Statistics run over the samples of the demand period (every 1 s).
    """
    net, sc = result.network, result.scenario
    in_period = result.queue_t_s <= sc.duration_s
    qm = result.queue_m[in_period]
    qn = result.queue_veh[in_period]
    p = result.passages
    rows = []
    for link, cols in _approach_lanes(result).items():
        q = qm[:, cols].max(axis=1) if len(qm) else np.zeros(0)
        nveh = qn[:, cols].sum(axis=1) if len(qn) else np.zeros(0)
        sel = p["link"] == link
        cd = p["control_delay_s"][sel]
        cd = cd[~np.isnan(cd)]
        mean_cd = float(cd.mean()) if cd.size else np.nan
        rows.append({
            "junction": net.junction_ids[int(net.link_junction[link])],
            "approach_link": net.link_ids[link],
            "lanes": len(cols),
            "queue_mean_m": float(q.mean()) if q.size else np.nan,
            "queue_p95_m": float(np.percentile(q, 95)) if q.size else np.nan,
            "queue_max_m": float(q.max()) if q.size else np.nan,
            "queued_veh_max": int(nveh.max()) if nveh.size else 0,
            "crossings": int(sel.sum()),
            "control_delay_s": mean_cd,
            "los": str(level_of_service(mean_cd)[0]),
        })
    return pd.DataFrame(rows)


def movement_table(result: SimResult) -> pd.DataFrame:
    """Per junction, approach and movement: vehicles, control delay and LOS."""
    net = result.network
    p = result.passages
    rows = []
    keys = sorted({(int(a), int(b)) for a, b in zip(p["link"], p["movement"], strict=True)})
    for link, mv in keys:
        sel = (p["link"] == link) & (p["movement"] == mv)
        cd = p["control_delay_s"][sel]
        cd = cd[~np.isnan(cd)]
        mean_cd = float(cd.mean()) if cd.size else np.nan
        rows.append({
            "junction": net.junction_ids[int(net.link_junction[link])],
            "approach_link": net.link_ids[link],
            "movement": MOVEMENTS[mv],
            "vehicles": int(sel.sum()),
            "control_delay_s": mean_cd,
            "los": str(level_of_service(mean_cd)[0]),
        })
    return pd.DataFrame(rows)


def _period_kpis(result: SimResult, veh: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """KPIs of vehicles (and pedestrians) arriving in [t0, t1) (simulation seconds).

    The vehicle KPIs are those of motor vehicles (buses included); cyclists
    and pedestrians have their own, and every person counts in the
    person-hour KPIs (:func:`_road_user_kpis`).
    """
    out = _motor_kpis(result, veh[veh["mode"] != "bicycle"], t0, t1)
    out.update(_road_user_kpis(result, veh, t0, t1))
    return out


def _road_user_kpis(result: SimResult, veh: pd.DataFrame, t0: float, t1: float
                    ) -> dict[str, float]:
    """Person-hours of time loss per road-user group, and the cyclist and pedestrian KPIs.

    Groups: motor-vehicle occupants (``mode`` motor, time loss × occupancy),
    bus passengers (``mode`` bus), cyclists, pedestrians (their delay at the
    crossing); only groups the scenario has get keys, except the total.
    """
    sc = result.scenario
    sel = (veh["arrival_s"] >= t0) & (veh["arrival_s"] < t1) & veh["completed"]
    d = veh[sel]
    person_h = d["time_loss_s"] * d["occupancy"] / 3600.0
    persons = float(d["occupancy"].sum())
    total_h = float(person_h.sum())
    out: dict[str, float] = {}
    modes = {c.mode for c in sc.vehicle_classes}
    for mode, key in (("motor", "motorist"), ("bus", "bus_passenger"), ("bicycle", "cyclist")):
        if mode in modes:
            out[f"{key}_time_loss_person_h"] = float(person_h[d["mode"] == mode].sum())
    if "bicycle" in modes:
        bikes_in = veh[(veh["arrival_s"] >= t0) & (veh["arrival_s"] < t1)
                       & (veh["mode"] == "bicycle")]
        b = bikes_in[bikes_in["completed"]]
        hours = (t1 - t0) / 3600.0
        out["cyclists_arrived"] = float(len(bikes_in))
        out["cyclist_mean_time_loss_s"] = float(b["time_loss_s"].mean()) if len(b) else np.nan
        out["cyclist_stops"] = float(b["stops"].mean()) if len(b) else np.nan
        bikes = veh[veh["mode"] == "bicycle"]
        out["cyclist_throughput_ph"] = float(((bikes["exit_s"] >= t0)
                                              & (bikes["exit_s"] < t1)).sum() / hours)
    peds = result.pedestrians
    if peds is not None:
        p_sel = (peds["arrival_s"] >= t0) & (peds["arrival_s"] < t1)
        delay = peds["delay_s"][p_sel]
        done = delay[~np.isnan(delay)]
        out["pedestrians_arrived"] = float(p_sel.sum())
        out["pedestrian_mean_delay_s"] = float(done.mean()) if len(done) else np.nan
        out["pedestrian_delay_person_h"] = float(done.sum() / 3600.0)
        total_h += float(done.sum() / 3600.0)
        persons += float(len(done))
    out["total_time_loss_person_h"] = total_h
    out["mean_time_loss_per_person_s"] = total_h * 3600.0 / persons if persons else np.nan
    return out


def _motor_kpis(result: SimResult, veh: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """KPIs of motor vehicles arriving in [t0, t1) (simulation seconds)."""
    sel = (veh["arrival_s"] >= t0) & (veh["arrival_s"] < t1)
    done = sel & veh["completed"]
    d = veh[done]
    hours = (t1 - t0) / 3600.0
    out = {
        "vehicles_arrived": float(sel.sum()),
        "vehicles_completed": float(done.sum()),
        "mean_time_loss_s": float(d["time_loss_s"].mean()) if len(d) else np.nan,
        "total_time_loss_veh_h": float(d["time_loss_s"].sum() / 3600.0),
        "mean_travel_time_s": float(d["travel_time_s"].mean()) if len(d) else np.nan,
        "mean_entry_wait_s": float(d["entry_wait_s"].mean()) if len(d) else np.nan,
        "stops_per_veh": float(d["stops"].mean()) if len(d) else np.nan,
        "throughput_vph": float(((veh["exit_s"] >= t0) & (veh["exit_s"] < t1)).sum() / hours),
        "co2_kg": float(veh.loc[sel, "co2_g"].sum() / 1000.0),
        "co2_g_per_veh_km": float(veh.loc[sel, "co2_g"].sum()
                                  / max(veh.loc[sel, "distance_m"].sum() / 1000.0, 1e-12))
        if sel.any() else np.nan,
        "fuel_l": float(veh.loc[sel, "fuel_l"].sum()),
    }
    for s, st in enumerate(result.scenario.stretches):
        enter = result.stretch_enter_s[:, s]
        in_p = (enter >= t0) & (enter < t1)
        trav = (result.stretch_exit_s[:, s] - enter)[in_p]
        out[f"speed_{st.id}_kmh"] = space_mean_speed_kmh(stretch_length_m(result, s), trav)
    return out


#: Units and definitions of the summary KPIs (docs/definitions.md has the long form).
KPI_DEFINITIONS = {
    "vehicles_arrived": ("veh", "vehicles arriving at the network boundary in the period"),
    "vehicles_completed": ("veh", "of those, vehicles that left the network"),
    "mean_time_loss_s": ("s/veh", "time loss = travel time - free-flow time + entry wait"),
    "total_time_loss_veh_h": ("veh·h", "sum of time loss of completed vehicles"),
    "mean_travel_time_s": ("s/veh", "exit time - entry time"),
    "mean_entry_wait_s": ("s/veh", "time waited outside before entering"),
    "stops_per_veh": ("1/veh", "speed fell below 0.1 m/s after being above it"),
    "throughput_vph": ("veh/h", "vehicles leaving the network in the period, per hour"),
    "co2_kg": ("kg", "HBEFA4 tailpipe CO2 of the vehicles arriving in the period, in the "
               "network and idling while waiting to enter"),
    "co2_g_per_veh_km": ("g/veh-km", "co2_kg / distance those vehicles drove in the network"),
    "fuel_l": ("L", "HBEFA4 fuel of the same vehicles, litres via fuel density"),
    "motorist_time_loss_person_h": ("person·h", "time loss × occupancy of the motor "
                                    "vehicles (not buses) arriving in the period"),
    "bus_passenger_time_loss_person_h": ("person·h", "time loss × occupancy of the buses "
                                         "arriving in the period"),
    "cyclist_time_loss_person_h": ("person·h", "time loss of the cyclists arriving in the "
                                   "period"),
    "cyclists_arrived": ("bicycles", "cyclists arriving at the network boundary in the period"),
    "cyclist_mean_time_loss_s": ("s/cyclist", "time loss of cyclists, as for vehicles"),
    "cyclist_stops": ("1/cyclist", "stops per cyclist"),
    "cyclist_throughput_ph": ("bicycles/h", "cyclists leaving the network in the period, "
                              "per hour"),
    "pedestrians_arrived": ("ped", "pedestrians arriving at a crossing in the period"),
    "pedestrian_mean_delay_s": ("s/ped", "wait at the kerb (and refuge island) before "
                                "crossing on green"),
    "pedestrian_delay_person_h": ("person·h", "sum of pedestrian delay"),
    "total_time_loss_person_h": ("person·h", "time loss of every person arriving in the "
                                 "period: vehicle time loss × occupancy, cyclists, "
                                 "pedestrian delay"),
    "mean_time_loss_per_person_s": ("s/person", "total_time_loss_person_h / persons"),
}


def summary_table(result: SimResult, vehicles: pd.DataFrame | None = None) -> pd.DataFrame:
    """Headline KPIs for the whole demand period and the peak hour."""
    sc = result.scenario
    veh = vehicle_table(result) if vehicles is None else vehicles
    periods = {"period": (0.0, sc.duration_s)}
    if sc.peak_clock_s is not None:
        periods["peak_hour"] = (sc.peak_clock_s[0] - sc.start_clock_s,
                                sc.peak_clock_s[1] - sc.start_clock_s)
    cols = {name: _period_kpis(result, veh, a, b) for name, (a, b) in periods.items()}
    rows = []
    for kpi in cols["period"]:
        if kpi.startswith("speed_"):
            unit, definition = "km/h", "space-mean speed on the stretch = length / mean " \
                                       "traversal time (vehicles entering it in the period)"
        else:
            unit, definition = KPI_DEFINITIONS[kpi]
        row: dict[str, object] = {"kpi": kpi, "unit": unit}
        for name in periods:
            row[name] = cols[name][kpi]
        row["definition"] = definition
        rows.append(row)
    for kpi, value, definition in _safety_counts(result):
        rows.append({"kpi": kpi, "unit": "count", **{name: np.nan for name in periods},
                     "period": float(value), "definition": definition})
    return pd.DataFrame(rows)


def _safety_counts(result: SimResult) -> list[tuple[str, int, str]]:
    """Return the run's safety counts (whole run: demand period and drain)."""
    return [
        ("red_crossings", result.red_crossings,
         "stop-line passages on red or red-amber: vehicles that could not stop even with the "
         "emergency deceleration (whole run)"),
        ("red_clearances", result.red_clearances,
         "give-way turners that took their gap from their waiting point and passed the stop "
         "line after red began: clearing the junction, not crossing on red (whole run)"),
        ("emergency_brakings", result.emergency_brakings,
         "times a vehicle started braking harder than driver.emergency_braking_mps2 "
         "(whole run)"),
    ]


def run_tables(result: SimResult, routes: bool = True) -> dict[str, pd.DataFrame]:
    """All tables of one run, keyed by name (``routes``: see :func:`vehicle_table`)."""
    veh = vehicle_table(result, routes)
    peds = {}
    if result.pedestrians is not None:
        peds["pedestrians"] = pd.DataFrame(result.pedestrians)
    return {
        "summary": summary_table(result, veh),
        "vehicles": veh,
        "intervals": interval_table(result, veh),
        "approaches": approach_table(result),
        "movements": movement_table(result),
        "switches": pd.DataFrame(
            [{"t_s": s.t_s, "clock": format_clock(result.scenario.start_clock_s + s.t_s),
              "junction": s.junction, "from_program": s.from_program,
              "to_program": s.to_program, "hold_s": s.hold_s} for s in result.switches],
            columns=["t_s", "clock", "junction", "from_program", "to_program", "hold_s"]),
        **peds,
    }


def monitored_approach(result: SimResult) -> int | None:
    """Index of the monitored approach: the link where the first stretch ends.

    ``None`` without stretches or when that link has no stop line.
    """
    sc, net = result.scenario, result.network
    if not sc.stretches:
        return None
    link = net.link_index(sc.stretches[0].links[-1])
    return link if int(net.link_junction[link]) >= 0 else None


#: KPIs of one replication (one day), in report order:
#: ``(key, unit, definition, better)`` with better ``lower``, ``higher`` or
#: ``same`` (a check, not a result).
#: docs/definitions.md gives the long form of each.
EVAL_KPIS: list[tuple[str, str, str, str]] = [
    ("vehicles_arrived", "veh", "vehicles arriving at the network boundary in the period "
     "(the same for every controller on a day: common random numbers)", "same"),
    ("total_time_loss_veh_h", "veh·h", "sum of time loss of vehicles arriving in the period "
     "(completed trips)", "lower"),
    ("mean_time_loss_s", "s/veh", "time loss = travel time - free-flow time + entry wait, "
     "mean over vehicles arriving in the period", "lower"),
    ("mean_time_loss_peak_s", "s/veh", "as mean_time_loss_s, vehicles arriving in the peak "
     "hour", "lower"),
    ("mean_travel_time_s", "s/veh", "exit time - entry time, vehicles arriving in the period",
     "lower"),
    ("stretch_speed_peak_kmh", "km/h", "space-mean speed on the monitored stretch = length / "
     "mean traversal time, vehicles entering it in the peak hour", "higher"),
    ("stretch_speed_period_kmh", "km/h", "as stretch_speed_peak_kmh, whole period", "higher"),
    ("stops_per_veh", "1/veh", "stops (speed below 0.1 m/s after being above it) per vehicle",
     "lower"),
    ("queue_mean_m", "m", "queue length on the monitored approach (longest lane, rearmost "
     "vehicle slower than 5 km/h), mean of 1-s samples in the period", "lower"),
    ("queue_p95_m", "m", "as queue_mean_m, 95th percentile", "lower"),
    ("throughput_vph", "veh/h", "vehicles leaving the network in the period, per hour",
     "higher"),
    ("co2_kg", "kg", "HBEFA4 tailpipe CO2 of vehicles arriving in the period, inside the "
     "network (until they leave) and idling while waiting to enter", "lower"),
    ("co2_g_per_veh_km", "g/veh-km", "co2_kg / distance driven in the network by the same "
     "vehicles", "lower"),
    ("fuel_l", "L", "HBEFA4 fuel consumption of the same vehicles, litres via fuel density",
     "lower"),
    ("switches", "1/day", "program switches of all junctions in the day", "lower"),
    ("total_time_loss_person_h", "person·h", "time loss of every person arriving in the "
     "period: vehicle time loss × occupancy (drivers, passengers, bus passengers), cyclists' "
     "time loss, pedestrians' delay", "lower"),
    ("mean_time_loss_per_person_s", "s/person", "total_time_loss_person_h / persons",
     "lower"),
    ("bus_passenger_time_loss_person_h", "person·h", "time loss × occupancy of the buses "
     "(NaN without a bus class)", "lower"),
    ("cyclist_mean_time_loss_s", "s/cyclist", "time loss of cyclists arriving in the period "
     "(NaN without cyclists)", "lower"),
    ("cyclist_time_loss_person_h", "person·h", "sum of cyclists' time loss", "lower"),
    ("pedestrian_mean_delay_s", "s/ped", "wait at the kerb and island of pedestrians arriving "
     "in the period (NaN without crossings)", "lower"),
    ("pedestrian_delay_person_h", "person·h", "sum of pedestrians' delay", "lower"),
]


def replication_kpis(result: SimResult, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Return the :data:`EVAL_KPIS` of one run, from its tables (see :func:`run_tables`)."""
    summ = tables["summary"].set_index("kpi")
    veh = tables["vehicles"]
    sc = result.scenario
    peak = "peak_hour" if "peak_hour" in summ.columns else "period"
    out: dict[str, float] = {
        "vehicles_arrived": float(summ.loc["vehicles_arrived", "period"]),
        "total_time_loss_veh_h": float(summ.loc["total_time_loss_veh_h", "period"]),
        "mean_time_loss_s": float(summ.loc["mean_time_loss_s", "period"]),
        "mean_time_loss_peak_s": float(summ.loc["mean_time_loss_s", peak]),
        "mean_travel_time_s": float(summ.loc["mean_travel_time_s", "period"]),
        "stops_per_veh": float(summ.loc["stops_per_veh", "period"]),
        "throughput_vph": float(summ.loc["throughput_vph", "period"]),
    }
    if sc.stretches:
        key = f"speed_{sc.stretches[0].id}_kmh"
        out["stretch_speed_peak_kmh"] = float(summ.loc[key, peak])
        out["stretch_speed_period_kmh"] = float(summ.loc[key, "period"])
    else:
        out["stretch_speed_peak_kmh"] = out["stretch_speed_period_kmh"] = float("nan")
    app = monitored_approach(result)
    appr = tables["approaches"]
    if app is not None:
        row = appr[appr["approach_link"] == result.network.link_ids[app]]
    else:
        row = appr.iloc[0:0]
    out["queue_mean_m"] = float(row["queue_mean_m"].iloc[0]) if len(row) else float("nan")
    out["queue_p95_m"] = float(row["queue_p95_m"].iloc[0]) if len(row) else float("nan")
    motor = veh[veh["mode"] != "bicycle"]
    co2_g = float(motor["co2_g"].sum())
    km = float(motor["distance_m"].sum()) / 1000.0
    out["co2_kg"] = co2_g / 1000.0
    out["co2_g_per_veh_km"] = co2_g / km if km > 0 else float("nan")
    out["fuel_l"] = float(motor["fuel_l"].sum())
    out["switches"] = float(len(result.switches))
    for key in ("total_time_loss_person_h", "mean_time_loss_per_person_s",
                "bus_passenger_time_loss_person_h", "cyclist_mean_time_loss_s",
                "cyclist_time_loss_person_h", "pedestrian_mean_delay_s",
                "pedestrian_delay_person_h"):
        out[key] = float(summ.loc[key, "period"]) if key in summ.index else float("nan")
    return out
