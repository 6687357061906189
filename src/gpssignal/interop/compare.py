"""Fixed timing in gpssignal and in SUMO on the same days: the cross-check table.

For each seed the scenario is exported with that day's vehicles
(:func:`gpssignal.interop.sumo_export.export_sumo`: same arrival times, routes,
classes and speed factors), SUMO runs it, and both simulators' KPIs are
computed with the same definitions:

* ``mean_time_loss_s``: gpssignal's time loss; SUMO's ``timeLoss +
  departDelay`` (tripinfo), vehicles arriving in the demand period that
  completed their trip;
* ``throughput_vph``: vehicles leaving the network during the demand period,
  per hour;
* ``stretch_speed_peak_kmh``: stretch length ÷ mean traversal time; SUMO's
  from its E3 detector (vehicles leaving the stretch in the peak hour,
  gpssignal: entering it; a small difference at the hour's edges);
* ``co2_g_per_veh_km``: CO₂ in the network ÷ distance driven (SUMO's
  ``CO2_abs`` and ``routeLength``; gpssignal without the entry-wait idling,
  which SUMO does not count).

These four are motor-vehicle KPIs (buses included, bicycles not) on both
sides, as gpssignal's own vehicle KPIs. Cyclists (vehicle classes with
``mode = "bicycle"``, exported as SUMO's ``bicycle`` vClass on their cycle
tracks) have their own rows, with the same definitions:

* ``cyclists``: cyclists arriving in the demand period;
* ``cyclist_mean_time_loss_s``: their mean time loss (SUMO: ``timeLoss +
  departDelay``), completed trips;
* ``cyclist_time_loss_person_h``: the sum of it × occupancy [person·h].

Pedestrians (scenarios whose crossings have pedestrians are exported with
them, ``export_sumo(pedestrians=True)``: the same pedestrians, crossings on
their group's signal):

* ``pedestrians``: pedestrians arriving in the demand period (SUMO: persons
  departing in it, about 2-3 s before they reach the kerb);
* ``pedestrian_mean_delay_s``: their mean wait before crossing; gpssignal's
  delay (kerb and refuge island, docs/definitions.md), SUMO's
  ``waitingTime`` of the walk (``personinfo``; time stopped, below 0.1 m/s),
  pedestrians who crossed. SUMO counts a wait from its first whole step
  stopped and inserts a person at the next step, so a pedestrian who waits
  waits about 1 s less there. Pushbutton greens are green every cycle in
  SUMO (a static program cannot skip them) and SUMO has no refuge island
  (its pedestrians finish the crossing on red): both make SUMO's delay
  lower where they apply.

Per junction approach (:func:`gpssignal_approaches`, :func:`sumo_approaches`):

* ``queue_mean_m``: gpssignal's ``queue_mean_m`` (docs/definitions.md,
  "Queues"): every 1 s, each lane's queue (from the stop line back over
  vehicles slower than 5 km/h with at most 20 m clear gaps), the approach's
  longest lane queue, averaged over the demand period. SUMO: an E2 detector
  over each whole lane with the same thresholds (``speedThreshold`` 5 km/h,
  ``timeThreshold`` 0, ``jamThreshold`` 20 m) and 1 s intervals; its
  ``meanMaxJamLengthInMeters`` (the lane's longest jam, front of the first to
  back of the last halting vehicle, averaged over the interval's steps) is
  the lane's queue, then the longest lane per second, averaged over the
  demand period. The two differ by the gap between the stop line and the
  first vehicle (in gpssignal's length, not SUMO's) and by SUMO counting an
  upstream jam that is longer than the one at the stop line.
* ``discharge_vph``: saturated stop-line discharge flow [veh/h/lane], the
  HCM headway method of :func:`saturation_flow_vph` on each lane's stop-line
  crossing times (gpssignal: its passages; SUMO: an instant induction loop
  0.1 m before the stop line), headways pooled over the approach's lanes:
  3600 / mean headway from the 5th vehicle of a standing platoon on, i.e.
  the flow while a queue discharges during green. ``discharge_headways`` is
  the number of headways used (NaN flow without any).

Per entry approach and movement (:func:`compare_fixed_movements`), vehicles
grouped by the link they enter on and their movement at its stop line:

* ``vehicles``: vehicles arriving in the demand period;
* ``mean_time_loss_s``: their mean time loss, as ``mean_time_loss_s`` above
  (whole trip, completed trips);
* ``throughput_vph``: their crossings of that stop line in a time window
  (default the demand period), per hour; gpssignal: its passages, SUMO: the
  instant induction loops 0.1 m before the stop line (``stopline.xml``,
  which names the vehicle). Under oversaturation this is the movement's
  discharge, set by the junction and not by the demand.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gpssignal.control.gps import GpsModel
from gpssignal.errors import ScenarioError
from gpssignal.evaluate.metrics import (
    approach_table,
    replication_kpis,
    run_tables,
    vehicle_table,
)
from gpssignal.experiment.run import ControllerSpec, RunSpec, run_one, run_scenario
from gpssignal.interop.sumo import sumo_binary
from gpssignal.interop.sumo_export import export_sumo
from gpssignal.model.scenario import Scenario

if TYPE_CHECKING:
    from gpssignal.sim.engine import SimResult

__all__ = [
    "APPROACH_COMPARED",
    "COMPARED",
    "MOVEMENT_COMPARED",
    "compare_demand_sweep",
    "compare_fixed",
    "compare_fixed_approaches",
    "compare_fixed_movements",
    "compare_gps",
    "compare_saturation_flow",
    "fcd_emission_check",
    "gpssignal_approaches",
    "gpssignal_kpis",
    "has_pedestrians",
    "run_sumo",
    "saturation_flow_vph",
    "scaled_day",
    "sumo_approaches",
    "sumo_kpis",
    "sweep_approach_summary",
    "sweep_summary",
    "without_road_users",
]

COMPARED = ["vehicles", "mean_time_loss_s", "throughput_vph", "stretch_speed_peak_kmh",
            "co2_g_per_veh_km", "cyclists", "cyclist_mean_time_loss_s",
            "cyclist_time_loss_person_h", "pedestrians", "pedestrian_mean_delay_s"]

#: Per-approach KPIs of :func:`gpssignal_approaches` and :func:`sumo_approaches`.
APPROACH_COMPARED = ["queue_mean_m", "discharge_vph"]

#: Per-movement KPIs of :func:`compare_fixed_movements`.
MOVEMENT_COMPARED = ["vehicles", "mean_time_loss_s", "throughput_vph"]


def run_sumo(config: Path) -> float:
    """Run SUMO on a config; return its wall time [s]."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(sumo_binary("sumo")), "-c", str(config),
                           "--tripinfo-output.write-unfinished", "true"],
                          capture_output=True, text=True, cwd=config.parent, check=False)
    if proc.returncode != 0:
        raise ScenarioError(f"SUMO failed on {config}: {proc.stderr.strip()[-300:]}")
    return time.perf_counter() - t0


