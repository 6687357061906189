"""``rsmp-site``: the simulator as RSMP traffic-light controllers (one site per junction).

The simulation runs in a worker thread, exactly as ``run --controller gps``
wires it (same seed streams, probe sampler, process order), except that the
GPS controller's decision process is replaced by a *lockstep* process: at
each decision instant it hands the points the feed delivers to the event
loop and waits. The site publishes them on its HTTP feed, followed by a
clock line; when the consumer asks for more (having decided, and having had
its commands answered), the simulation resumes. Plans set by ``M0002`` are
what the signal runtime gets at its next synchronisation point, as with the
simulated controller. So a supervisor that decides on this feed's clock
sees what the simulated controller saw, at the same instants, and its plans
take effect at the same moments (docs/live.md#software-in-the-loop).

``--speed F`` paces the instants at F times real time (``inf``: as fast as
the consumer reads). Faults for tests (:class:`SiteFaults`): refused
commands, a dropped connection, a silent feed. Without a supervisor for
``max_unsupervised_s`` (simulated), a junction on a commanded plan returns
to its own programming, the default plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from gpssignal.live.protocol import (
    M0002_ARGS,
    RSMP_VERSIONS,
    SXL_VERSION,
    brief,
    common_version,
    message,
    not_ack,
    rsmp_time,
    s0014_values,
)
from gpssignal.live.transport import MAX_MESSAGE_BYTES, Endpoint, MessageLog
from gpssignal.model.geo import link_geometry
from gpssignal.model.scenario import ProbeSettings, Scenario
from gpssignal.probes.io import utc_from_sim_seconds
from gpssignal.probes.sampler import ProbeFeed, ProbeSampler, probe_columns
from gpssignal.sim.controller import decision_timeout
from gpssignal.sim.engine import SimResult, Simulation

__all__ = ["SiteFaults", "SiteState", "VirtualSite", "site_ids"]

log = logging.getLogger(__name__)

#: First and longest wait between two connection attempts [s] (doubling back-off).
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 5.0
#: S0014 source of a plan set by the controller's own programming / by a supervisor.
SOURCE_OWN = "calendar_clock"
SOURCE_FORCED = "forced"
#: How long the site waits for its reconnection when an injected outage ends [s].
RECONNECT_WAIT_S = 10.0
#: How long a feed client may take to send its request head [s] (a local poller
#: sends it at once).
HTTP_HEAD_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteFaults:
    """Faults a virtual site injects (tests and demonstrations); times are simulation s.

    Parameters
    ----------
    refuse_commands : int
        Refuse the first N ``M0002`` with a MessageNotAck.
    drop_at_s, down_for_s : float
        Close every RSMP connection at the first decision instant at or
        after ``drop_at_s`` and stay away for ``down_for_s``.
    feed_silent_from_s : float
        Publish no points from then on (the clock lines go on).
    """

    refuse_commands: int = 0
    drop_at_s: float | None = None
    down_for_s: float = 0.0
    feed_silent_from_s: float | None = None


def site_ids(junction: str) -> tuple[str, str]:
    """RSMP site id and component id of a junction's virtual controller."""
    return f"GS+SIL={junction}", f"GS+SIL={junction}TC001"


@dataclass
class SiteState:
    """One junction's virtual controller."""

    junction: str
    site_id: str
    component_id: str
    plans: dict[str, int]
    default: str
    program: str                      # what the signal runtime gets at its next sync point
    source: str = SOURCE_OWN
    current: str = ""                 # the program running (reported in S0014)
    forced: bool = False
    lost_at_ms: int | None = None     # when the supervisor went away
    end: SiteEnd | None = None
    timeline: list[tuple[int, str, str]] = field(default_factory=list)


