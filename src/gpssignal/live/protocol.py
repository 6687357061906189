r"""RSMP 3.2 messages: building, framing and checking (pure functions, no I/O).

RSMP (Road Side Message Protocol, RSMP Nordic) exchanges JSON objects over
a plain TCP connection; each message ends with an ASCII form feed (``\f``).
Every message carries ``mType = "rSMsg"``, its ``type`` and a GUID ``mId``
(acknowledgements carry the acknowledged message's id as ``oMId`` instead).
Values are JSON strings except where the core specification says otherwise
(the aggregated status and the subscription flags are booleans).

Only what plan selection needs is implemented: the core messages (Version,
MessageAck, MessageNotAck, Watchdog, AggregatedStatus,
AggregatedStatusRequest, StatusRequest/Response, StatusSubscribe/
Unsubscribe/Update, CommandRequest/Response) and, from the traffic-light
SXL 1.2, command ``M0002`` (``setPlan``: ``status``, ``securityCode``,
``timeplan``) and status ``S0014`` (current time plan: ``status``,
``source``). See docs/live.md and docs/references.md for the sources.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CORE_TYPES",
    "MESSAGE_END",
    "RSMP_VERSIONS",
    "SXL_VERSION",
    "ack",
    "brief",
    "check_message",
    "command_request_m0002",
    "common_version",
    "decode",
    "encode",
    "message",
    "not_ack",
    "redact",
    "rsmp_time",
    "s0014_values",
]

#: RSMP core versions this implementation speaks, newest first.
RSMP_VERSIONS = ("3.2.2", "3.2.1", "3.2")
#: Traffic-light SXL version of the messages used here.
SXL_VERSION = "1.2.1"
#: Separator after every message on the TCP stream (ASCII form feed).
MESSAGE_END = b"\f"
#: Message types of the core specification handled here.
CORE_TYPES = ("Version", "MessageAck", "MessageNotAck", "Watchdog", "AggregatedStatus",
              "AggregatedStatusRequest", "StatusRequest", "StatusResponse",
              "StatusSubscribe", "StatusUnsubscribe", "StatusUpdate", "CommandRequest",
              "CommandResponse")
#: Fields every message of a type must carry (besides mType, type, mId).
_REQUIRED = {
    "Version": ("RSMP", "siteId", "SXL"),
    "MessageAck": ("oMId",),
    "MessageNotAck": ("oMId", "rea"),
    "Watchdog": ("wTs",),
    "AggregatedStatus": ("ntsOId", "xNId", "cId", "aSTS", "fP", "fS", "se"),
    "AggregatedStatusRequest": ("ntsOId", "xNId", "cId"),
    "StatusRequest": ("ntsOId", "xNId", "cId", "sS"),
    "StatusResponse": ("ntsOId", "xNId", "cId", "sTs", "sS"),
    "StatusSubscribe": ("ntsOId", "xNId", "cId", "sS"),
    "StatusUnsubscribe": ("ntsOId", "xNId", "cId", "sS"),
    "StatusUpdate": ("ntsOId", "xNId", "cId", "sTs", "sS"),
    "CommandRequest": ("ntsOId", "xNId", "cId", "arg"),
    "CommandResponse": ("ntsOId", "xNId", "cId", "cTS", "rvs"),
}
#: The arguments of M0002, all of which must be present (core 3.2.2).
M0002_ARGS = ("status", "securityCode", "timeplan")


def rsmp_time(t_ms: int) -> str:
    """Return an RSMP time stamp (``2019-05-06T05:00:00.000Z``) of epoch milliseconds."""
    dt = datetime.fromtimestamp(t_ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{t_ms % 1000:03d}Z"


def message(mtype: str, **fields: Any) -> dict[str, Any]:
    """Return a new message of ``mtype`` with a fresh GUID ``mId``."""
    return {"mType": "rSMsg", "type": mtype, "mId": str(uuid.uuid4()), **fields}


def ack(m_id: str) -> dict[str, Any]:
    """Return the MessageAck of message ``m_id``."""
    return {"mType": "rSMsg", "type": "MessageAck", "oMId": m_id}


def not_ack(m_id: str, reason: str) -> dict[str, Any]:
    """Return the MessageNotAck of message ``m_id`` with the reason ``rea``."""
    return {"mType": "rSMsg", "type": "MessageNotAck", "oMId": m_id, "rea": reason}


def encode(msg: dict[str, Any]) -> bytes:
    r"""Return the message as it goes on the wire: compact JSON, UTF-8, then a form feed.

    A string that UTF-8 cannot carry (a lone surrogate, as a peer's ``\ud800``
    echoed back in ``oMId``) is sent as a JSON ``\u`` escape instead.
    """
    text = json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode() + MESSAGE_END
    except UnicodeEncodeError:
        return json.dumps(msg, separators=(",", ":")).encode() + MESSAGE_END


def decode(frame: bytes) -> dict[str, Any]:
    """Parse one frame (without its form feed); ``ValueError`` if it is not a JSON object.

    Nesting deeper than the parser's recursion limit (a hostile peer's
    ``[[[[...``) is a ``ValueError`` too.
    """
    try:
        obj = json.loads(frame.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    return obj


def check_message(msg: dict[str, Any]) -> str | None:
    """Return why ``msg`` is not a well-formed RSMP message, or ``None`` if it is."""
    if msg.get("mType") != "rSMsg":
        return f"mType = {brief(msg.get('mType'))}: must be 'rSMsg'"
    mtype = msg.get("type")
    if not isinstance(mtype, str) or mtype not in _REQUIRED:
        return f"type = {brief(mtype)}: unknown message type"
    if mtype not in ("MessageAck", "MessageNotAck") and not _is_guid(msg.get("mId")):
        return f"mId = {brief(msg.get('mId'))}: must be a GUID"
    for f in _REQUIRED[mtype]:
        if f not in msg:
            return f"{mtype}: missing field {f!r}"
    for f in ("sS", "arg", "rvs", "RSMP", "siteId"):
        if f in msg and not (isinstance(msg[f], list) and msg[f]
                             and all(isinstance(x, dict) for x in msg[f])):
            return f"{mtype}.{f}: must be a non-empty list of objects"
    return None


def brief(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a reason never echoes a huge value)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _is_guid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def common_version(theirs: list[dict[str, Any]]) -> str | None:
    """Return the newest RSMP version both sides support, or ``None``."""
    offered = {str(v.get("vers")) for v in theirs}
    return next((v for v in RSMP_VERSIONS if v in offered), None)


def command_request_m0002(site_id: str, component_id: str, timeplan: int,
                          security_code: str, forced: bool = True) -> dict[str, Any]:
    """Return a CommandRequest of M0002 (setPlan) for ``timeplan``.

    ``forced=False`` hands plan selection back to the controller's own
    programming (``status = False``); ``timeplan`` is still sent, as every
    argument must be present.
    """
    args = {"status": "True" if forced else "False", "securityCode": security_code,
            "timeplan": str(timeplan)}
    return message("CommandRequest", ntsOId=site_id, xNId="", cId=component_id,
                   arg=[{"cCI": "M0002", "n": n, "cO": "setPlan", "v": args[n]}
                        for n in M0002_ARGS])


def s0014_values(plan: int, source: str) -> list[dict[str, str]]:
    """Return the status values of S0014 (current time plan and its source)."""
    return [{"sCI": "S0014", "n": "status", "s": str(plan), "q": "recent"},
            {"sCI": "S0014", "n": "source", "s": source, "q": "recent"}]


def redact(msg: dict[str, Any]) -> dict[str, Any]:
    """Return ``msg`` with every security code replaced by ``****`` (for logs)."""
    if not isinstance(msg.get("arg"), list) and not isinstance(msg.get("rvs"), list):
        return msg
    out = dict(msg)
    for key in ("arg", "rvs"):
        if isinstance(msg.get(key), list):
            out[key] = [dict(a, v="****") if isinstance(a, dict) and a.get("n") == "securityCode"
                        else a for a in msg[key]]
    return out
