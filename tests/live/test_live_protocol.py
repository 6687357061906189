"""RSMP messages as pure data: framing, checks, version negotiation, redaction."""

from __future__ import annotations

import json
import uuid

import pytest

from gpssignal.live.protocol import (
    CORE_TYPES,
    MESSAGE_END,
    RSMP_VERSIONS,
    ack,
    check_message,
    command_request_m0002,
    common_version,
    decode,
    encode,
    message,
    not_ack,
    redact,
    rsmp_time,
)


def test_time_stamps_have_milliseconds_and_z() -> None:
    assert rsmp_time(1_557_118_800_123) == "2019-05-06T05:00:00.123Z"
    assert rsmp_time(0) == "1970-01-01T00:00:00.000Z"


def test_frames_end_in_one_form_feed_and_round_trip() -> None:
    m = message("Watchdog", wTs=rsmp_time(0))
    frame = encode(m)
    assert frame.endswith(MESSAGE_END) and frame.count(b"\f") == 1
    assert decode(frame[:-1]) == m
    assert uuid.UUID(m["mId"])  # a GUID
    with pytest.raises(ValueError):
        decode(b"[1, 2]")
    with pytest.raises(ValueError):
        decode(b"{not json")


def test_m0002_carries_every_argument_as_strings() -> None:
    m = command_request_m0002("S1", "S1TC", 2, "secret")
    assert m["type"] == "CommandRequest" and m["mType"] == "rSMsg"
    args = {a["n"]: a for a in m["arg"]}
    assert set(args) == {"status", "securityCode", "timeplan"}
    assert {a["cCI"] for a in m["arg"]} == {"M0002"} and {a["cO"] for a in m["arg"]} == {
        "setPlan"}
    assert args["status"]["v"] == "True" and args["timeplan"]["v"] == "2"
    assert command_request_m0002("S1", "S1TC", 1, "x", forced=False)["arg"][0]["v"] == "False"
    assert check_message(m) is None


def test_security_codes_never_reach_a_log() -> None:
    m = command_request_m0002("S1", "S1TC", 2, "secret")
    text = json.dumps(redact(m))
    assert "secret" not in text and "****" in text
    assert "secret" in json.dumps(m)  # the message itself is untouched


@pytest.mark.parametrize("mtype", CORE_TYPES)
def test_each_type_needs_its_fields(mtype: str) -> None:
    m = message(mtype)
    if mtype in ("MessageAck", "MessageNotAck"):
        m = ack("x") if mtype == "MessageAck" else not_ack("x", "why")
        assert check_message(m) is None
        m.pop("oMId")
    problem = check_message(m)
    assert problem is not None and mtype in problem


def test_malformed_envelopes_are_named() -> None:
    assert "mType" in check_message({"type": "Watchdog"})  # type: ignore[operator]
    assert "unknown message type" in check_message(  # type: ignore[operator]
        {"mType": "rSMsg", "type": "Hello", "mId": str(uuid.uuid4())})
    assert "GUID" in check_message(  # type: ignore[operator]
        {"mType": "rSMsg", "type": "Watchdog", "mId": "7", "wTs": "x"})
    bad = message("StatusRequest", ntsOId="", xNId="", cId="c", sS=[])
    assert "non-empty list" in check_message(bad)  # type: ignore[operator]


def test_version_negotiation_takes_the_newest_common_version() -> None:
    assert common_version([{"vers": "3.1.5"}, {"vers": "3.2"}]) == "3.2"
    assert common_version([{"vers": v} for v in RSMP_VERSIONS]) == RSMP_VERSIONS[0]
    assert common_version([{"vers": "3.1.4"}]) is None