class SiteEnd(Endpoint):
    """A site's end of its RSMP connection to the supervisor."""

    def __init__(self, vs: VirtualSite, st: SiteState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer, "supervisor", vs.mlog, vs.clock_ms, vs.ack_timeout_s)
        self.vs = vs
        self.st = st
        self.subscribed: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []

    async def open(self) -> bool:
        """Send our Version and wait for its acknowledgement."""
        self._tasks.append(asyncio.create_task(self.run()))
        reply = await self.request(message(
            "Version", RSMP=[{"vers": v} for v in RSMP_VERSIONS],
            siteId=[{"sId": self.st.site_id}], SXL=SXL_VERSION))
        return reply is not None and reply["type"] == "MessageAck"

    async def handle(self, msg: dict[str, Any]) -> None:
        """Handle one valid message from the supervisor."""
        mtype = msg["type"]
        st = self.st
        if mtype == "Version":
            if self.handshake_done or common_version(msg["RSMP"]) is None:
                await self.send(not_ack(msg["mId"], "Version: already exchanged"
                                        if self.handshake_done else "no common RSMP version"))
                return
            self.version = common_version(msg["RSMP"])
            await self.ack(msg)
            self.handshake_done = True
            self._tasks.append(asyncio.create_task(self._after_version()))
        elif mtype == "Watchdog":
            await self.ack(msg)
        elif msg.get("cId") != st.component_id:
            await self.send(not_ack(msg["mId"], f"cId = {brief(msg.get('cId'))}: unknown "
                                    "component"))
        elif mtype == "AggregatedStatusRequest":
            await self.ack(msg)
            await self.send(self._aggregated())
        elif mtype in ("StatusRequest", "StatusSubscribe", "StatusUnsubscribe"):
            await self._status(msg)
        elif mtype == "CommandRequest":
            await self._command(msg)
        else:
            await self.send(not_ack(msg["mId"], f"{mtype}: a site does not accept it"))

    async def _after_version(self) -> None:
        await self.request(message("Watchdog", wTs=rsmp_time(self.clock_ms())))
        await self.request(self._aggregated())
        while not self.closed:
            await asyncio.sleep(self.vs.watchdog_s)
            if self.closed:
                return
            if await self.request(message("Watchdog", wTs=rsmp_time(self.clock_ms()))) is None:
                self.mlog.event(self.clock_ms(), self.peer, "watchdog_lost")
                await self.close()

    def _aggregated(self) -> dict[str, Any]:
        return message("AggregatedStatus", ntsOId=self.st.site_id, xNId="",
                       cId=self.st.component_id, aSTS=rsmp_time(self.clock_ms()), fP=None,
                       fS=None, se=[False] * 8)

    def _s0014(self, names: set[str] | None = None) -> list[dict[str, str]]:
        st = self.st
        values = s0014_values(st.plans[st.current or st.program], st.source)
        return [v for v in values if names is None or v["n"] in names]

    async def _status(self, msg: dict[str, Any]) -> None:
        items = msg["sS"]
        unknown = [i for i in items if i.get("sCI") != "S0014"
                   or i.get("n") not in ("status", "source")]
        if unknown:
            await self.send(not_ack(msg["mId"], f"sS = {brief(unknown[0])}: not supported "
                                    "(only S0014 status and source)"))
            return
        await self.ack(msg)
        names = {str(i["n"]) for i in items}
        if msg["type"] == "StatusUnsubscribe":
            self.subscribed -= names
            return
        if msg["type"] == "StatusSubscribe":
            self.subscribed |= names
        kind = "StatusResponse" if msg["type"] == "StatusRequest" else "StatusUpdate"
        await self.send(message(kind, ntsOId=self.st.site_id, xNId="",
                                cId=self.st.component_id, sTs=rsmp_time(self.clock_ms()),
                                sS=self._s0014(names)))

    async def status_changed(self) -> None:
        """Send S0014 to a subscribed supervisor (send on change)."""
        if self.subscribed and not self.closed and self.handshake_done:
            await self.send(message("StatusUpdate", ntsOId=self.st.site_id, xNId="",
                                    cId=self.st.component_id, sTs=rsmp_time(self.clock_ms()),
                                    sS=self._s0014(self.subscribed)))

    async def _command(self, msg: dict[str, Any]) -> None:
        st = self.st
        bad = [a for a in msg["arg"] if a.get("cCI") != "M0002" or a.get("cO") != "setPlan"
               or not isinstance(a.get("n"), str)]
        args = {a["n"]: a for a in msg["arg"] if not bad}
        if bad:
            await self.send(not_ack(msg["mId"], f"arg = {brief(bad[0])}: only M0002 setPlan is "
                                    "supported"))
            return
        missing = [n for n in M0002_ARGS if n not in args]
        if missing:
            await self.send(not_ack(msg["mId"], f"M0002: missing argument {missing[0]!r}"))
            return
        if args["securityCode"].get("v") != self.vs.security_code:
            await self.send(not_ack(msg["mId"], "M0002: wrong security code"))
            return
        status = args["status"].get("v")
        plan = str(args["timeplan"].get("v"))
        program = next((p for p, n in st.plans.items() if str(n) == plan), None)
        if status not in ("True", "False") or program is None:
            await self.send(not_ack(msg["mId"], f"M0002: status = {brief(status)}, timeplan = "
                                    f"{brief(plan)}: status must be True/False and the plan one "
                                    f"of {sorted(st.plans.values())}"))
            return
        if self.vs.refused < self.vs.faults.refuse_commands:
            self.vs.refused += 1
            await self.send(not_ack(msg["mId"], "M0002: refused (fault injected)"))
            return
        await self.ack(msg)
        self.vs.set_program(st, program if status == "True" else st.default, status == "True")
        await self.send(message(
            "CommandResponse", ntsOId=st.site_id, xNId="", cId=st.component_id,
            cTS=rsmp_time(self.clock_ms()),
            rvs=[{"cCI": "M0002", "n": n, "v": args[n]["v"], "age": "recent"}
                 for n in M0002_ARGS]))

    async def close(self) -> None:
        """Close the connection and stop its tasks."""
        await super().close()
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()


