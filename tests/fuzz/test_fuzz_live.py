"""Fuzzing the live inputs: the probe feed, RSMP messages from the other end, live.toml.

Hostile input never ends ``serve`` or ``rsmp-site`` (docs/live.md):

* feed lines (NDJSON and CSV) are kept or counted as dropped, never raise;
* every RSMP frame a peer sends is answered with a ``MessageAck`` or a
  ``MessageNotAck`` (acknowledgements themselves with nothing), whatever its
  JSON, types, fields, order or size, at both ends;
* a hostile ``live.toml`` returns or raises a one-line ``LiveConfigError``;
* hostile options are refused with exit code 2 and one line, writing nothing.

Examples are derandomised and bounded as in ``test_fuzz_readers.py``
(``GPSSIGNAL_FUZZ_EXAMPLES``, 5 s per example); the regression corpus pins
the cases found by hand and by these fuzzers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from gpssignal.control.gps import GpsModel, model_from_scenario
from gpssignal.control.io import write_model
from gpssignal.errors import GpssignalError
from gpssignal.live.config import LiveConfig, LiveConfigError, SiteConfig, read_live_config
from gpssignal.live.feed import MAX_LINE_CHARS, FeedParser, feed_lines
from gpssignal.live.protocol import (
    RSMP_VERSIONS,
    SXL_VERSION,
    ack,
    check_message,
    command_request_m0002,
    decode,
    encode,
    message,
    not_ack,
    rsmp_time,
    s0014_values,
)
from gpssignal.live.site import SiteEnd, VirtualSite, site_ids
from gpssignal.live.supervisor import SiteSession, Supervisor
from gpssignal.live.transport import MAX_MESSAGE_BYTES, MessageLog
from gpssignal.model.scenario import Scenario
from tests.conftest import run_cli
from tests.fuzz.test_fuzz_readers import DEADLINE_S, FUZZ, HOSTILE, mutated

SITE, COMP = site_ids("J1")
CODE = "1234"
GOOD = {"time_sent": "2019-05-06T05:00:00.000Z", "time_received": "2019-05-06T05:00:01.500Z",
        "lat_deg": 55.63, "lon_deg": 12.38, "speed_kmh": 31.5, "heading_deg": 90.0,
        "pseudonym": "a"}
CSV_HEADER = "time_sent,time_received,lat_deg,lon_deg,speed_kmh,heading_deg,pseudonym"
CSV_ROW = "2019-05-06T05:00:00Z,2019-05-06T05:00:01Z,55.63,12.38,31.5,90,a"
#: Lines a feed may carry besides mutated rows: cut, nested, huge, binary garbage.
HOSTILE_LINES = st.one_of(
    st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from([
        "{", "[]", "null", '{"clock": 5}', '{"clock": "9999-12-31T23:59:59-12:00"}',
        '{"clock": "0001-01-01T00:00:00+14:00"}', '{"a":' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"lat_deg": ' + "9" * 400 + "}", '{"lat_deg": ' + "9" * 5000 + "}",
        "x" * (MAX_LINE_CHARS + 10), "a" * 200_000 + ",1,2,3", "\x00,\x00", '"unclosed,1',
        CSV_ROW.replace("31.5", "1e400"), CSV_ROW.replace("55.63", "nan")]))


# ---------------------------------------------------------------------------
# the probe feed
# ---------------------------------------------------------------------------

def _feed(lines: list[str], first: str | None) -> FeedParser:
    """Feed ``lines`` (after ``first``, a header or an NDJSON row); check the parser's state."""
    p = FeedParser("Europe/Copenhagen")
    t0 = time.perf_counter()
    try:
        if first is not None:
            p.feed(first)
        for line in lines:
            p.feed(line)
    except GpssignalError as exc:  # only a first line that is not a usable CSV header
        assert "\n" not in str(exc) and len(str(exc)) < 400
        assert "missing column" in str(exc) or "not NDJSON and not a CSV header" in str(exc)
        return p
    rep = p.report
    assert rep.rows_read == rep.rows_kept + sum(rep.dropped.values())
    pts = p.buffer.take(2**62)
    assert len(pts["t_sent_ms"]) == rep.rows_kept and len(p.buffer) == 0
    assert (pts["t_received_ms"] >= pts["t_sent_ms"]).all()
    assert time.perf_counter() - t0 < DEADLINE_S
    return p