def sumo_kpis(folder: Path, scenario: Scenario) -> dict[str, float]:
    """Return the compared KPIs from SUMO's outputs in ``folder``.

    Motor vehicles and cyclists are told apart by their vType (the class
    names of the export).
    """
    bike_types = {c.name for c in scenario.vehicle_classes if c.mode == "bicycle"}
    occupancy = {c.name: c.occupancy for c in scenario.vehicle_classes}
    rows = []
    for t in ET.parse(folder / "tripinfo.xml").getroot().iter("tripinfo"):
        em = t.find("emissions")
        vtype = t.get("vType", "")
        rows.append({"depart": float(t.get("depart", "nan")),
                     "delay": float(t.get("departDelay", "0")),
                     "arrival": float(t.get("arrival", "-1")),
                     "loss": float(t.get("timeLoss", "nan")),
                     "length": float(t.get("routeLength", "0")),
                     "co2": float(em.get("CO2_abs", "0")) if em is not None else 0.0,
                     "bicycle": vtype in bike_types, "occupancy": occupancy.get(vtype, 1.0)})
    cols = ["depart", "delay", "arrival", "loss", "length", "co2", "bicycle", "occupancy"]
    every = pd.DataFrame(rows, columns=cols)
    d = scenario.duration_s
    bikes = every[every["bicycle"].astype(bool)]
    df = every[~every["bicycle"].astype(bool)]
    arrived = df["depart"] - df["delay"] < d
    done = arrived & (df["arrival"] >= 0)
    out = {
        "vehicles": float(arrived.sum()),
        "mean_time_loss_s": float((df.loc[done, "loss"] + df.loc[done, "delay"]).mean()),
        "throughput_vph": float(((df["arrival"] >= 0) & (df["arrival"] < d)).sum()
                                / (d / 3600.0)),
        "co2_g_per_veh_km": float(df.loc[arrived, "co2"].sum() / 1000.0
                                  / (df.loc[arrived, "length"].sum() / 1000.0)),
        **_cyclist_kpis(bikes["depart"] - bikes["delay"], bikes["arrival"] >= 0,
                        bikes["loss"] + bikes["delay"], bikes["occupancy"], d,
                        any(c.mode == "bicycle" for c in scenario.vehicle_classes)),
        **_sumo_pedestrian_kpis(folder / "tripinfo.xml", d),
    }
    speed = float("nan")
    if scenario.stretches:
        # The peak hour, or the whole period without one (as gpssignal's KPI).
        a, b = ((scenario.peak_clock_s[0] - scenario.start_clock_s,
                 scenario.peak_clock_s[1] - scenario.start_clock_s)
                if scenario.peak_clock_s is not None else (0.0, scenario.duration_s))
        tt, n = 0.0, 0
        for iv in ET.parse(folder / "stretch.xml").getroot().iter("interval"):
            if a <= float(iv.get("begin", "0")) < b:
                k = int(iv.get("vehicleSum", "0"))
                if k > 0:
                    tt += float(iv.get("meanTravelTime", "0")) * k
                    n += k
        if n:
            speed = _stretch_length_m(scenario) / (tt / n) * 3.6
    out["stretch_speed_peak_kmh"] = speed
    return out


