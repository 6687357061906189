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

from collections.abc import Sequence
from dataclasses import dataclass

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
    "replication_record",
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


def _trip_columns(result: SimResult) -> dict[str, np.ndarray]:
    """Return the numeric per-vehicle columns of :func:`vehicle_table` (times, emissions)."""
    arr = result.arrivals
    wait = entry_wait_s(arr.t_s, result.depart_s)
    travel = travel_time_s(result.depart_s, result.exit_s)
    # Emissions (gpssignal.emissions.hbefa4): driving inside the network, plus
    # idling (v = 0, a = 0) while waiting to enter, which happens upstream on
    # the real road. SUMO counts neither the wait nor its emissions.
    em = result.emissions
    cls = arr.vehicle_class
    idle = em.idle_mg_s[cls] if len(arr) else np.zeros((0, 2))
    w = np.nan_to_num(np.where(np.isnan(result.depart_s), result.end_s - arr.t_s, wait))
    co2_wait = idle[:, 0] * w
    fuel_wait = idle[:, 1] * w
    occupancy = np.array([c.occupancy for c in result.scenario.vehicle_classes])
    return {
        "occupancy": occupancy[cls],
        "arrival_s": arr.t_s,
        "depart_s": result.depart_s,
        "exit_s": result.exit_s,
        "entry_wait_s": wait,
        "travel_time_s": travel,
        "free_flow_time_s": arr.free_flow_time_s,
        "time_loss_s": time_loss_s(travel, arr.free_flow_time_s, wait),
        "route_length_m": arr.route_length_m,
        "stops": result.stops,
        "speed_factor": arr.speed_factor,
        "completed": ~np.isnan(result.exit_s),
        "distance_m": result.distance_m,
        "co2_g": (result.co2_mg + co2_wait) / 1000.0,
        "co2_entry_wait_g": co2_wait / 1000.0,
        "fuel_g": (result.fuel_mg + fuel_wait) / 1000.0,
        "fuel_l": em.fuel_litres(cls, result.fuel_mg + fuel_wait),
    }


def vehicle_table(result: SimResult, routes: bool = True) -> pd.DataFrame:
    """Per-vehicle results (see docs/definitions.md for every column).

    ``routes=False`` leaves the ``route`` column empty (the links as text
    take a third of the time, and no KPI uses them).
    """
    return _vehicle_frame(result, _trip_columns(result), routes)


def _vehicle_frame(result: SimResult, trip: dict[str, np.ndarray], routes: bool
                   ) -> pd.DataFrame:
    """Return :func:`vehicle_table` given the run's :func:`_trip_columns`."""
    arr, net, sc = result.arrivals, result.network, result.scenario
    ids = np.array([*net.link_ids, ""], dtype=object)
    route = _route_texts(arr.route_links, ids) if routes else ""
    classes = sc.vehicle_classes
    cols: dict[str, object] = {
        "vehicle": np.arange(len(arr)),
        "vehicle_class": np.array([c.name for c in classes], dtype=object)[arr.vehicle_class],
        "mode": np.array([c.mode for c in classes], dtype=object)[arr.vehicle_class],
        "occupancy": trip["occupancy"],
        "entry_link": ids[arr.first_link],
        "first_movement": np.array(MOVEMENTS, dtype=object)[arr.first_move],
        "route": route,
    }
    df = pd.DataFrame(cols)
    # Added column by column, each its own block: one DataFrame of them all
    # would first copy every column into one 2-D block, and writing the table
    # copies them out again (about 8 MB more at the peak of a day's run).
    for name, values in trip.items():
        if name != "occupancy":
            df[name] = values
    for k, st in enumerate(sc.stretches):
        df[f"stretch_{st.id}_s"] = result.stretch_exit_s[:, k] - result.stretch_enter_s[:, k]
    return df


def _route_texts(route_links: np.ndarray, ids: np.ndarray) -> list[str]:
    """Return each route (a row of link indices, padded with -1) as its links' ids joined by →.

    Each distinct route is joined once: a day has thousands of vehicles on
    a few dozen routes.
    """
    texts: dict[bytes, str] = {}
    out = []
    for r in route_links:
        key = r.tobytes()
        text = texts.get(key)
        if text is None:
            text = texts[key] = "→".join(ids[r[r >= 0]])
        out.append(text)
    return out


