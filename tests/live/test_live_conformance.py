"""Both ends against a raw TCP peer written here: the handshake, acknowledgements, and
malformed, unknown and out-of-order messages answered with MessageNotAck, never a crash
(docs/live.md#protocol)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from gpssignal.control.gps import GpsModel
from gpssignal.live.config import LiveConfig, SiteConfig
from gpssignal.live.protocol import (
    RSMP_VERSIONS,
    SXL_VERSION,
    ack,
    command_request_m0002,
    encode,
    message,
    rsmp_time,
)
from gpssignal.live.site import VirtualSite, site_ids
from gpssignal.live.supervisor import Supervisor
from gpssignal.live.transport import MessageLog
from gpssignal.model.scenario import Scenario

SITE, COMP = site_ids("J1")
#: Time to wait for one message on localhost [s]; generous against a loaded 2-core VM.
WAIT_S = 5.0


class Raw:
    """A hand-driven RSMP peer: send frames, read the next message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, msg: dict[str, Any] | bytes) -> None:
        self.writer.write(msg if isinstance(msg, bytes) else encode(msg))
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.reader.readuntil(b"\f"), WAIT_S)
        return json.loads(frame[:-1])

    async def recv_type(self, mtype: str) -> dict[str, Any]:
        """Next message of ``mtype``, acknowledging what needs it on the way."""
        while True:
            m = await self.recv()
            if m["type"] == mtype:
                return m
            if m["type"] not in ("MessageAck", "MessageNotAck"):
                await self.send(ack(m["mId"]))


def version(site: str = SITE, versions: tuple[str, ...] = RSMP_VERSIONS) -> dict[str, Any]:
    return message("Version", RSMP=[{"vers": v} for v in versions], siteId=[{"sId": site}],
                   SXL=SXL_VERSION)


def config(code: str = "1234") -> LiveConfig:
    return LiveConfig(port=0, ack_timeout_s=WAIT_S, retry_backoff_s=0.01, sites=[SiteConfig(
        junction="J1", site_id=SITE, component_id=COMP, security_code=code,
        plans={"normal": 1, "peak": 2})])


def with_supervisor(model: GpsModel, body: Any) -> None:
    async def main() -> None:
        sup = Supervisor(model, config(), MessageLog(None), clock="feed")
        port = await sup.start()
        raw = Raw(*await asyncio.open_connection("127.0.0.1", port))
        try:
            await body(raw, sup)
        finally:
            raw.writer.close()
            await sup.shutdown()
    asyncio.run(main())


def test_supervisor_handshake_in_the_specified_order(tiny_model: GpsModel) -> None:
    async def body(raw: Raw, sup: Supervisor) -> None:
        v = version()
        await raw.send(v)
        first = await raw.recv()
        assert first == ack(v["mId"])                          # our Version acknowledged
        theirs = await raw.recv()
        assert theirs["type"] == "Version" and theirs["siteId"] == [{"sId": SITE}]
        assert [x["vers"] for x in theirs["RSMP"]] == list(RSMP_VERSIONS)
        await raw.send(ack(theirs["mId"]))
        wd = message("Watchdog", wTs=rsmp_time(0))
        await raw.send(wd)
        seen = []
        for _ in range(4):  # its Watchdog, our Watchdog's ack, the requests
            m = await raw.recv()
            seen.append(m["type"])
            if m["type"] == "StatusSubscribe":
                assert m["sS"] == [{"sCI": "S0014", "n": n, "uRt": "0", "sOc": True}
                                   for n in ("status", "source")]
                assert m["cId"] == COMP and m["ntsOId"] == SITE
            if m["type"] != "MessageAck":
                await raw.send(ack(m["mId"]))
        assert seen.count("MessageAck") == 1 and "Watchdog" in seen
        assert "AggregatedStatusRequest" in seen
        if "StatusSubscribe" not in seen:
            await raw.recv_type("StatusSubscribe")
        # The subscription's first update: the supervisor is then ready for the site.
        upd = message("StatusUpdate", ntsOId=SITE, xNId="", cId=COMP, sTs=rsmp_time(0),
                      sS=[{"sCI": "S0014", "n": "status", "s": "1", "q": "recent"},
                          {"sCI": "S0014", "n": "source", "s": "calendar_clock",
                           "q": "recent"}])
        await raw.send(upd)
        assert await raw.recv() == ack(upd["mId"])
        assert await sup.wait_for_sites(WAIT_S)
        sess = sup.sessions[SITE]
        assert (sess.plan, sess.source, sess.version) == (1, "calendar_clock",
                                                          RSMP_VERSIONS[0])

    with_supervisor(tiny_model, body)