def _sumo_pedestrian_kpis(tripinfo: Path, duration_s: float) -> dict[str, float]:
    """``pedestrians`` and ``pedestrian_mean_delay_s`` from SUMO's ``personinfo`` records.

    NaN for both when the run had no persons (an export without pedestrians).
    """
    depart, wait = [], []
    for p in ET.parse(tripinfo).getroot().iter("personinfo"):
        walk = p.find("walk")
        depart.append(float(p.get("depart", "nan")))
        done = walk is not None and float(walk.get("arrival", "-1")) >= 0
        wait.append(float(walk.get("waitingTime", "nan")) if done and walk is not None
                    else float("nan"))
    if not depart:
        return {"pedestrians": float("nan"), "pedestrian_mean_delay_s": float("nan")}
    t, w = np.array(depart), np.array(wait)
    sel = w[(t < duration_s) & ~np.isnan(w)]
    return {"pedestrians": float((t < duration_s).sum()),
            "pedestrian_mean_delay_s": float(sel.mean()) if sel.size else float("nan")}


def has_pedestrians(scenario: Scenario) -> bool:
    """Tell whether any crossing of ``scenario`` has pedestrians (a positive flow)."""
    return any(q > 0 for j in scenario.junctions for c in j.crossings for q in c.flow_pph)


def _cyclist_kpis(arrival_s: pd.Series, completed: pd.Series, loss_s: pd.Series,
                  occupancy: pd.Series, duration_s: float, has_cyclists: bool
                  ) -> dict[str, float]:
    """Cyclist KPIs of the module docstring; NaN when the scenario has no bicycle class.

    ``arrival_s``: arrival at the network [s]; ``completed``: trip finished;
    ``loss_s``: time loss including the wait to enter [s]; ``occupancy``:
    persons per bicycle.
    """
    if not has_cyclists:
        return {"cyclists": float("nan"), "cyclist_mean_time_loss_s": float("nan"),
                "cyclist_time_loss_person_h": float("nan")}
    arrived = arrival_s < duration_s
    done = arrived & completed.astype(bool)
    return {"cyclists": float(arrived.sum()),
            "cyclist_mean_time_loss_s": float(loss_s[done].mean()) if done.any()
            else float("nan"),
            "cyclist_time_loss_person_h": float((loss_s[done] * occupancy[done]).sum()
                                                / 3600.0)}