@dataclass(frozen=True, slots=True)
class _Trips:
    """The per-vehicle columns the KPIs read, as numpy arrays in vehicle order.

    Taken from the result (:meth:`of_result`) or from a vehicle table
    (:meth:`of_table`): the same numbers either way, without indexing a
    DataFrame for every KPI.
    """

    columns: dict[str, np.ndarray]
    #: The travel mode of each vehicle (``motor``, ``bus``, ``bicycle``).
    mode: np.ndarray

    @classmethod
    def of_result(cls, result: SimResult, columns: dict[str, np.ndarray] | None = None
                  ) -> _Trips:
        """Return the trips of a run (``columns``: its :func:`_trip_columns` if made)."""
        modes = np.array([c.mode for c in result.scenario.vehicle_classes], dtype=object)
        columns = _trip_columns(result) if columns is None else columns
        return cls({k: columns[k] for k in _TRIP_KPI_COLUMNS},
                   modes[result.arrivals.vehicle_class])

    @classmethod
    def of_table(cls, vehicles: pd.DataFrame) -> _Trips:
        """Return the trips of a :func:`vehicle_table`."""
        return cls({k: vehicles[k].to_numpy() for k in _TRIP_KPI_COLUMNS},
                   vehicles["mode"].to_numpy(dtype=object))

    def __getitem__(self, name: str) -> np.ndarray:
        """Return column ``name``."""
        return self.columns[name]

    def take(self, sel: np.ndarray, names: tuple[str, ...] | None = None) -> _Trips:
        """Return the trips of the vehicles ``sel`` (a mask or indices).

        ``names``: only these columns (default: all).
        """
        keep = self.columns if names is None else names
        return _Trips({k: self.columns[k][sel] for k in keep}, self.mode[sel])

    def motor(self) -> _Trips:
        """Return the trips of motor vehicles (buses included): every mode but bicycles."""
        return self.take(self.mode != "bicycle")


#: The columns of the vehicle table that the KPIs read.
_TRIP_KPI_COLUMNS = ("arrival_s", "exit_s", "completed", "time_loss_s", "travel_time_s",
                     "entry_wait_s", "stops", "occupancy", "co2_g", "distance_m", "fuel_l")


def _trips(result: SimResult, vehicles: pd.DataFrame | None) -> _Trips:
    """Return the trips of a vehicle table if given, else of the run's result."""
    return _Trips.of_result(result) if vehicles is None else _Trips.of_table(vehicles)


def _interval_index(t_s: np.ndarray, interval_s: float, n: int) -> np.ndarray:
    k = np.floor(np.asarray(t_s) / interval_s)
    return np.where(np.isnan(k) | (k < 0) | (k >= n), -1, k).astype(np.int64)


def _mean(x: np.ndarray) -> float:
    """Return the mean of ``x``; NaN when empty."""
    return float(x.mean()) if x.size else np.nan


def interval_table(result: SimResult, vehicles: pd.DataFrame | None = None) -> pd.DataFrame:
    """KPIs per demand interval (15 min by default), of motor vehicles (buses included)."""
    return _interval_frame(result, _trips(result, vehicles).motor())


def _interval_frame(result: SimResult, veh: _Trips) -> pd.DataFrame:
    """Return :func:`interval_table` of the motor vehicles' trips ``veh``."""
    sc = result.scenario
    iv = sc.demand.interval_s
    n = int(np.ceil(sc.duration_s / iv - 1e-9))
    k_arr = _interval_index(veh["arrival_s"], iv, n)
    k_exit = _interval_index(veh["exit_s"], iv, n)
    stretches = [(st.id, stretch_length_m(result, s),
                  _interval_index(result.stretch_enter_s[:, s], iv, n),
                  result.stretch_exit_s[:, s] - result.stretch_enter_s[:, s])
                 for s, st in enumerate(sc.stretches)]
    completed, tl_all = veh["completed"], veh["time_loss_s"]
    rows = []
    for k in range(n):
        sel = k_arr == k
        done = sel & completed
        tl = tl_all[done]
        row = {
            "interval_start": format_clock(sc.start_clock_s + k * iv),
            "t0_s": k * iv,
            "arrivals": int(sel.sum()),
            "completed": int(done.sum()),
            "mean_time_loss_s": _mean(tl),
            "total_time_loss_veh_h": float(tl.sum() / 3600.0),
            "mean_travel_time_s": _mean(veh["travel_time_s"][done]),
            "stops_per_veh": _mean(veh["stops"][done]),
            "throughput_vph": float((k_exit == k).sum() * 3600.0 / iv),
        }
        for sid, length, k_enter, traversal in stretches:
            trav = traversal[k_enter == k]
            row[f"speed_{sid}_kmh"] = space_mean_speed_kmh(length, trav)
            row[f"n_{sid}"] = int(np.sum(~np.isnan(trav)))
        rows.append(row)
    return pd.DataFrame(rows)


