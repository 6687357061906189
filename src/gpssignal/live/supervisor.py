"""``serve``: the trained GPS controller as an RSMP supervisor.

The supervisor listens for RSMP sites (the junctions' controllers connect to
it, as RSMP foresees), runs the run-time path of the trained model
(:class:`gpssignal.control.gps.GpsRuntime`) on a live probe feed, and turns
each decision into an ``M0002`` (setPlan) to the junction's controller. The
controller applies it at its own next safe point; its ``S0014`` status
(subscribed) reports the plan it runs.

Fail-safes: a stale feed returns a junction to its default plan (the
runtime's own rule, as in simulation); a refused or unanswered command is
logged and retried ``command_retries`` times with doubling back-off; a site
that reconnects gets the plan the controller wants at once; on shutdown
every site is handed back to its own programming (``M0002`` with
``status = False``, the default plan). ``dry_run`` logs the commands it would
send instead of sending them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gpssignal.control.gps import GpsModel, GpsRuntime
from gpssignal.live.config import LiveConfig, SiteConfig, check_config_model
from gpssignal.live.feed import FeedParser
from gpssignal.live.protocol import (
    RSMP_VERSIONS,
    SXL_VERSION,
    brief,
    command_request_m0002,
    common_version,
    message,
    not_ack,
    rsmp_time,
)
from gpssignal.live.transport import MAX_MESSAGE_BYTES, Endpoint, MessageLog, wall_ms

__all__ = ["PlanEvent", "Supervisor"]

log = logging.getLogger(__name__)

#: How long a new connection may take to send its Version [s]: a site sends it
#: at once; a peer that connects and stays silent is closed, not kept for ever.
HANDSHAKE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class PlanEvent:
    """A plan the supervisor commanded and the site confirmed (or not)."""

    t_ms: int
    junction: str
    program: str
    forced: bool
    reason: str
    confirmed: bool
    attempts: int


class SiteSession(Endpoint):
    """The supervisor's end of one site's RSMP connection."""

    def __init__(self, sup: Supervisor, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer, "?", sup.mlog, sup.clock_ms, sup.config.ack_timeout_s)
        self.sup = sup
        self.site: SiteConfig | None = None
        self.ready = asyncio.Event()
        self.plan: int | None = None          # S0014 status as last reported
        self.source: str | None = None
        self.s0014_seen = asyncio.Event()
        self._cmd_lock = asyncio.Lock()
        self._cmd_reply: asyncio.Future[dict[str, Any]] | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def handle(self, msg: dict[str, Any]) -> None:
        """Handle one valid message from the site."""
        mtype = msg["type"]
        if mtype == "Version":
            await self._version(msg)
        elif mtype in ("Watchdog", "AggregatedStatus"):
            await self.ack(msg)
        elif mtype in ("StatusUpdate", "StatusResponse"):
            await self.ack(msg)
            for v in msg["sS"]:
                if v.get("sCI") == "S0014" and v.get("n") == "status":
                    # Values are strings (RSMP core); anything but a plan number
                    # (1e400, "9" * 5000, 1.5) means the plan is not known.
                    s = v.get("s")
                    self.plan = int(s) if isinstance(s, str) and s.strip().isdigit() \
                        and len(s) <= 6 else None
                    self.s0014_seen.set()
                elif v.get("sCI") == "S0014" and v.get("n") == "source":
                    self.source = str(v.get("s"))
        elif mtype == "CommandResponse":
            await self.ack(msg)
            if self._cmd_reply is not None and not self._cmd_reply.done():
                self._cmd_reply.set_result(msg)
        else:
            await self.send(not_ack(msg["mId"], f"{mtype}: a supervisor does not accept it"))

    async def _version(self, msg: dict[str, Any]) -> None:
        if self.handshake_done:
            await self.send(not_ack(msg["mId"], "Version: already exchanged"))
            return
        sid = str(msg["siteId"][0].get("sId", ""))
        site = self.sup.site_by_id.get(sid)
        vers = common_version(msg["RSMP"])
        if site is None or vers is None:
            why = (f"siteId = {brief(sid)}: unknown site" if site is None else
                   f"RSMP = {brief([v.get('vers') for v in msg['RSMP']])}: no common version "
                   f"(supported: {', '.join(RSMP_VERSIONS)})")
            await self.send(not_ack(msg["mId"], why))
            await self.close()
            return
        self.site, self.peer, self.version = site, sid, vers
        await self.ack(msg)
        self._tasks.append(asyncio.create_task(self._establish()))

    async def _establish(self) -> None:
        """Finish the handshake: our Version, watchdogs, S0014 subscription, plan check."""
        assert self.site is not None
        site = self.site
        # The site may answer our Version and send its Watchdog at once: accept
        # post-handshake messages from the moment ours is on its way.
        self.handshake_done = True
        reply = await self.request(message(
            "Version", RSMP=[{"vers": v} for v in RSMP_VERSIONS],
            siteId=[{"sId": site.site_id}], SXL=SXL_VERSION))
        if reply is None or reply["type"] != "MessageAck":
            await self.close()
            return
        await self.request(message("Watchdog", wTs=rsmp_time(self.clock_ms())))
        await self.request(message("AggregatedStatusRequest", ntsOId=site.site_id, xNId="",
                                   cId=site.component_id))
        await self.request(message(
            "StatusSubscribe", ntsOId=site.site_id, xNId="", cId=site.component_id,
            sS=[{"sCI": "S0014", "n": n, "uRt": "0", "sOc": True}
                for n in ("status", "source")]))
        # The subscription's first StatusUpdate says which plan runs and why.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.s0014_seen.wait(), self.sup.config.ack_timeout_s)
        self.ready.set()
        self._tasks.append(asyncio.create_task(self._watchdog()))
        await self.sup.site_ready(self)

    async def _watchdog(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.sup.config.watchdog_s)
            if self.closed:
                return
            if await self.request(message("Watchdog", wTs=rsmp_time(self.clock_ms()))) is None:
                self.mlog.event(self.clock_ms(), self.peer, "watchdog_lost")
                await self.close()

    async def set_plan(self, msg: dict[str, Any], plan: int) -> str | None:
        """Send an M0002 and wait for its answer; return why it failed, or ``None``."""
        async with self._cmd_lock:
            self._cmd_reply = asyncio.get_running_loop().create_future()
            reply = await self.request(msg)
            if reply is None:
                return "no acknowledgement"
            if reply["type"] == "MessageNotAck":
                return f"refused: {reply.get('rea', '')}"
            try:
                resp = await asyncio.wait_for(self._cmd_reply, self.sup.config.command_timeout_s)
            except TimeoutError:
                return "no CommandResponse"
            finally:
                self._cmd_reply = None
            got = {v.get("n"): v for v in resp["rvs"] if v.get("cCI") == "M0002"}
            tp = got.get("timeplan", {})
            if tp.get("age") != "recent" or str(tp.get("v")) != str(plan):
                return f"CommandResponse timeplan = {tp.get('v')!r} age = {tp.get('age')!r}"
            return None

    async def close(self) -> None:
        """Close the connection and stop its tasks."""
        await super().close()
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()


class Supervisor:
    """The RSMP supervisor around a :class:`GpsRuntime`.

    Parameters
    ----------
    model : GpsModel
    config : LiveConfig
        Must have a site for every junction of the model.
    mlog : MessageLog
    clock : {"wall", "feed"}
        Decide on the wall clock's grid, or when the feed's clock lines pass
        a grid instant (software-in-the-loop, recorded feeds).
    dry_run : bool
        Log commands instead of sending them.
    """

    def __init__(self, model: GpsModel, config: LiveConfig, mlog: MessageLog,
                 clock: str = "wall", dry_run: bool = False) -> None:
        check_config_model(config, [(j.id, j.default_program, j.relief_program)
                                    for j in model.junctions])
        self.model = model
        self.config = config
        self.mlog = mlog
        self.clock = clock
        self.dry_run = dry_run
        self.runtime = GpsRuntime(model)
        self.site_by_id = {s.site_id: s for s in config.sites}
        self.sessions: dict[str, SiteSession] = {}
        self.plans: list[PlanEvent] = []
        self.now_ms = 0
        self.step_ms = int(round(model.decision_interval_s * 1000))
        self._server: asyncio.Server | None = None
        self._junction_k = {j: k for k, j in enumerate(self.runtime.junction_ids)}

    def clock_ms(self) -> int:
        """Return the supervisor's clock [epoch ms]: wall time, or the feed's decision instant."""
        return wall_ms() if self.clock == "wall" else self.now_ms

    # -- connections ------------------------------------------------------------
    async def start(self) -> int:
        """Listen for sites; return the port."""
        self._server = await asyncio.start_server(self._on_connect, self.config.host,
                                                  self.config.port, limit=MAX_MESSAGE_BYTES)
        port = int(self._server.sockets[0].getsockname()[1])
        self.mlog.event(self.clock_ms(), "", "listening", host=self.config.host, port=port)
        return port

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        sess = SiteSession(self, reader, writer)
        self.mlog.event(self.clock_ms(), str(writer.get_extra_info("peername")), "connected")

        async def deadline() -> None:
            await asyncio.sleep(HANDSHAKE_TIMEOUT_S)
            if not sess.handshake_done and not sess.closed:
                self.mlog.event(self.clock_ms(), sess.peer, "handshake_timeout",
                                after_s=HANDSHAKE_TIMEOUT_S)
                await sess.close()

        timer = asyncio.create_task(deadline())
        try:
            await sess.run()
        finally:
            timer.cancel()

    async def site_ready(self, sess: SiteSession) -> None:
        """Take a site that finished its handshake: replace an older session, re-assert its plan."""
        assert sess.site is not None
        old = self.sessions.get(sess.site.site_id)
        self.sessions[sess.site.site_id] = sess
        if old is not None and old is not sess:
            await old.close()
        k = self._junction_k.get(sess.site.junction)
        if k is None:
            return
        want = self.runtime.program(k)
        # Re-assert when the site runs another plan, or holds a plan commanded
        # earlier (by this supervisor before a restart, or another one) that may
        # not be running yet.
        if sess.plan != sess.site.plans[want] or sess.source == "forced":
            await self.command(sess.site.junction, want, reason="reconnect")

    async def wait_for_sites(self, timeout_s: float) -> bool:
        """Wait until every configured site is connected; ``False`` on time-out."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while loop.time() < end:
            if all(s.site_id in self.sessions and self.sessions[s.site_id].ready.is_set()
                   for s in self.config.sites):
                return True
            await asyncio.sleep(0.01)
        return False

    # -- commands -----------------------------------------------------------------
    async def command(self, junction: str, program: str, forced: bool = True,
                      reason: str = "decision") -> bool:
        """Command ``program`` at ``junction``, retrying within limits; return success."""
        site = self.config.site_of(junction)
        assert site is not None  # checked against the model at construction
        plan = site.plans[program]
        cfg = self.config
        for attempt in range(1 + cfg.command_retries):
            msg = command_request_m0002(site.site_id, site.component_id, plan,
                                        site.security_code, forced)
            if self.dry_run:
                self.mlog.message(self.clock_ms(), "not_sent", site.site_id, msg)
                self._plan(junction, program, forced, reason, False, attempt + 1)
                return True
            sess = self.sessions.get(site.site_id)
            why = "not connected" if sess is None or sess.closed else \
                await sess.set_plan(msg, plan)
            if why is None:
                self._plan(junction, program, forced, reason, True, attempt + 1)
                return True
            self.mlog.event(self.clock_ms(), site.site_id, "command_failed", junction=junction,
                            program=program, attempt=attempt + 1, why=why)
            if attempt < cfg.command_retries:
                await asyncio.sleep(cfg.retry_backoff_s * 2 ** attempt)
        self.mlog.event(self.clock_ms(), site.site_id, "command_gave_up", junction=junction,
                        program=program, attempts=1 + cfg.command_retries)
        self._plan(junction, program, forced, reason, False, 1 + cfg.command_retries)
        return False

    def _plan(self, junction: str, program: str, forced: bool, reason: str, ok: bool,
              attempts: int) -> None:
        self.plans.append(PlanEvent(self.clock_ms(), junction, program, forced, reason, ok,
                                    attempts))

    # -- decisions ------------------------------------------------------------------
    async def decide_at(self, parser: FeedParser, t_ms: int) -> None:
        """One decision instant: ingest the points received by ``t_ms``, decide, command."""
        self.now_ms = t_ms
        pts = parser.buffer.take(t_ms)
        if len(pts["t_sent_ms"]):
            self.runtime.ingest(pts["t_sent_ms"], pts["t_received_ms"], pts["lat_deg"],
                                pts["lon_deg"], pts["speed_kmh"], pts["heading_deg"])
        n0 = len(self.runtime.log_rows)
        changes = self.runtime.decide(t_ms)
        for row in self.runtime.decision_log()[n0:]:
            self.mlog.event(t_ms, "", "decision", **row)
        if changes:
            await asyncio.gather(*(self.command(self.runtime.junction_ids[k], prog,
                                                reason=self.runtime.log_rows[-1][4])
                                   for k, prog in changes))

    async def run_feed(self, lines: AsyncIterator[list[str]], parser: FeedParser,
                       stop: asyncio.Event | None = None) -> None:
        """Decide on the feed until it ends (or ``stop`` is set)."""
        stop = stop or asyncio.Event()
        if self.clock == "feed":
            await self._run_feed_clock(lines, parser, stop)
        else:
            await self._run_wall_clock(lines, parser, stop)

    async def _run_feed_clock(self, lines: AsyncIterator[list[str]], parser: FeedParser,
                              stop: asyncio.Event) -> None:
        nxt: int | None = None
        async for batch in lines:
            for line in batch:
                parser.feed(line)
            clock = parser.clock_ms
            if clock is None:
                continue
            if nxt is None:
                nxt = -(-clock // self.step_ms) * self.step_ms
            while nxt <= clock:
                await self.decide_at(parser, nxt)
                nxt += self.step_ms
            if stop.is_set():
                return

    async def _run_wall_clock(self, lines: AsyncIterator[list[str]], parser: FeedParser,
                              stop: asyncio.Event) -> None:
        async def read() -> None:
            async for batch in lines:
                for line in batch:
                    parser.feed(line)

        reader = asyncio.create_task(read())
        try:
            while not stop.is_set():
                now = wall_ms()
                nxt = math.ceil(now / self.step_ms) * self.step_ms
                try:
                    await asyncio.wait_for(stop.wait(), (nxt - now) / 1000)
                    return
                except TimeoutError:
                    pass
                await self.decide_at(parser, nxt)
                if reader.done():
                    reader.result()  # re-raise a feed error
                    if not stop.is_set():
                        stop.set()
        finally:
            reader.cancel()

    async def shutdown(self) -> None:
        """Hand every junction back to its default plan (its own programming), then close."""
        for j in self.model.junctions:
            site = self.config.site_of(j.id)
            sess = self.sessions.get(site.site_id) if site is not None else None
            if not self.dry_run and (sess is None or sess.closed):
                # Nothing to deliver it to: the controller's own fall-back applies.
                self.mlog.event(self.clock_ms(), site.site_id if site else "",
                                "shutdown_not_connected", junction=j.id)
                continue
            await self.command(j.id, j.default_program, forced=False, reason="shutdown")
        for sess in list(self.sessions.values()):
            await sess.close()
        if self._server is not None:
            self._server.close()
        self.mlog.event(self.clock_ms(), "", "stopped")