@FUZZ
@given(st.lists(st.one_of(mutated(GOOD).map(json.dumps), HOSTILE_LINES), max_size=6))
def test_fuzz_feed_ndjson(lines: list[str]) -> None:
    _feed(lines, json.dumps(GOOD))


@FUZZ
@given(st.lists(st.one_of(st.just(CSV_ROW), HOSTILE_LINES,
                          st.lists(HOSTILE.map(str), min_size=7, max_size=7).map(",".join)),
                max_size=6))
def test_fuzz_feed_csv(lines: list[str]) -> None:
    _feed(lines, CSV_HEADER)


@FUZZ
@given(st.lists(HOSTILE_LINES, min_size=1, max_size=4))
def test_fuzz_feed_first_line(lines: list[str]) -> None:
    """Any first line: it sets the format (NDJSON, or a CSV header that may be refused)."""
    _feed(lines, None)


def _read_file(path: Path, follow: bool = False) -> list[str]:
    async def main() -> list[str]:
        return [line async for batch in feed_lines(str(path), follow=follow) for line in batch]
    return asyncio.run(main())


@FUZZ
@given(st.binary(max_size=400).filter(lambda b: not b.startswith(b"\xef\xbb\xbf")))
def test_fuzz_feed_file_bytes_are_read_line_by_line(workdir: Path, data: bytes) -> None:
    """Any bytes: the lines read are the file's lines, bad UTF-8 replaced, none lost."""
    path = workdir / "bytes.ndjson"
    path.write_bytes(data)
    assert "".join(_read_file(path)) == data.decode("utf-8", "replace")