def _approach_lanes(result: SimResult) -> dict[int, np.ndarray]:
    """Columns of ``queue_m`` per approach link."""
    net = result.network
    lane_link = net.lane_link[result.queue_lanes]
    return {int(lk): np.flatnonzero(lane_link == lk) for lk in np.unique(lane_link)}


def _mean_delay(delay_s: np.ndarray) -> float:
    """Mean control delay of the passages whose delay is known [s]; NaN without any."""
    return _mean(delay_s[~np.isnan(delay_s)])


def _frame(columns: dict[str, Sequence[object]]) -> pd.DataFrame:
    """Return a table of ``columns`` (lists, one per column), or a table without columns.

    Without rows, like ``pd.DataFrame`` of an empty list of rows.
    """
    return pd.DataFrame(columns) if next(iter(columns.values())) else pd.DataFrame([])


def approach_table(result: SimResult) -> pd.DataFrame:
    """Per junction approach: queue statistics, crossings, control delay, LOS.

    Queue length of an approach at a sample is its longest lane queue: metres
    from the stop line to the back of the rearmost vehicle slower than 5 km/h.
    Statistics run over the samples of the demand period (every 1 s).
    """
    net, sc = result.network, result.scenario
    # The samples of the demand period: the first ones (their times increase).
    n = int(np.searchsorted(result.queue_t_s, sc.duration_s, side="right"))
    qm, qn = result.queue_m[:n], result.queue_veh[:n]
    lanes = _approach_lanes(result)
    links = list(lanes)
    # Per approach: the longest lane queue and the queued vehicles at each sample.
    q_all = [qm[:, cols].max(axis=1) if n else np.zeros(0) for cols in lanes.values()]
    nveh_all = [qn[:, cols].sum(axis=1) if n else np.zeros(0) for cols in lanes.values()]
    p = result.passages
    crossings, delays = [], []
    for link in links:
        sel = p["link"] == link
        crossings.append(int(sel.sum()))
        delays.append(_mean_delay(p["control_delay_s"][sel]))
    return _frame({
        "junction": [net.junction_ids[int(net.link_junction[link])] for link in links],
        "approach_link": [net.link_ids[link] for link in links],
        "lanes": [len(c) for c in lanes.values()],
        "queue_mean_m": [_mean(q) for q in q_all],
        "queue_p95_m": [float(np.percentile(q, 95)) if q.size else np.nan for q in q_all],
        "queue_max_m": [float(q.max()) if q.size else np.nan for q in q_all],
        "queued_veh_max": [int(q.max()) if q.size else 0 for q in nveh_all],
        "crossings": crossings,
        "control_delay_s": delays,
        "los": [str(x) for x in level_of_service(np.array(delays, dtype=float))],
    })


def movement_table(result: SimResult) -> pd.DataFrame:
    """Per junction, approach and movement: vehicles, control delay and LOS."""
    net = result.network
    p = result.passages
    # One number per (link, movement) pair, in the pairs' sorted order
    # (movement codes from EXIT, -1, up to len(MOVEMENTS) - 1), and each
    # passage's pair: cheaper than sorting the pairs themselves.
    base = len(MOVEMENTS) + 1
    codes, pair = np.unique(p["link"] * base + (p["movement"] + 1), return_inverse=True)
    keys = [(link, move - 1) for link, move in (divmod(int(c), base) for c in codes)]
    vehicles, delays = [], []
    for k in range(len(keys)):
        sel = pair == k
        vehicles.append(int(sel.sum()))
        delays.append(_mean_delay(p["control_delay_s"][sel]))
    return _frame({
        "junction": [net.junction_ids[int(net.link_junction[link])] for link, _ in keys],
        "approach_link": [net.link_ids[link] for link, _ in keys],
        "movement": [MOVEMENTS[mv] for _, mv in keys],
        "vehicles": vehicles,
        "control_delay_s": delays,
        "los": [str(x) for x in level_of_service(np.array(delays, dtype=float))],
    })


def _period_kpis(result: SimResult, trips: _Trips, motor: _Trips, t0: float, t1: float
                 ) -> dict[str, float]:
    """KPIs of vehicles (and pedestrians) arriving in [t0, t1) (simulation seconds).

    The vehicle KPIs are those of motor vehicles (buses included, ``motor``);
    cyclists and pedestrians have their own, and every person counts in the
    person-hour KPIs (:func:`_road_user_kpis`).
    """
    out = _motor_kpis(result, motor, t0, t1)
    out.update(_road_user_kpis(result, trips, t0, t1))
    return out