def _gpssignal_compared(res: SimResult, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Return the compared KPIs of one gpssignal run (definitions in the module docstring)."""
    k = replication_kpis(res, tables)
    veh = tables["vehicles"]
    motor = veh[veh["mode"] != "bicycle"]
    bikes = veh[veh["mode"] == "bicycle"]
    co2_net = float((motor["co2_g"] - motor["co2_entry_wait_g"]).sum())
    km = float(motor["distance_m"].sum()) / 1000.0
    return {"vehicles": k["vehicles_arrived"], "mean_time_loss_s": k["mean_time_loss_s"],
            "throughput_vph": k["throughput_vph"],
            "stretch_speed_peak_kmh": k["stretch_speed_peak_kmh"],
            "co2_g_per_veh_km": co2_net / km,
            **_cyclist_kpis(bikes["arrival_s"], bikes["completed"], bikes["time_loss_s"],
                            bikes["occupancy"], res.scenario.duration_s,
                            any(c.mode == "bicycle" for c in res.scenario.vehicle_classes)),
            "pedestrians": (float((res.pedestrians["arrival_s"] < res.scenario.duration_s).sum())
                            if res.pedestrians is not None else float("nan")),
            "pedestrian_mean_delay_s": k["pedestrian_mean_delay_s"]}


def _stretch_length_m(scenario: Scenario) -> float:
    """Length of the first stretch (as :func:`gpssignal.evaluate.metrics.stretch_length_m`)."""
    st = scenario.stretches[0]
    lengths = [next(lk.length_m for lk in scenario.links if lk.id == x) for x in st.links]
    end = st.end_m if st.end_m is not None else lengths[-1]
    return float(sum(lengths[:-1]) - st.start_m + end)


def gpssignal_kpis(scenario: Scenario, seed: int) -> tuple[dict[str, float], float]:
    """Return the compared KPIs of gpssignal's fixed-timing run of ``seed``, and its wall time."""
    k, wall, _ = _gpssignal_run(scenario, seed)
    return k, wall


def _gpssignal_run(scenario: Scenario, seed: int
                   ) -> tuple[dict[str, float], float, pd.DataFrame]:
    """Return the compared KPIs, wall time and approach table of the fixed-timing run."""
    t0 = time.perf_counter()
    res, _ = run_scenario(scenario, "fixed", seed=seed, record_trajectories=False)
    wall = time.perf_counter() - t0
    tables = run_tables(res)
    return (_gpssignal_compared(res, tables), wall,
            gpssignal_approaches(res, tables["approaches"]))


def _discharge(lane_crossings: list[np.ndarray]) -> tuple[float, int]:
    """Saturated discharge flow [veh/h/lane] from the crossing times of each lane."""
    h = np.concatenate([_platoon_headways(c) for c in lane_crossings] or [np.zeros(0)])
    return (float(3600.0 / h.mean()) if h.size else float("nan")), int(h.size)


def gpssignal_approaches(res: SimResult, approaches: pd.DataFrame | None = None
                         ) -> pd.DataFrame:
    """Per approach link: ``queue_mean_m``, ``discharge_vph``, ``discharge_headways``.

    Definitions in the module docstring; ``approaches`` is the run's approach
    table (:func:`gpssignal.evaluate.metrics.approach_table`) if already made.
    """
    net, p = res.network, res.passages
    appr = approach_table(res) if approaches is None else approaches
    rows = []
    for _, r in appr.iterrows():
        link = net.link_index(str(r["approach_link"]))
        lanes = [int(x) for x in net.link_lanes[link]]
        flow, n = _discharge([p["t_s"][p["lane"] == ln] for ln in lanes])
        rows.append({"approach": str(r["approach_link"]),
                     "queue_mean_m": float(r["queue_mean_m"]), "discharge_vph": flow,
                     "discharge_headways": n})
    return pd.DataFrame(rows, columns=["approach", *APPROACH_COMPARED, "discharge_headways"])


def sumo_approaches(folder: Path, scenario: Scenario) -> pd.DataFrame:
    """Per approach link, from SUMO's ``queue.xml`` (E2) and ``stopline.xml`` (instant E1).

    Same columns and definitions as :func:`gpssignal_approaches`.
    """
    d = scenario.duration_s
    jam: dict[tuple[str, float], float] = {}
    for _, el in ET.iterparse(folder / "queue.xml"):
        if el.tag == "interval":
            _, link, _ = (el.get("id") or "||").split("|")
            t = float(el.get("begin", "0"))
            if t < d:
                q = float(el.get("meanMaxJamLengthInMeters", "0"))
                jam[(link, t)] = max(jam.get((link, t), 0.0), q)
            el.clear()
    crossings: dict[tuple[str, int], list[float]] = {}
    for el in ET.parse(folder / "stopline.xml").getroot().iter("instantOut"):
        if el.get("state") == "enter":
            _, link, lane = (el.get("id") or "||0").split("|")
            crossings.setdefault((link, int(lane)), []).append(float(el.get("time", "nan")))
    rows = []
    for lk in scenario.links:
        if lk.to_arm is None:
            continue
        qs = [v for (x, _), v in jam.items() if x == lk.id]
        flow, n = _discharge([np.array(crossings.get((lk.id, k), []))
                              for k in range(len(lk.lanes))])
        rows.append({"approach": lk.id, "queue_mean_m": float(np.mean(qs)) if qs else np.nan,
                     "discharge_vph": flow, "discharge_headways": n})
    return pd.DataFrame(rows, columns=["approach", *APPROACH_COMPARED, "discharge_headways"])


def compare_fixed(scenario: Scenario, seeds: list[int], work_dir: str | Path) -> pd.DataFrame:
    """One row per (seed, simulator) with the compared KPIs and wall time."""
    return compare_fixed_approaches(scenario, seeds, work_dir)[0]


def compare_fixed_approaches(scenario: Scenario, seeds: list[int], work_dir: str | Path
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """As :func:`compare_fixed`, and one row per (seed, simulator, approach).

    A scenario whose crossings have pedestrians is exported with them
    (:func:`has_pedestrians`). The second table has the per-approach queue
    and discharge flow
    (:func:`gpssignal_approaches`, :func:`sumo_approaches`). SUMO's 1 s queue
    output (tens of MB) is deleted once read.
    """
    rows, appr = [], []
    for s in seeds:
        g, gw, ga = _gpssignal_run(scenario, s)
        rows.append({"seed": s, "simulator": "gpssignal", **g, "wall_s": gw})
        appr.append(ga.assign(seed=s, simulator="gpssignal"))
        ex = export_sumo(scenario, Path(work_dir) / f"seed{s}", seed=s,
                         pedestrians=has_pedestrians(scenario))
        sw = run_sumo(ex.config)
        rows.append({"seed": s, "simulator": "sumo", **sumo_kpis(ex.folder, scenario),
                     "wall_s": sw})
        appr.append(sumo_approaches(ex.folder, scenario).assign(seed=s, simulator="sumo"))
        (ex.folder / "queue.xml").unlink(missing_ok=True)
    a = pd.concat(appr, ignore_index=True)
    return pd.DataFrame(rows), a[["seed", "simulator", *[c for c in a.columns
                                                         if c not in ("seed", "simulator")]]]


def _movement_rows(scenario: Scenario, veh: pd.DataFrame, loss: pd.Series,
                   crossed: pd.Series, window: tuple[float, float]) -> pd.DataFrame:
    """Per entry approach and movement: the KPIs of :func:`compare_fixed_movements`.

    ``veh``: gpssignal's vehicle table (entry link, first movement, arrival);
    ``loss``: time loss per vehicle id (completed trips); ``crossed``: when
    each vehicle crossed its entry link's stop line [s].
    """
    d = scenario.duration_s
    a, b = window
    approaches = {lk.id for lk in scenario.links if lk.to_arm is not None}
    v = veh.set_index("vehicle")
    v = v[v["entry_link"].isin(approaches)]
    arrived = v["arrival_s"] < d
    lost = loss.reindex(v.index)
    t = crossed.reindex(v.index)
    rows = []
    for (link, move), ids in v.groupby(["entry_link", "first_movement"]).groups.items():
        sel = arrived.loc[ids]
        tl = lost.loc[ids][sel]
        tc = t.loc[ids]
        rows.append({"approach": link, "movement": move, "vehicles": int(sel.sum()),
                     "mean_time_loss_s": float(tl.mean()) if tl.notna().any() else np.nan,
                     "throughput_vph": float(((tc >= a) & (tc < b)).sum()) * 3600.0 / (b - a)})
    return pd.DataFrame(rows, columns=["approach", "movement", *MOVEMENT_COMPARED])


def compare_fixed_movements(scenario: Scenario, seeds: list[int], work_dir: str | Path,
                            window: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per (seed, simulator, entry approach, movement): the movement KPIs.

    Definitions in the module docstring; ``window`` [s] is where stop-line
    crossings count toward ``throughput_vph`` (default the demand period).
    """
    win = (0.0, float(scenario.duration_s)) if window is None else window
    frames = []
    for s in seeds:
        res, _ = run_scenario(scenario, "fixed", seed=s, record_trajectories=False)
        veh = vehicle_table(res)
        p = res.passages
        # A vehicle's crossing of its entry link's stop line.
        at_entry = p["link"] == res.arrivals.route_links[p["vid"], 0]
        g_cross = pd.Series(p["t_s"][at_entry]).groupby(p["vid"][at_entry]).min()
        entry_of = dict(zip(veh["vehicle"], veh["entry_link"], strict=True))
        g_loss = veh.set_index("vehicle")["time_loss_s"].dropna()
        frames.append(_movement_rows(scenario, veh, g_loss, g_cross, win).assign(
            seed=s, simulator="gpssignal"))
        ex = export_sumo(scenario, Path(work_dir) / f"mv{s}", seed=s)
        run_sumo(ex.config)
        loss = {}
        for t in ET.parse(ex.folder / "tripinfo.xml").getroot().iter("tripinfo"):
            if float(t.get("arrival", "-1")) >= 0:
                loss[int(t.get("id", "-1"))] = (float(t.get("timeLoss", "nan"))
                                                + float(t.get("departDelay", "0")))
        cross: dict[int, float] = {}
        for el in ET.parse(ex.folder / "stopline.xml").getroot().iter("instantOut"):
            if el.get("state") == "enter":
                vid = int(el.get("vehID", "-1"))
                link = (el.get("id") or "||").split("|")[1]
                if link == entry_of[vid] and vid not in cross:
                    cross[vid] = float(el.get("time", "nan"))
        (ex.folder / "queue.xml").unlink(missing_ok=True)
        frames.append(_movement_rows(scenario, veh, pd.Series(loss, dtype=float),
                                     pd.Series(cross, dtype=float), win).assign(
            seed=s, simulator="sumo"))
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", "simulator", "approach", "movement", *MOVEMENT_COMPARED]]


def without_road_users(scenario: Scenario, *, cyclists: bool = True,
                       pedestrians: bool = True) -> Scenario:
    """Return ``scenario`` with its cyclists' and/or pedestrians' flows set to 0.

    Links, crossings and signal groups stay as they are, so the motor
    traffic sees the same programs. SUMO has no pedestrians in the export and
    gives way to cyclists differently (docs/validation.md, "Cyclists and
    pedestrians against SUMO"): the motor-model cross-checks compare the
    scenario without them.
    """
    js = scenario.junctions
    if pedestrians:
        js = tuple(dataclasses.replace(j, crossings=tuple(dataclasses.replace(
            c, flow_pph=tuple(0.0 for _ in c.flow_pph)) for c in j.crossings)) for j in js)
    bikes = {lk.id for lk in scenario.links if lk.mode == "bicycle"} if cyclists else set()
    flows = tuple(dataclasses.replace(f, flow_vph=tuple(0.0 for _ in f.flow_vph))
                  if f.link in bikes else f for f in scenario.demand.flows)
    return dataclasses.replace(scenario, junctions=js,
                               demand=dataclasses.replace(scenario.demand, flows=flows))


def scaled_day(scenario: Scenario, scale: float, day_type: str | None) -> Scenario:
    """Return the scenario with every flow × ``scale`` and every day of type ``day_type``.

    ``day_type`` None keeps the scenario's mix; a type of the mix makes it the
    only one (frequency 1). Incident types are refused: incidents are not
    exported to SUMO (a capacity cap at a link's end has no one-to-one SUMO
    counterpart), so the two simulators would not see the same day.
    """
    import dataclasses

    from gpssignal.model.scenario import Demand

    flows = tuple(dataclasses.replace(f, flow_vph=tuple(q * scale for q in f.flow_vph))
                  for f in scenario.demand.flows)
    sc = dataclasses.replace(scenario, demand=Demand(interval_s=scenario.demand.interval_s,
                                                     flows=flows))
    if day_type is None:
        if any(d.incidents for d in sc.day_types):
            raise ScenarioError("day_type = None: the scenario's mix has incident days, "
                                "which are not exported to SUMO; name a day type")
        return sc
    types = {d.name: d for d in sc.day_types}
    if day_type not in types:
        raise ScenarioError(f"day_type = {day_type!r}: the scenario's day types are "
                            f"{', '.join(types) or 'none'}")
    if types[day_type].incidents:
        raise ScenarioError(f"day_type = {day_type!r}: incidents are not exported to SUMO")
    return dataclasses.replace(sc, day_types=(dataclasses.replace(types[day_type],
                                                                  frequency=1.0),))


def compare_demand_sweep(scenario: Scenario, scales: list[float], seeds: list[int],
                         work_dir: str | Path, day_types: list[str | None]
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare fixed timing in both simulators across the demand range.

    For every demand ``scale`` × day type × seed: the same vehicles in both
    simulators (:func:`compare_fixed_approaches`). Returns one row per (scale,
    day type, seed, simulator) with the compared KPIs and the wall time, and
    one row per (scale, day type, seed, simulator, approach) with the queue
    and discharge flow.
    """
    frames, appr = [], []
    for dt in day_types:
        for scale in scales:
            sc = scaled_day(scenario, scale, dt)
            work = Path(work_dir) / f"{dt or 'mix'}-{scale:g}"
            df, ap = compare_fixed_approaches(sc, seeds, work)
            for f in (df, ap):
                f.insert(0, "demand_scale", scale)
                f.insert(0, "day_type", dt or "mix")
            frames.append(df)
            appr.append(ap)
    return pd.concat(frames, ignore_index=True), pd.concat(appr, ignore_index=True)


def sweep_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Summarise each KPI per demand scale and day type, both simulators and the gap [%]."""
    m = df.groupby(["day_type", "demand_scale", "simulator"])[COMPARED].mean()
    g = m.xs("gpssignal", level="simulator")
    u = m.xs("sumo", level="simulator")
    out = []
    for kpi in COMPARED:
        part = pd.DataFrame({"kpi": kpi, "gpssignal": g[kpi], "sumo": u[kpi],
                             "sumo_vs_gpssignal_pct": 100 * (u[kpi] / g[kpi] - 1)})
        out.append(part.reset_index())
    return pd.concat(out, ignore_index=True)


def sweep_approach_summary(appr: pd.DataFrame) -> pd.DataFrame:
    """Per day type, demand scale and approach: each simulator's mean over seeds and the gap [%]."""
    m = appr.groupby(["day_type", "demand_scale", "approach", "simulator"])[
        APPROACH_COMPARED].mean()
    g = m.xs("gpssignal", level="simulator")
    u = m.xs("sumo", level="simulator")
    out = g.join(u, lsuffix="_gpssignal", rsuffix="_sumo")
    for k in APPROACH_COMPARED:
        out[f"{k}_pct"] = 100 * (u[k] / g[k] - 1)
    return out.reset_index()


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each KPI per simulator and the relative difference SUMO vs gpssignal.

    KPIs neither simulator has (cyclists or pedestrians of a scenario without
    them) are left out; one only gpssignal has shows NaN for SUMO.
    """
    m = df.groupby("simulator")[COMPARED].mean().T
    m = m[m.notna().any(axis=1)].copy()
    m["sumo_vs_gpssignal_pct"] = 100 * (m["sumo"] / m["gpssignal"] - 1)
    return m.reset_index(names="kpi")


def _platoon_headways(crossings_s: np.ndarray) -> np.ndarray:
    """Headways of one lane from the 5th vehicle of a platoon on (HCM; see below)."""
    h = np.diff(np.sort(np.asarray(crossings_s, dtype=float)))
    platoon = np.array([i >= 4 and bool((h[i - 4:i + 1] < 4.0).all()) for i in range(len(h))],
                       dtype=bool)
    return h[platoon] if platoon.size else np.zeros(0)


def saturation_flow_vph(crossings_s: np.ndarray) -> tuple[float, int]:
    """Saturation flow from stop-line crossing times of one lane (HCM method).

    Headways from the 5th vehicle of a platoon on (the four before it and
    itself all within 4 s of their leader): 3600 / mean headway [veh/h].
    Returns the flow and the number of headways used.
    """
    h = _platoon_headways(crossings_s)
    if not h.size:
        return float("nan"), 0
    return float(3600.0 / h.mean()), int(h.size)


def compare_saturation_flow(scenario: Scenario, link_id: str, seed: int,
                            work_dir: str | Path) -> dict[str, float]:
    """Discharge saturation flow at the stop line of a one-lane approach, both simulators."""
    res, _ = run_scenario(scenario, "fixed", seed=seed, record_trajectories=False)
    k = res.network.link_index(link_id)
    g, ng = saturation_flow_vph(res.passages["t_s"][res.passages["link"] == k])
    ex = export_sumo(scenario, Path(work_dir) / f"sat{seed}", seed=seed)
    vr = ex.folder / "vehroutes.xml"
    proc = subprocess.run([str(sumo_binary("sumo")), "-c", str(ex.config), "--vehroute-output",
                           str(vr), "--vehroute-output.exit-times", "true"],
                          capture_output=True, text=True, cwd=ex.folder, check=False)
    if proc.returncode != 0:
        raise ScenarioError(f"SUMO failed: {proc.stderr.strip()[-300:]}")
    times = []
    for r in ET.parse(vr).getroot().iter("route"):
        edges = (r.get("edges") or "").split()
        exits = (r.get("exitTimes") or "").split()
        if link_id in edges and len(exits) == len(edges):
            times.append(float(exits[edges.index(link_id)]))
    s, ns = saturation_flow_vph(np.array(times))
    return {"gpssignal_vph": g, "gpssignal_headways": ng, "sumo_vph": s, "sumo_headways": ns}


def compare_gps(scenario: Scenario, model: GpsModel, seeds: list[int],
                work_dir: str | Path) -> pd.DataFrame:
    """Return the GPS controller's benefit in each simulator, on the same days.

    One row per (seed, simulator, controller) with the compared KPIs, the
    number of program switches and probe points.
    """
    from gpssignal.interop.sumo_gps import run_gps_in_sumo

    rows = []
    for s in seeds:
        g, _ = gpssignal_kpis(scenario, s)
        rows.append({"seed": s, "simulator": "gpssignal", "controller": "fixed", **g,
                     "switches": 0, "probe_points": 0})
        out = run_one(RunSpec(scenario=scenario, controller=ControllerSpec(kind="gps", model=model),
                              seed=s, sample_probes=True))
        res, stream = out.result, out.probes
        assert stream is not None
        rows.append({"seed": s, "simulator": "gpssignal", "controller": "gps",
                     **_gpssignal_compared(res, run_tables(res)),
                     "switches": len(res.switches), "probe_points": len(stream)})
        ex = export_sumo(scenario, Path(work_dir) / f"fixed{s}", seed=s)
        run_sumo(ex.config)
        rows.append({"seed": s, "simulator": "sumo", "controller": "fixed",
                     **sumo_kpis(ex.folder, scenario), "switches": 0, "probe_points": 0})
        r = run_gps_in_sumo(scenario, model, s, Path(work_dir) / f"gps{s}")
        rows.append({"seed": s, "simulator": "sumo", "controller": "gps",
                     **sumo_kpis(r.folder, scenario), "switches": len(r.switches),
                     "probe_points": r.probe_points})
    return pd.DataFrame(rows)


def fcd_emission_check(scenario: Scenario, seed: int, work_dir: str | Path) -> pd.DataFrame:
    """SUMO's trajectories through gpssignal's emission module vs SUMO's own CO₂.

    SUMO runs the exported day with FCD output (speed and acceleration of
    every vehicle and step); gpssignal's HBEFA4 module integrates each
    vehicle's FCD rows (rate × step length); SUMO's emission device reports
    ``CO2_abs`` per vehicle in tripinfo. One row per vehicle: ``co2_sumo_g``,
    ``co2_gpssignal_g``.
    """
    from gpssignal.emissions import rates_mg_s, scenario_emissions

    ex = export_sumo(scenario, Path(work_dir) / f"fcd{seed}", seed=seed, fcd=True)
    run_sumo(ex.config)
    cls = {c.name: k for k, c in enumerate(scenario.vehicle_classes)}
    vid, v, a, c = [], [], [], []
    for _, el in ET.iterparse(ex.folder / "fcd.xml"):
        if el.tag == "vehicle":
            vid.append(int(el.get("id", "-1")))
            v.append(float(el.get("speed", "nan")))
            a.append(float(el.get("acceleration", "nan")))
            c.append(cls[el.get("type", "")])
        elif el.tag == "timestep":
            el.clear()
    em = scenario_emissions(scenario)
    rate = rates_mg_s(em, np.array(c, dtype=np.int64), np.array(v), np.array(a))
    ids = np.array(vid, dtype=np.int64)
    ours = pd.Series(rate * scenario.step_s / 1000.0).groupby(ids).sum()
    theirs = {}
    for t in ET.parse(ex.folder / "tripinfo.xml").getroot().iter("tripinfo"):
        e = t.find("emissions")
        if e is not None:
            theirs[int(t.get("id", "-1"))] = float(e.get("CO2_abs", "0")) / 1000.0
    th = pd.Series(theirs)
    both = ours.index.intersection(th.index)
    return pd.DataFrame({"vehicle": both, "co2_sumo_g": th.loc[both].to_numpy(),
                         "co2_gpssignal_g": ours.loc[both].to_numpy()})