def test_a_huge_line_of_a_feed_file_is_skipped_without_being_held(tmp_path: Path) -> None:
    """A 50 MB line (no newline until its end) becomes one ragged row; rows after it count."""
    path = tmp_path / "feed.ndjson"
    with path.open("wb") as f:
        f.write(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
        f.write(b"x" * 50_000_000 + b"\n")
        f.write(b"\xff\xfe not utf-8\n" + json.dumps(GOOD).encode() + b"\n")
    lines = _read_file(path)
    assert [len(x) for x in lines][1] == MAX_LINE_CHARS + 1   # cut, the rest skipped
    p = _feed(lines, None)
    assert (p.report.rows_read, p.report.rows_kept, p.report.dropped["ragged_row"]) == (4, 2, 2)


def test_a_line_still_being_written_is_read_whole(tmp_path: Path) -> None:
    """A followed file whose writer is mid-line: the line is read once it is complete
    (before, its two halves became two dropped rows)."""
    path = tmp_path / "feed.ndjson"
    text = json.dumps(GOOD)
    path.write_text(text[:20], encoding="utf-8")

    async def main() -> list[str]:
        lines = feed_lines(str(path), follow=True)
        first = asyncio.ensure_future(anext(lines))
        await asyncio.sleep(0.5)
        assert not first.done()
        with path.open("a", encoding="utf-8") as f:
            f.write(text[20:] + "\n")
        got = await asyncio.wait_for(first, DEADLINE_S)
        await lines.aclose()  # type: ignore[attr-defined]
        return got

    assert asyncio.run(main()) == [text + "\n"]


# ---------------------------------------------------------------------------
# RSMP messages from the other end, straight into each end's dispatcher
# ---------------------------------------------------------------------------

class _Writer:
    """Collects what an endpoint writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> None:
        self.data += b

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, key: str) -> None:
        return None

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in bytes(self.data).split(b"\f") if x]


@pytest.fixture(scope="module")
def model(tiny_relief: Scenario) -> GpsModel:
    return model_from_scenario(tiny_relief)


def _config(**kw: Any) -> LiveConfig:
    return LiveConfig(port=0, ack_timeout_s=0.2, command_timeout_s=0.2, retry_backoff_s=0.01,
                      sites=[SiteConfig(junction="J1", site_id=SITE, component_id=COMP,
                                        security_code=CODE, plans={"normal": 1, "peak": 2})],
                      **kw)


def _version(site: str = SITE) -> dict[str, Any]:
    return message("Version", RSMP=[{"vers": v} for v in RSMP_VERSIONS], siteId=[{"sId": site}],
                   SXL=SXL_VERSION)


#: Valid messages of every kind either end receives; the fuzzers mutate them.
TEMPLATES = [
    _version(), message("Watchdog", wTs=rsmp_time(0)), ack(str(uuid.uuid4())),
    not_ack(str(uuid.uuid4()), "x"),
    message("AggregatedStatus", ntsOId=SITE, xNId="", cId=COMP, aSTS=rsmp_time(0), fP=None,
            fS=None, se=[False] * 8),
    message("StatusUpdate", ntsOId=SITE, xNId="", cId=COMP, sTs=rsmp_time(0),
            sS=s0014_values(2, "forced")),
    message("CommandResponse", ntsOId=SITE, xNId="", cId=COMP, cTS=rsmp_time(0),
            rvs=[{"cCI": "M0002", "n": "timeplan", "v": "2", "age": "recent"}]),
    command_request_m0002(SITE, COMP, 2, CODE),
    message("StatusSubscribe", ntsOId=SITE, xNId="", cId=COMP,
            sS=[{"sCI": "S0014", "n": "status", "uRt": "0", "sOc": True}]),
    message("AggregatedStatusRequest", ntsOId=SITE, xNId="", cId=COMP),
]
FRAMES = st.one_of(
    st.sampled_from(TEMPLATES).flatmap(mutated).map(lambda m: encode(m)[:-1]),
    st.binary(max_size=300),
    st.sampled_from([b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                     b'{"mType":"rSMsg","type":"Watchdog","mId":"\\ud800","wTs":"x"}',
                     b'{"mType":"rSMsg","type":{"a":1},"mId":"x"}', b"[1]", b"NaN",
                     b'{"mType":"' + b"x" * 500_000 + b'"}']))


def _answers(frames: list[bytes], w: _Writer) -> None:
    """Every non-empty frame got an answer; each answer is a well-formed JSON message."""
    out = w.messages()
    acks = [m for m in out if m["type"] in ("MessageAck", "MessageNotAck")]
    # Frames needing no answer: empty ones, and valid acknowledgements (never acknowledged).
    quiet = 0
    for f in frames:
        try:
            m = decode(f)
        except ValueError:
            continue
        quiet += check_message(m) is None and m["type"] in ("MessageAck", "MessageNotAck")
    needing = sum(1 for f in frames if f.strip()) - quiet
    assert len(acks) >= needing, (frames, out)
    for m in out:
        assert len(encode(m)) < 2 * MAX_MESSAGE_BYTES and all(len(str(v)) < 1000
                                                              for v in m.values())


async def _drain_tasks(end: Any) -> None:
    for t in end._tasks:
        t.cancel()
    await asyncio.sleep(0)


@FUZZ
@given(st.lists(FRAMES, min_size=1, max_size=4), st.booleans())
def test_fuzz_supervisor_answers_every_frame(model: GpsModel, frames: list[bytes],
                                             after_handshake: bool) -> None:
    async def main() -> None:
        sup = Supervisor(model, _config(), MessageLog(None), clock="feed")
        w = _Writer()
        sess = SiteSession(sup, asyncio.StreamReader(), w)  # type: ignore[arg-type]
        if after_handshake:
            sess.handshake_done, sess.site, sess.peer = True, sup.config.sites[0], SITE
        for f in frames:
            await sess._dispatch(f)
        await _drain_tasks(sess)
        _answers(frames, w)

    t0 = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - t0 < DEADLINE_S


@pytest.fixture(scope="module")
def virtual_site(tiny_relief: Scenario) -> VirtualSite:
    return VirtualSite(tiny_relief, 1, 10.0, ("127.0.0.1", 1), CODE, MessageLog(None))


@FUZZ
@given(st.lists(FRAMES, min_size=1, max_size=4), st.booleans())
def test_fuzz_site_answers_every_frame(virtual_site: VirtualSite, frames: list[bytes],
                                       after_handshake: bool) -> None:
    async def main() -> None:
        st_ = virtual_site.states["J1"]
        w = _Writer()
        end = SiteEnd(virtual_site, st_, asyncio.StreamReader(), w)  # type: ignore[arg-type]
        end.handshake_done = after_handshake
        for f in frames:
            await end._dispatch(f)
        await _drain_tasks(end)
        _answers(frames, w)
        # A refused command never changes the plan: only a valid M0002 with the code does.
        assert st_.program in st_.plans

    t0 = time.perf_counter()
    asyncio.run(main())
    assert time.perf_counter() - t0 < DEADLINE_S


# --- over a real socket: the supervisor stays up ------------------------------------------

def _frames_then_handshake(model: GpsModel, frames: list[bytes]) -> list[dict[str, Any]]:
    """Send ``frames`` to a listening supervisor; return its answers, then check it still
    accepts a site's Version on a new connection."""
    async def main() -> list[dict[str, Any]]:
        sup = Supervisor(model, _config(), MessageLog(None), clock="feed")
        port = await sup.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for f in frames:
                writer.write(f)
            await writer.drain()
            got: list[dict[str, Any]] = []
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readuntil(b"\f"), 2.0)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    break
                got.append(json.loads(raw[:-1]))
            writer.close()
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            v = _version()
            w2.write(encode(v))
            await w2.drain()
            assert json.loads((await asyncio.wait_for(r2.readuntil(b"\f"), DEADLINE_S))[:-1]) \
                == ack(v["mId"])
            w2.close()
            return got
        finally:
            await sup.shutdown()
    return asyncio.run(main())