def _road_user_kpis(result: SimResult, veh: _Trips, t0: float, t1: float
                    ) -> dict[str, float]:
    """Person-hours of time loss per road-user group, and the cyclist and pedestrian KPIs.

    Groups: motor-vehicle occupants (``mode`` motor, time loss × occupancy),
    bus passengers (``mode`` bus), cyclists, pedestrians (their delay at the
    crossing); only groups the scenario has get keys, except the total.
    """
    sc = result.scenario
    arriving = (veh["arrival_s"] >= t0) & (veh["arrival_s"] < t1)
    d = veh.take(arriving & veh["completed"], ("time_loss_s", "occupancy"))
    person_h = d["time_loss_s"] * d["occupancy"] / 3600.0
    persons = float(d["occupancy"].sum())
    total_h = float(person_h.sum())
    out: dict[str, float] = {}
    modes = {c.mode for c in sc.vehicle_classes}
    for mode, key in (("motor", "motorist"), ("bus", "bus_passenger"), ("bicycle", "cyclist")):
        if mode in modes:
            out[f"{key}_time_loss_person_h"] = float(person_h[d.mode == mode].sum())
    if "bicycle" in modes:
        bike = veh.mode == "bicycle"
        bikes_in = arriving & bike
        b = veh.take(bikes_in & veh["completed"], ("time_loss_s", "stops"))
        hours = (t1 - t0) / 3600.0
        out["cyclists_arrived"] = float(bikes_in.sum())
        out["cyclist_mean_time_loss_s"] = _mean(b["time_loss_s"])
        out["cyclist_stops"] = _mean(b["stops"])
        bike_exit = veh["exit_s"][bike]
        out["cyclist_throughput_ph"] = float(((bike_exit >= t0) & (bike_exit < t1)).sum()
                                             / hours)
    peds = result.pedestrians
    if peds is not None:
        p_sel = (peds["arrival_s"] >= t0) & (peds["arrival_s"] < t1)
        delay = peds["delay_s"][p_sel]
        done = delay[~np.isnan(delay)]
        out["pedestrians_arrived"] = float(p_sel.sum())
        out["pedestrian_mean_delay_s"] = _mean(done)
        out["pedestrian_delay_person_h"] = float(done.sum() / 3600.0)
        total_h += float(done.sum() / 3600.0)
        persons += float(len(done))
    out["total_time_loss_person_h"] = total_h
    out["mean_time_loss_per_person_s"] = total_h * 3600.0 / persons if persons else np.nan
    return out