@pytest.mark.parametrize("frame, reason", [
    (b'{"mType":"rSMsg","type":"Watchdog","mId":"a', "invalid JSON"),
    (b'\xff\xfe', "invalid JSON"),
    (encode({"mType": "rSMsg", "type": "Hello", "mId": str(uuid.uuid4())})[:-1],
     "unknown message type"),
    (encode({"mType": "xx", "type": "Watchdog", "mId": str(uuid.uuid4())})[:-1], "mType"),
    (encode(message("CommandRequest", ntsOId=SITE, xNId="", cId=COMP, arg=[
        {"cCI": "M0002", "n": "timeplan", "cO": "setPlan", "v": "2"}]))[:-1],
     "before the Version exchange"),
    (encode(message("Watchdog", wTs=rsmp_time(0)))[:-1], "before the Version exchange"),
])
def test_supervisor_refuses_bad_messages_and_stays_up(tiny_model: GpsModel, frame: bytes,
                                                      reason: str) -> None:
    async def body(raw: Raw, sup: Supervisor) -> None:
        await raw.send(frame + b"\f")
        m = await raw.recv()
        assert m["type"] == "MessageNotAck" and reason in m["rea"]
        # Still serving: the handshake goes on normally afterwards.
        v = version()
        await raw.send(v)
        assert await raw.recv() == ack(v["mId"])

    with_supervisor(tiny_model, body)


@pytest.mark.parametrize("v, reason", [(version(site="NOPE"), "unknown site"),
                                       (version(versions=("3.1.4",)), "no common version")])
def test_supervisor_refuses_unknown_sites_and_versions(tiny_model: GpsModel, v: dict[str, Any],
                                                       reason: str) -> None:
    async def body(raw: Raw, sup: Supervisor) -> None:
        await raw.send(v)
        m = await raw.recv()
        assert m["type"] == "MessageNotAck" and m["oMId"] == v["mId"] and reason in m["rea"]
        assert await asyncio.wait_for(raw.reader.read(), WAIT_S) == b""  # then closed

    with_supervisor(tiny_model, body)


# ---------------------------------------------------------------------------
# the virtual site against a raw supervisor
# ---------------------------------------------------------------------------

def with_site(scenario: Scenario, body: Any) -> None:
    async def main() -> None:
        accepted: asyncio.Queue[Raw] = asyncio.Queue()

        async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await accepted.put(Raw(r, w))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        site = VirtualSite(scenario, 1, 10.0, ("127.0.0.1", port), "1234", MessageLog(None),
                           ack_timeout_s=WAIT_S)
        await site.start()
        try:
            raw = await asyncio.wait_for(accepted.get(), WAIT_S)
            await body(raw, site)
        finally:
            await site.stop()
            server.close()
    asyncio.run(main())


async def handshake(raw: Raw) -> None:
    """The supervisor's side of the handshake with the site."""
    v = await raw.recv()
    assert v["type"] == "Version" and v["siteId"] == [{"sId": SITE}] and v["SXL"] == SXL_VERSION
    await raw.send(ack(v["mId"]))
    mine = version()
    await raw.send(mine)
    assert await raw.recv() == ack(mine["mId"])
    wd = await raw.recv()
    assert wd["type"] == "Watchdog"
    await raw.send(ack(wd["mId"]))
    agg = await raw.recv()
    assert agg["type"] == "AggregatedStatus" and agg["se"] == [False] * 8 and agg["cId"] == COMP
    await raw.send(ack(agg["mId"]))


def m0002(code: str = "1234", plan: int = 2, **drop: Any) -> dict[str, Any]:
    m = command_request_m0002(SITE, COMP, plan, code)
    m["arg"] = [a for a in m["arg"] if a["n"] not in drop]
    return m