def test_a_message_above_the_limit_gets_a_not_ack_naming_the_limit(model: GpsModel) -> None:
    got = _frames_then_handshake(model, [b'{"mType":"' + b"x" * (MAX_MESSAGE_BYTES + 10)])
    assert [m["type"] for m in got] == ["MessageNotAck"]
    assert f"{MAX_MESSAGE_BYTES:,} bytes" in got[0]["rea"]


def test_a_message_just_below_the_limit_is_read(model: GpsModel) -> None:
    """The stream's limit is the documented 1 MiB, not asyncio's 64 KiB default."""
    big = encode({"mType": "x" * (MAX_MESSAGE_BYTES - 100), "type": "Watchdog",
                  "mId": str(uuid.uuid4())})
    got = _frames_then_handshake(model, [big])
    assert [m["type"] for m in got] == ["MessageNotAck"] and "mType" in got[0]["rea"]


def test_hostile_frames_over_tcp_are_each_refused(model: GpsModel) -> None:
    frames = [b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",     # RecursionError before
              b'{"mType":"rSMsg","type":{"a":1},"mId":"x"}',           # TypeError before
              b'{"mType":"rSMsg","type":"Watchdog","mId":"\\ud800","wTs":"x"}']  # encode error
    got = _frames_then_handshake(model, [f + b"\f" for f in frames])
    assert [m["type"] for m in got] == ["MessageNotAck"] * 3


def test_a_status_update_with_a_non_string_plan_is_acknowledged_as_unknown_plan(
        model: GpsModel) -> None:
    async def main() -> None:
        sup = Supervisor(model, _config(), MessageLog(None), clock="feed")
        w = _Writer()
        sess = SiteSession(sup, asyncio.StreamReader(), w)  # type: ignore[arg-type]
        sess.handshake_done, sess.site = True, sup.config.sites[0]
        for s in (1e400, "9" * 5000, 1.5, "2"):
            m = message("StatusUpdate", ntsOId=SITE, xNId="", cId=COMP, sTs="x",
                        sS=[{"sCI": "S0014", "n": "status", "s": s}])
            await sess._dispatch(encode(m)[:-1])
            assert w.messages()[-1] == ack(m["mId"])
            assert sess.plan == (2 if s == "2" else None)   # 1e400 raised OverflowError
    asyncio.run(main())


