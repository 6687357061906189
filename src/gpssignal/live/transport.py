"""One RSMP connection end over asyncio streams, and the message log.

:class:`Endpoint` frames messages (form feed), acknowledges every valid
message, refuses malformed, unknown and out-of-order ones with a
``MessageNotAck`` (never raising), resolves the acknowledgements of what it
sent, and logs every message in both directions to a :class:`MessageLog`.
The site and the supervisor subclass it with their ``handle`` method.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gpssignal.live.protocol import (
    MESSAGE_END,
    ack,
    check_message,
    decode,
    encode,
    not_ack,
    redact,
    rsmp_time,
)

__all__ = ["Endpoint", "MessageLog", "wall_ms"]

log = logging.getLogger(__name__)

#: Longest message accepted [bytes]; RSMP messages of plan selection are < 2 kB.
MAX_MESSAGE_BYTES = 1 << 20
_MID = re.compile(rb'"mId"\s*:\s*"([^"]{1,64})"')


def wall_ms() -> int:
    """Return the wall clock in epoch milliseconds (UTC)."""
    return time.time_ns() // 1_000_000


class MessageLog:
    """NDJSON log of messages and events: one JSON object per line.

    Each line has ``t`` (the writer's clock, RSMP time stamp), ``dir``
    (``sent``, ``received``, ``not_sent`` in dry-run, or ``event``), ``peer``
    and either ``msg`` (the message, security codes redacted) or ``event``
    with its fields. ``counts`` tallies (dir, type). The file must not exist
    (a log is never overwritten); ``path=None`` keeps only the counts.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._f: IO[str] | None = path.open("x", encoding="utf-8") if path else None
        self.counts: Counter[tuple[str, str]] = Counter()

    def message(self, t_ms: int, direction: str, peer: str, msg: dict[str, Any]) -> None:
        """Log one message."""
        self.counts[(direction, str(msg.get("type", "?")))] += 1
        self._line({"t": rsmp_time(t_ms), "dir": direction, "peer": peer, "msg": redact(msg)})

    def event(self, at_ms: int, peer: str, event: str, /, **fields: Any) -> None:
        """Log one event (a decision, a fault, a retry)."""
        self.counts[("event", event)] += 1
        self._line({"t": rsmp_time(at_ms), "dir": "event", "peer": peer, "event": event,
                    **fields})

    def _line(self, obj: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
            self._f.flush()

    def summary(self) -> dict[str, int]:
        """Return the counts as ``{"dir type": n}``, sorted (events as ``event name``)."""
        return {f"{d} {t}": n for (d, t), n in sorted(self.counts.items())}

    def close(self) -> None:
        """Close the file."""
        if self._f is not None:
            self._f.close()
            self._f = None


class Endpoint:
    """One end of an RSMP connection.

    Parameters
    ----------
    reader, writer : asyncio streams
    peer : str
        Name of the other end in logs (its site id once known).
    mlog : MessageLog
    clock_ms : callable
        This end's clock [epoch ms]: wall time, or the simulated time of a
        virtual site.
    ack_timeout_s : float
        How long to wait for an acknowledgement [s].
    """

    #: Types accepted before the Version exchange is done.
    HANDSHAKE_TYPES: tuple[str, ...] = ("Version", "MessageAck", "MessageNotAck")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                 mlog: MessageLog, clock_ms: Callable[[], int], ack_timeout_s: float) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.mlog = mlog
        self.clock_ms = clock_ms
        self.ack_timeout_s = ack_timeout_s
        self.version: str | None = None       # negotiated RSMP version
        self.handshake_done = False
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.last_received_wall = time.monotonic()
        self.closed = False

    # -- sending --------------------------------------------------------------
    async def send(self, msg: dict[str, Any]) -> asyncio.Future[dict[str, Any]] | None:
        """Send ``msg``; return a future of its MessageAck/NotAck (``None`` for acks)."""
        fut = None
        if msg["type"] not in ("MessageAck", "MessageNotAck"):
            fut = asyncio.get_running_loop().create_future()
            self._acks[msg["mId"]] = fut
        self.mlog.message(self.clock_ms(), "sent", self.peer, msg)
        try:
            self.writer.write(encode(msg))
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._lost(f"send failed: {exc}")
        return fut

    async def request(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``msg`` and wait for its acknowledgement; ``None`` on time-out or loss."""
        fut = await self.send(msg)
        if fut is None:
            return None
        try:
            return await asyncio.wait_for(fut, self.ack_timeout_s)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            self._acks.pop(msg["mId"], None)

    # -- receiving ------------------------------------------------------------
    async def run(self) -> None:
        """Read and dispatch messages until the connection ends."""
        try:
            while not self.closed:
                frame = await self._read_frame()
                if frame is None:
                    break
                await self._dispatch(frame)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._lost(str(exc))
        finally:
            self._lost("connection closed")

    async def _read_frame(self) -> bytes | None:
        try:
            frame = await self.reader.readuntil(MESSAGE_END)
        except asyncio.IncompleteReadError:
            return None
        except (asyncio.LimitOverrunError, ValueError):
            # The stream's limit (MAX_MESSAGE_BYTES, see stream_limit) passed without
            # a form feed: refuse, and end the connection (the rest of the frame
            # cannot be told apart from the next one).
            await self.send(not_ack("", f"message longer than {MAX_MESSAGE_BYTES:,} bytes "
                                    "(the limit)"))
            return None
        self.last_received_wall = time.monotonic()
        return frame[:-1]

    async def _dispatch(self, frame: bytes) -> None:
        if not frame.strip():
            return  # an empty frame (e.g. a keep-alive form feed) carries nothing
        try:
            msg = decode(frame)
        except (ValueError, UnicodeDecodeError) as exc:
            found = _MID.search(frame)
            self.mlog.event(self.clock_ms(), self.peer, "malformed",
                            text=frame[:200].decode("utf-8", "replace"))
            await self.send(not_ack(found.group(1).decode("utf-8", "replace") if found else "",
                                    f"invalid JSON: {exc}"))
            return
        self.mlog.message(self.clock_ms(), "received", self.peer, msg)
        problem = check_message(msg)
        if problem is not None:
            # Echo the id it carries; one that cannot be a GUID (a megabyte of text)
            # is not sent back.
            m_id = msg.get("mId", "")
            await self.send(not_ack(m_id if isinstance(m_id, str) and len(m_id) <= 64 else "",
                                    problem))
            return
        mtype = msg["type"]
        if mtype in ("MessageAck", "MessageNotAck"):
            fut = self._acks.pop(str(msg["oMId"]), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if not self.handshake_done and mtype not in self.HANDSHAKE_TYPES:
            await self.send(not_ack(msg["mId"], f"{mtype} before the Version exchange"))
            return
        try:
            await self.handle(msg)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # a peer's message never ends this end
            # A well-formed message whose values this end's handler could not use
            # (a case the checks above missed): refuse it, log it, keep serving.
            log.warning("%s from %s: %s: %s", mtype, self.peer, exc.__class__.__name__, exc)
            self.mlog.event(self.clock_ms(), self.peer, "handler_error", type=mtype,
                            error=f"{exc.__class__.__name__}: {exc}"[:200])
            await self.send(not_ack(msg["mId"], f"{mtype}: values not usable "
                                    f"({exc.__class__.__name__})"))

    async def handle(self, msg: dict[str, Any]) -> None:
        """Handle one valid message (acknowledge or refuse it); subclasses override."""
        await self.send(not_ack(msg["mId"], f"{msg['type']}: not supported here"))

    async def ack(self, msg: dict[str, Any]) -> None:
        """Acknowledge ``msg``."""
        await self.send(ack(msg["mId"]))

    # -- end --------------------------------------------------------------------
    def _lost(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.mlog.event(self.clock_ms(), self.peer, "disconnected", reason=why)
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(ConnectionError(why))
        self._acks.clear()
        self.writer.close()

    async def close(self) -> None:
        """Close the connection."""
        self._lost("closed by this end")
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