@pytest.mark.parametrize("msg, reason", [
    (m0002(code="0000"), "wrong security code"),
    (m0002(timeplan=None), "missing argument 'timeplan'"),
    (m0002(plan=9), "timeplan = '9'"),
    (message("CommandRequest", ntsOId=SITE, xNId="", cId=COMP,
             arg=[{"cCI": "M0001", "n": "status", "cO": "setValue", "v": "NormalControl"}]),
     "only M0002"),
    (message("StatusRequest", ntsOId=SITE, xNId="", cId=COMP, sS=[{"sCI": "S0001", "n": "x"}]),
     "not supported"),
    (message("StatusRequest", ntsOId=SITE, xNId="", cId="OTHER",
             sS=[{"sCI": "S0014", "n": "status"}]), "unknown component"),
    (message("StatusUpdate", ntsOId=SITE, xNId="", cId=COMP, sTs=rsmp_time(0),
             sS=[{"sCI": "S0014", "n": "status", "s": "1", "q": "recent"}]),
     "a site does not accept it"),
])
def test_site_refuses_bad_requests(tiny_relief: Scenario, msg: dict[str, Any],
                                   reason: str) -> None:
    async def body(raw: Raw, site: VirtualSite) -> None:
        await handshake(raw)
        await raw.send(msg)
        m = await raw.recv()
        assert m["type"] == "MessageNotAck" and m["oMId"] == msg["mId"] and reason in m["rea"]
        assert site.states["J1"].program == "normal" and not site.states["J1"].forced

    with_site(tiny_relief, body)


def test_site_answers_status_watchdog_and_a_valid_m0002(tiny_relief: Scenario) -> None:
    async def body(raw: Raw, site: VirtualSite) -> None:
        await handshake(raw)
        wd = message("Watchdog", wTs=rsmp_time(0))
        await raw.send(wd)
        assert await raw.recv() == ack(wd["mId"])
        req = message("StatusRequest", ntsOId=SITE, xNId="", cId=COMP,
                      sS=[{"sCI": "S0014", "n": "status"}, {"sCI": "S0014", "n": "source"}])
        await raw.send(req)
        assert await raw.recv() == ack(req["mId"])
        resp = await raw.recv()
        assert resp["type"] == "StatusResponse"
        assert {v["n"]: v["s"] for v in resp["sS"]} == {"status": "1",
                                                         "source": "calendar_clock"}
        cmd = m0002()
        await raw.send(cmd)
        assert await raw.recv() == ack(cmd["mId"])
        cr = await raw.recv()
        assert cr["type"] == "CommandResponse" and cr["cId"] == COMP
        assert {v["n"]: (v["v"], v["age"]) for v in cr["rvs"]} == {
            "status": ("True", "recent"), "securityCode": ("1234", "recent"),
            "timeplan": ("2", "recent")}
        st = site.states["J1"]
        assert st.program == "peak" and st.forced and st.source == "forced"
        # A second Version is out of order.
        v = version()
        await raw.send(v)
        m = await raw.recv()
        assert m["type"] == "MessageNotAck" and "already exchanged" in m["rea"]

    with_site(tiny_relief, body)


def test_watchdogs_flow_both_ways_and_a_silent_peer_is_dropped(tiny_model: GpsModel) -> None:
    """With a 0.2-s watchdog the supervisor sends Watchdogs on its own; one left
    unacknowledged for ack_timeout_s closes the connection (watchdog_lost)."""
    async def main() -> None:
        cfg = LiveConfig(port=0, ack_timeout_s=0.5, watchdog_s=0.2, retry_backoff_s=0.01,
                         sites=config().sites)
        mlog = MessageLog(None)
        sup = Supervisor(tiny_model, cfg, mlog, clock="feed")
        port = await sup.start()
        raw = Raw(*await asyncio.open_connection("127.0.0.1", port))
        v = version()
        await raw.send(v)
        await raw.recv()
        theirs = await raw.recv_type("Version")
        await raw.send(ack(theirs["mId"]))
        # Acknowledge everything for a while: at least two periodic Watchdogs arrive.
        n = 0
        while n < 3:
            m = await raw.recv()
            if m["type"] == "Watchdog":
                n += 1
            if m["type"] not in ("MessageAck", "MessageNotAck"):
                await raw.send(ack(m["mId"]))
        # Then go silent: the supervisor gives up on the connection.
        assert await asyncio.wait_for(_drain(raw), WAIT_S) == b""
        assert mlog.counts[("event", "watchdog_lost")] == 1
        await sup.shutdown()
    asyncio.run(main())


async def _drain(raw: Raw) -> bytes:
    while True:
        chunk = await raw.reader.read(65536)
        if not chunk:
            return b""