# ---------------------------------------------------------------------------
# live.toml
# ---------------------------------------------------------------------------

CONFIG = {"rsmp": {"listen": "127.0.0.1:0", "watchdog_s": 60, "ack_timeout_s": 5,
                   "command_timeout_s": 10, "command_retries": 3, "retry_backoff_s": 1},
          "site": [{"junction": "J1", "site_id": SITE, "component_id": COMP,
                    "security_code": CODE, "plans": {"normal": 1, "peak": 2}}]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_live")


def _config_returns_or_refuses(path: Path) -> None:
    t0 = time.perf_counter()
    try:
        read_live_config(path)
    except LiveConfigError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
    assert time.perf_counter() - t0 < DEADLINE_S


@FUZZ
@given(mutated(CONFIG))
def test_fuzz_live_config(workdir: Path, data: Any) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return
    path = workdir / "live.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _config_returns_or_refuses(path)


CONFIG_CORPUS = {
    "nested_100000": "a = " + "[" * 100_000 + "]" * 100_000,         # RecursionError before
    "integer_5000_digits": "[rsmp]\nwatchdog_s = " + "9" * 5000,      # ValueError before
    "watchdog_1e-300": tomli_w.dumps({**CONFIG, "rsmp": {"watchdog_s": 1e-300}}),
    "retries_true": tomli_w.dumps({**CONFIG, "rsmp": {"command_retries": True}}),
    "plan_twice": tomli_w.dumps({**CONFIG, "site": [{**CONFIG["site"][0],  # type: ignore[index]
                                                     "plans": {"normal": 1, "peak": 1}}]}),
    "key_with_newline": tomli_w.dumps({**CONFIG, "site": [{**CONFIG["site"][0],  # type: ignore[index]
                                                           "a\nb": 1}]}),
    "misspelt_setting": tomli_w.dumps({**CONFIG, "rsmp": {"watchdog": 1}}),
    "not_utf8": "\udcff",
}


@pytest.mark.parametrize("name", sorted(CONFIG_CORPUS))
def test_config_corpus_is_refused_in_one_line(workdir: Path, name: str) -> None:
    path = workdir / f"{name}.toml"
    path.write_text(CONFIG_CORPUS[name], encoding="utf-8", errors="surrogateescape")
    with pytest.raises(LiveConfigError):
        read_live_config(path)
    _config_returns_or_refuses(path)


@pytest.mark.parametrize("kind", ["dev_zero", "folder", "fifo"])
def test_config_that_is_not_a_file_is_refused_unread(workdir: Path, kind: str) -> None:
    """/dev/zero was read for ever (st_size 0), a FIFO blocked, a folder raised
    IsADirectoryError (a traceback)."""
    path = {"dev_zero": Path("/dev/zero"), "folder": workdir}.get(kind, workdir / "fifo")
    if kind == "fifo" and not path.exists():
        os.mkfifo(path)
    with pytest.raises(LiveConfigError, match=r"not a regular file|is a folder"):
        read_live_config(path)


# ---------------------------------------------------------------------------
# options and addresses of the commands
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--speed", "0"), ("--speed", "-1"), ("--speed", "nan"), ("--speed", "1e-320"),
    ("--max-unsupervised-s", "nan"), ("--max-unsupervised-s", "inf"),
    ("--max-unsupervised-s", "-5"), ("--decision-interval-s", "0.00048828125"),
    ("--decision-interval-s", "nan"), ("--decision-interval-s", "-10"),
    ("--feed-listen", "127.0.0.1:99999"), ("--supervisor", "nohost"),
])
def test_rsmp_site_options_are_refused_in_one_line(tmp_path: Path, tiny_relief_toml: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   option: str, value: str) -> None:
    """nan and inf for --max-unsupervised-s and a 2**-11 s interval (0 ms after rounding)
    ended in tracebacks (ValueError, OverflowError, ZeroDivisionError)."""
    monkeypatch.setenv("GPSSIGNAL_RSMP_CODE", CODE)
    log = tmp_path / "site.ndjson"
    code, _, err = run_cli("rsmp-site", tiny_relief_toml, option, value, "--message-log", log,
                           "--quiet")
    assert code == 2 and err.count("\n") == 1 and option in err and "Traceback" not in err
    assert not log.exists()


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_an_address_in_use_is_refused_and_no_log_is_left(tmp_path: Path, model: GpsModel,
                                                         tiny_relief_toml: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Was an OSError traceback, leaving an empty message log behind."""
    path = write_model(model, tmp_path / "m.json")
    cfg = tmp_path / "live.toml"
    cfg.write_text(tomli_w.dumps(CONFIG), encoding="utf-8")
    (feed := tmp_path / "feed.ndjson").write_text("", encoding="utf-8")
    sock, port = _busy_port()
    monkeypatch.setenv("GPSSIGNAL_RSMP_CODE", CODE)
    try:
        for argv in (["serve", "--model", path, "--config", cfg, "--feed", feed,
                      "--listen", f"127.0.0.1:{port}", "--no-follow"],
                     ["rsmp-site", tiny_relief_toml, "--feed-listen", f"127.0.0.1:{port}"]):
            log = tmp_path / "log.ndjson"
            code, _, err = run_cli(*argv, "--message-log", log, "--quiet")
            assert code == 2 and err.count("\n") == 1 and "cannot listen there" in err, err
            assert not log.exists()
    finally:
        sock.close()


def test_serve_on_a_hostile_feed_file_ends_normally(tmp_path: Path, model: GpsModel) -> None:
    """Every kind of bad line in a recorded feed is counted, not fatal (exit 0)."""
    path = write_model(model, tmp_path / "m.json")
    cfg = tmp_path / "live.toml"
    cfg.write_text(tomli_w.dumps(CONFIG), encoding="utf-8")
    feed = tmp_path / "feed.ndjson"
    bad = ['{"lat_deg": ' + "9" * 400 + "}", '{"a":' + "[" * 50_000 + "]" * 50_000 + "}",
           "x" * 100_000, '{"clock": [1]}', "\x00"]
    with feed.open("wb") as f:
        f.write("\n".join([json.dumps(GOOD), *bad, json.dumps({"clock": "2019-05-06T05:00:10Z"})
                           ]).encode() + b"\n\xff\xfe\n")
    code, out, err = run_cli("serve", "--model", path, "--config", cfg, "--feed", feed,
                             "--clock", "feed", "--no-follow", "--dry-run")
    assert code == 0, err
    assert "kept 1 of 6 rows" in out and "ragged_row 4" in out


def test_points_never_due_are_refused_before_they_fill_the_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gpssignal.live import feed as feed_module

    monkeypatch.setattr(feed_module, "MAX_WAITING_POINTS", 3)
    p = FeedParser()
    for _ in range(3):
        p.feed(json.dumps(GOOD))
    with pytest.raises(GpssignalError, match=r"4 points waiting .* limit of 3"):
        p.feed(json.dumps(GOOD))


def test_a_silent_peer_is_closed_after_the_handshake_time_out(
        model: GpsModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that never sends its Version (or stalls mid-frame) was kept for ever."""
    from gpssignal.live import supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "HANDSHAKE_TIMEOUT_S", 0.3)

    async def main() -> None:
        log = MessageLog(None)
        sup = Supervisor(model, _config(), log, clock="feed")
        port = await sup.start()
        try:
            silent = await asyncio.open_connection("127.0.0.1", port)
            stalled = await asyncio.open_connection("127.0.0.1", port)
            stalled[1].write(b'{"mType":"rSMsg","type":"Vers')
            await stalled[1].drain()
            for reader, writer in (silent, stalled):
                assert await asyncio.wait_for(reader.read(), DEADLINE_S) == b""
                writer.close()
            assert log.counts[("event", "handshake_timeout")] == 2
        finally:
            await sup.shutdown()
    asyncio.run(main())