class _LockstepController:
    """The simulation's controller: plans from RSMP, decision instants handed out and awaited.

    Its process keeps the timing of :class:`gpssignal.control.gps.GpsController`
    (same first instant, same interval, same place in the event order).
    """

    name = "gps"

    def __init__(self, vs: VirtualSite) -> None:
        self.vs = vs

    def attach(self, sim: Simulation) -> None:
        sim.add_process(self._process)

    def _process(self, env: Any) -> Any:
        vs = self.vs
        step_ms = vs.step_ms
        first = -(-vs.t0_ms // step_ms) * step_ms
        now_ms = first
        wait = (first - vs.t0_ms) / 1000.0
        if wait > 0:
            yield decision_timeout(env, wait)
        while True:
            pts = vs.feed.deliver((now_ms - vs.t0_ms) / 1000.0)
            vs.instant(now_ms, pts)
            now_ms += step_ms
            yield decision_timeout(env, step_ms / 1000.0)

    def requested_program(self, junction_id: str, clock_s: float) -> str:
        return self.vs.states[junction_id].program


class VirtualSite:
    """The simulated junctions as RSMP sites, with their probe feed on HTTP.

    Parameters
    ----------
    scenario : Scenario
    seed : int
    decision_interval_s : float
        The feed's clock lines come on this grid of UTC time [s] (the model's).
    supervisor : (host, port)
    security_code : str
    mlog : MessageLog
    speed : float
        Simulated seconds per wall second (``inf``: unpaced).
    probes : ProbeSettings, optional
    faults : SiteFaults
    max_unsupervised_s : float
        Simulated time without a supervisor after which a commanded plan ends [s].
    feed_host, feed_port : str, int
        Where the HTTP feed listens (port 0: any free port).
    ack_timeout_s, watchdog_s : float
        Wait for an acknowledgement; interval of Watchdog messages [s, wall time].
    """

    def __init__(self, scenario: Scenario, seed: int, decision_interval_s: float,
                 supervisor: tuple[str, int], security_code: str, mlog: MessageLog,
                 speed: float = math.inf, probes: ProbeSettings | None = None,
                 faults: SiteFaults | None = None, max_unsupervised_s: float = 600.0,
                 feed_host: str = "127.0.0.1", feed_port: int = 0,
                 ack_timeout_s: float = 5.0, watchdog_s: float = 60.0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.supervisor = supervisor
        self.security_code = security_code
        self.mlog = mlog
        self.speed = speed
        self.faults = faults or SiteFaults()
        self.max_unsupervised_ms = int(round(max_unsupervised_s * 1000))
        self.feed_host, self.feed_port = feed_host, feed_port
        self.ack_timeout_s = ack_timeout_s
        self.watchdog_s = watchdog_s
        self.step_ms = int(round(decision_interval_s * 1000))
        self.t0_ms = int(utc_from_sim_seconds(scenario, np.array([0.0]))[0].value // 1_000_000)
        self.now_ms = self.t0_ms
        self.refused = 0
        self.states: dict[str, SiteState] = {}
        for j in scenario.junctions:
            sid, cid = site_ids(j.id)
            self.states[j.id] = SiteState(
                junction=j.id, site_id=sid, component_id=cid,
                plans={p.name: k + 1 for k, p in enumerate(j.programs)},
                default=j.default_program, program=j.default_program,
                current=j.default_program)
        settings = scenario.probes if probes is None else probes
        self.columns = probe_columns(settings)
        self.feed = ProbeFeed(self.columns)
        self.sim = Simulation(scenario, _LockstepController(self), seed=seed,
                              record_trajectories=False)
        sampler = ProbeSampler(scenario, settings, self.sim.arrivals, link_geometry(scenario),
                               np.random.default_rng(self.sim.streams["probes"]),
                               feed=self.feed)
        sampler.attach(self.sim)
        self.result: SimResult | None = None
        self.error: BaseException | None = None
        self.lines: list[str] = []
        self.instants = 0
        self._go = threading.Event()
        self._stop = False
        self._waiting = False
        self._batches: asyncio.Queue[Any] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until_ms = -1
        self._dropped = False
        self._link_up = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._wall0: float | None = None
        self._first_ms: int | None = None

    def clock_ms(self) -> int:
        """Return the site's clock: simulated UTC time of the last decision instant [epoch ms]."""
        return self.now_ms

    # -- the simulation thread ----------------------------------------------------
    def instant(self, now_ms: int, pts: dict[str, np.ndarray]) -> None:
        """Hand the instant's points to the event loop and wait (simulation thread)."""
        current = {rt.junction.id: rt.current for rt in self.sim.junction_rt}
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._batches.put_nowait, (now_ms, pts, current))
        self._go.wait()
        self._go.clear()
        if self._stop:
            raise SystemExit("virtual site stopped")

    def _run_sim(self) -> None:
        try:
            self.result = self.sim.run()
        except SystemExit:
            pass
        except BaseException as exc:  # handed to the event loop, re-raised there
            self.error = exc
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._batches.put_nowait, None)

    # -- plans --------------------------------------------------------------------
    def set_program(self, st: SiteState, program: str, forced: bool) -> None:
        """Set what the junction runs from its next synchronisation point."""
        st.program, st.forced = program, forced
        st.source = SOURCE_FORCED if forced else SOURCE_OWN
        st.timeline.append((self.now_ms, program, "forced" if forced else "own"))

    # -- the feed -----------------------------------------------------------------
    def _lines(self, now_ms: int, pts: dict[str, np.ndarray]) -> list[str]:
        out = []
        silent = self.faults.feed_silent_from_s
        if silent is None or now_ms < self.t0_ms + silent * 1000:
            n = len(pts.get("time_sent_s", ()))
            sent = self.t0_ms + np.round(pts["time_sent_s"] * 1000).astype(np.int64) if n \
                else np.empty(0, dtype=np.int64)
            recv = self.t0_ms + np.round(pts["time_received_s"] * 1000).astype(np.int64) \
                if n else np.empty(0, dtype=np.int64)
            for i in range(n):
                row: dict[str, Any] = {
                    "time_sent": rsmp_time(int(sent[i])),
                    "time_received": rsmp_time(int(recv[i])),
                    "lat_deg": float(pts["lat_deg"][i]), "lon_deg": float(pts["lon_deg"][i]),
                    "speed_kmh": float(pts["speed_kmh"][i]),
                    "heading_deg": float(pts["heading_deg"][i])}
                if "pseudonym" in pts:
                    row["pseudonym"] = str(pts["pseudonym"][i])
                out.append(json.dumps(row, separators=(",", ":")))
        out.append(json.dumps({"clock": rsmp_time(now_ms)}))
        return out

    async def _next_batch(self) -> bool:
        """Let the simulation run to its next instant; publish it. ``False`` at the end."""
        if self._waiting:
            await self._pace()
            self._waiting = False
            self._go.set()
        item = await self._batches.get()
        if item is None:
            if self.error is not None:
                raise self.error
            return False
        now_ms, pts, current = item
        self.now_ms = now_ms
        self.instants += 1
        await self._at_instant(now_ms, current)
        self.lines.extend(self._lines(now_ms, pts))
        self._waiting = True
        return True

    async def _pace(self) -> None:
        if math.isinf(self.speed):
            return
        if self._wall0 is None or self._first_ms is None:
            self._wall0, self._first_ms = time.monotonic(), self.now_ms
            return
        target = self._wall0 + (self.now_ms + self.step_ms - self._first_ms) / 1000 / self.speed
        await asyncio.sleep(max(0.0, target - time.monotonic()))

    async def _at_instant(self, now_ms: int, current: dict[str, str]) -> None:
        """Faults, the unsupervised fall-back, and S0014 updates of switched plans."""
        f = self.faults
        if f.drop_at_s is not None and not self._dropped and \
                now_ms >= self.t0_ms + f.drop_at_s * 1000:
            self._dropped = True
            self._down_until_ms = now_ms + int(f.down_for_s * 1000)
            self.mlog.event(now_ms, "", "fault_drop", down_for_s=f.down_for_s)
            for st in self.states.values():
                if st.end is not None:
                    await st.end.close()
        elif self._dropped and not self._link_up.is_set() and now_ms >= self._down_until_ms:
            # The link is back: reconnect at this instant, so that a run with an
            # outage is as repeatable as one without.
            self._link_up.set()
            self.mlog.event(now_ms, "", "fault_link_up")
            await self.wait_connected(RECONNECT_WAIT_S)
        for st in self.states.values():
            connected = st.end is not None and not st.end.closed and st.end.handshake_done
            if connected:
                st.lost_at_ms = None
            elif st.lost_at_ms is None:
                st.lost_at_ms = now_ms
            if (st.forced and st.program != st.default and st.lost_at_ms is not None
                    and now_ms - st.lost_at_ms >= self.max_unsupervised_ms):
                self.mlog.event(now_ms, st.site_id, "unsupervised_fallback",
                                program=st.default)
                self.set_program(st, st.default, False)
            if current[st.junction] != st.current:
                st.current = current[st.junction]
                if st.end is not None:
                    await st.end.status_changed()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # A client that sends no complete request head in time is dropped.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                          HTTP_HEAD_TIMEOUT_S)
            target = head.split(b" ", 2)[1].decode("latin-1")
            cursor = int(parse_qs(urlsplit(target).query).get("cursor", ["0"])[0])
            if cursor < 0:
                raise ValueError(cursor)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError, TimeoutError):
            writer.close()  # not a feed request
            return
        try:
            ended = False
            if cursor >= len(self.lines):
                ended = not await self._next_batch()
            body = ("\n".join(self.lines[cursor:]) + "\n").encode() if cursor < len(
                self.lines) else b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         + f"Content-Length: {len(body)}\r\nX-Next-Cursor: {len(self.lines)}"
                           f"\r\nX-Feed-End: {int(ended)}\r\nConnection: close\r\n\r\n"
                         .encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        except Exception as exc:  # the simulation failed: tell the reader, keep the error
            log.exception("feed request failed")
            if self.error is None:
                self.error = exc
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        finally:
            writer.close()

    # -- RSMP connections -----------------------------------------------------------
    async def _connect_loop(self, st: SiteState) -> None:
        """Keep the junction connected to the supervisor, with doubling back-off."""
        delay = BACKOFF_FIRST_S
        while not self._stop:
            try:
                if self.now_ms < self._down_until_ms:
                    raise OSError("link down (fault injected)")
                reader, writer = await asyncio.open_connection(*self.supervisor,
                                                               limit=MAX_MESSAGE_BYTES)
            except OSError as exc:
                self.mlog.event(self.now_ms, st.site_id, "connect_failed", why=str(exc),
                                retry_in_s=delay)
                if self._dropped and not self._link_up.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._link_up.wait(), delay)
                else:
                    await asyncio.sleep(delay)
                delay = min(2 * delay, BACKOFF_MAX_S)
                continue
            end = SiteEnd(self, st, reader, writer)
            st.end = end
            if await end.open():
                delay = BACKOFF_FIRST_S
            while not end.closed:
                await asyncio.sleep(0.01)
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_MAX_S)

    async def start(self) -> int:
        """Start the feed server, the connections and the simulation; return the feed port."""
        self._loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._http, self.feed_host, self.feed_port)
        self._server = server
        port = int(server.sockets[0].getsockname()[1])
        for st in self.states.values():
            self._tasks.append(asyncio.create_task(self._connect_loop(st)))
        self._thread = threading.Thread(target=self._run_sim, name="gpssignal-site-sim",
                                        daemon=True)
        self._thread.start()
        return port

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until every junction has finished its handshake."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while loop.time() < end:
            if all(st.end is not None and st.end.handshake_done and not st.end.closed
                   for st in self.states.values()):
                return True
            await asyncio.sleep(0.01)
        return False

    async def stop(self) -> None:
        """Stop the simulation (if still running), the connections and the feed server."""
        self._stop = True
        self._go.set()
        for t in self._tasks:
            t.cancel()
        for st in self.states.values():
            if st.end is not None:
                await st.end.close()
        self._server.close()
        await asyncio.to_thread(self._thread.join, 10.0)