def _motor_kpis(result: SimResult, veh: _Trips, t0: float, t1: float) -> dict[str, float]:
    """KPIs of motor vehicles arriving in [t0, t1) (simulation seconds)."""
    sel = (veh["arrival_s"] >= t0) & (veh["arrival_s"] < t1)
    done = sel & veh["completed"]
    d = veh.take(done, ("time_loss_s", "travel_time_s", "entry_wait_s", "stops"))
    hours = (t1 - t0) / 3600.0
    co2_g = veh["co2_g"][sel]
    out = {
        "vehicles_arrived": float(sel.sum()),
        "vehicles_completed": float(done.sum()),
        "mean_time_loss_s": _mean(d["time_loss_s"]),
        "total_time_loss_veh_h": float(d["time_loss_s"].sum() / 3600.0),
        "mean_travel_time_s": _mean(d["travel_time_s"]),
        "mean_entry_wait_s": _mean(d["entry_wait_s"]),
        "stops_per_veh": _mean(d["stops"]),
        "throughput_vph": float(((veh["exit_s"] >= t0) & (veh["exit_s"] < t1)).sum() / hours),
        "co2_kg": float(co2_g.sum() / 1000.0),
        "co2_g_per_veh_km": float(co2_g.sum() / max(veh["distance_m"][sel].sum() / 1000.0,
                                                    1e-12)) if sel.any() else np.nan,
        "fuel_l": float(veh["fuel_l"][sel].sum()),
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
    trips = _trips(result, vehicles)
    return _summary_frame(result, _summary_kpis(result, trips, trips.motor()))


def _summary_kpis(result: SimResult, trips: _Trips, motor: _Trips
                  ) -> dict[str, dict[str, float]]:
    """Return the KPIs of :func:`summary_table` per period (``period``, ``peak_hour``).

    ``motor``: the motor vehicles' trips (:meth:`_Trips.motor`).
    """
    sc = result.scenario
    periods = {"period": (0.0, sc.duration_s)}
    if sc.peak_clock_s is not None:
        periods["peak_hour"] = (sc.peak_clock_s[0] - sc.start_clock_s,
                                sc.peak_clock_s[1] - sc.start_clock_s)
    return {name: _period_kpis(result, trips, motor, a, b) for name, (a, b) in periods.items()}


def _summary_frame(result: SimResult, cols: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Return :func:`summary_table` given its :func:`_summary_kpis`."""
    periods = list(cols)
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
    trip = _trip_columns(result)
    trips = _Trips.of_result(result, trip)
    motor = trips.motor()
    summary = _summary_frame(result, _summary_kpis(result, trips, motor))
    intervals = _interval_frame(result, motor)
    del trips, motor   # before the vehicle table is built: the peak of a run's memory
    peds = {}
    if result.pedestrians is not None:
        peds["pedestrians"] = pd.DataFrame(result.pedestrians)
    return {
        "summary": summary,
        "vehicles": _vehicle_frame(result, trip, routes),
        "intervals": intervals,
        "approaches": approach_table(result),
        "movements": movement_table(result),
        "switches": _switch_table(result),
        **peds,
    }


def _switch_table(result: SimResult) -> pd.DataFrame:
    """Every program switch of the run, with its clock time."""
    return pd.DataFrame(
        [{"t_s": s.t_s, "clock": format_clock(result.scenario.start_clock_s + s.t_s),
          "junction": s.junction, "from_program": s.from_program,
          "to_program": s.to_program, "hold_s": s.hold_s} for s in result.switches],
        columns=["t_s", "clock", "junction", "from_program", "to_program", "hold_s"])


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
    summ = tables["summary"]
    kpis = summ["kpi"].tolist()
    summary = {c: dict(zip(kpis, summ[c].tolist(), strict=True))
               for c in ("period", "peak_hour") if c in summ.columns}
    return _replication_kpis(result, summary, _Trips.of_table(tables["vehicles"]).motor(),
                             tables["approaches"])


def replication_record(result: SimResult) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Return what an evaluation keeps of one run: its :data:`EVAL_KPIS` and small tables.

    The KPIs equal :func:`replication_kpis` of :func:`run_tables`, and the
    tables (``intervals``, ``approaches``, ``movements``, ``switches``) are
    those of :func:`run_tables`, without building the vehicle and summary
    tables the KPIs come from.
    """
    trips = _Trips.of_result(result)
    motor = trips.motor()
    tables = {"intervals": _interval_frame(result, motor),
              "approaches": approach_table(result),
              "movements": movement_table(result),
              "switches": _switch_table(result)}
    kpis = _replication_kpis(result, _summary_kpis(result, trips, motor), motor,
                             tables["approaches"])
    return kpis, tables


def _replication_kpis(result: SimResult, summary: dict[str, dict[str, float]], motor: _Trips,
                      approaches: pd.DataFrame) -> dict[str, float]:
    """Return the :data:`EVAL_KPIS` from the summary KPIs per period (:func:`_summary_kpis`).

    ``motor``: the motor vehicles' trips; ``approaches``: :func:`approach_table`.
    """
    sc = result.scenario
    period = summary["period"]
    peak = summary.get("peak_hour", period)
    out: dict[str, float] = {
        "vehicles_arrived": float(period["vehicles_arrived"]),
        "total_time_loss_veh_h": float(period["total_time_loss_veh_h"]),
        "mean_time_loss_s": float(period["mean_time_loss_s"]),
        "mean_time_loss_peak_s": float(peak["mean_time_loss_s"]),
        "mean_travel_time_s": float(period["mean_travel_time_s"]),
        "stops_per_veh": float(period["stops_per_veh"]),
        "throughput_vph": float(period["throughput_vph"]),
    }
    if sc.stretches:
        key = f"speed_{sc.stretches[0].id}_kmh"
        out["stretch_speed_peak_kmh"] = float(peak[key])
        out["stretch_speed_period_kmh"] = float(period[key])
    else:
        out["stretch_speed_peak_kmh"] = out["stretch_speed_period_kmh"] = float("nan")
    out["queue_mean_m"], out["queue_p95_m"] = _monitored_queue(result, approaches)
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
        out[key] = float(period[key]) if key in period else float("nan")
    return out


def _monitored_queue(result: SimResult, approaches: pd.DataFrame) -> tuple[float, float]:
    """Mean and 95th percentile queue of the monitored approach [m]; NaN without one."""
    app = monitored_approach(result)
    if app is not None:
        links = approaches["approach_link"].tolist()
        link = result.network.link_ids[app]
        if link in links:
            row = links.index(link)
            return (float(approaches["queue_mean_m"].iloc[row]),
                    float(approaches["queue_p95_m"].iloc[row]))
    return float("nan"), float("nan")
