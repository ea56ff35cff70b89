"""Serial bridge: the same events and commands as MQTT, over a line to one POS terminal.

Framing and checksums live in :mod:`edged.bridges.framing` (pure); this module is the
transport: it opens the port with pyserial-asyncio-fast, runs stop-and-wait delivery with
ACK/NAK, retransmission on timeout up to ``max_retries``, and reopens the port with backoff
whenever the line dies (device gone, EOF, I/O error) or the terminal stops answering.

Events are delivered from the journal through the durable cursor ``bridge.serial``: the
cursor moves only once the terminal acknowledged the frame, so after a pulled cable or a
reboot the terminal gets everything it has not acknowledged, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import serial
import serial_asyncio_fast

from edged.bridges.framing import Frame, FrameDecoder, FrameError, encode_frame, escape_payload
from edged.bridges.link import BackoffPace, Link, keep_linked
from edged.bridges.protocol import CommandHandler, Response, dumps, encode_event
from edged.bridges.settings import SerialConfig
from edged.decoding import digest
from edged.flow.desk import OrderDesk
from edged.journal.events import Event
from edged.journal.follower import Follower
from edged.journal.store import Journal
from edged.state import BoxState

log = logging.getLogger(__name__)

CURSOR = "bridge.serial"
COMMAND_QUEUE = 16
# NAK reasons after which a retransmission is pointless.
FINAL_NAKS = frozenset({"TOO_LARGE", "BAD_TYPE"})
_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD}


class LinkDown(Exception):
    """The line died or the terminal stopped answering; reopen and start over."""


class _LineProtocol(asyncio.Protocol):
    """Bytes in, frames out; notices when the line goes away."""

    def __init__(self, max_frame: int) -> None:
        self.decoder = FrameDecoder(max_frame)
        self.frames: asyncio.Queue[Frame | FrameError] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            self.frames.put_nowait(item)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_exception(LinkDown(str(exc) if exc else "port closed"))

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise LinkDown("port closed")
        self.transport.write(data)


class SerialBridge:
    """Bridge to one POS terminal on a serial line. Run :meth:`run` as a task."""

    def __init__(
        self, config: SerialConfig, journal: Journal, desk: OrderDesk, state: BoxState
    ) -> None:
        self.config = config
        self.journal = journal
        self.state = state
        self.handler = CommandHandler(
            journal,
            desk,
            bridge="serial",
            max_command_bytes=config.max_command_bytes,
            max_catalog_bytes=config.max_frame_bytes,
        )
        self._wake = asyncio.Event()
        # Moves (and is written) once the terminal acknowledged each frame.
        # Lazy cursor: terminals drop ids they have seen, so a crash may only repeat a few.
        self._follower = Follower(journal, CURSOR, batch=32, lazy=True)
        self._seq = 0
        self._last_in: int | None = None
        self._waiter: tuple[int, asyncio.Future[str]] | None = None
        self._responses: asyncio.Queue[Response] = asyncio.Queue(maxsize=64)
        self._commands: asyncio.Queue[bytes] = asyncio.Queue(maxsize=COMMAND_QUEUE)
        self._line: _LineProtocol | None = None
        # Counters for the status page and the tests.
        self.sent = 0
        self.retransmits = 0
        self.naks_sent = 0
        self.link = Link("serial", config.port, state)

    def _on_events(self, events: list[Event]) -> None:
        self._wake.set()

    @property
    def _cursor(self) -> int:
        return self._follower.position

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the line open and the terminal fed, until cancelled."""
        self.journal.add_listener(self._on_events)
        try:
            await keep_linked(
                self.link,
                self._session,
                follower=self._follower,
                prune=self.handler.prune,
                link_errors=(LinkDown, OSError, serial.SerialException),
                pace=BackoffPace(self.config.reconnect_min, self.config.reconnect_max),
            )
        finally:
            self.journal.remove_listener(self._on_events)

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    async def _open(self) -> tuple[asyncio.Transport, _LineProtocol]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        transport, protocol = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: _LineProtocol(cfg.max_frame_bytes),
            cfg.port,
            baudrate=cfg.baudrate,
            bytesize=cfg.bytesize,
            parity=_PARITY[cfg.parity],
            stopbits=cfg.stopbits,
            rtscts=cfg.rtscts,
            exclusive=True,
        )
        assert isinstance(protocol, _LineProtocol)
        return transport, protocol

    async def _session(self) -> None:
        transport, line = await self._open()
        self._line = line
        self._seq = 0
        self._last_in = None
        self._waiter = None
        log.info("serial bridge: %s open at %d baud", self.config.port, self.config.baudrate)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(line), name="serial-read")
                group.create_task(self._work(), name="serial-commands")
                group.create_task(self._deliver(), name="serial-deliver")
                group.create_task(self._watch(line), name="serial-watch")
        except* LinkDown as group:
            raise group.exceptions[0] from None
        except* (OSError, serial.SerialException) as group:
            raise LinkDown(str(group.exceptions[0])) from None
        finally:
            self._line = None
            if self._waiter is not None and not self._waiter[1].done():
                self._waiter[1].cancel()
            transport.close()
            # Commands received on the dead line are answered nowhere: drop them; the
            # terminal repeats them (same id) and gets the same answer.
            while not self._commands.empty():
                self._commands.get_nowait()

    @staticmethod
    async def _watch(line: _LineProtocol) -> None:
        await line.lost

    # -- incoming --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._line is None:
            raise LinkDown("port closed")
        self._line.write(data)

    def _nak(self, seq: int, reason: str) -> None:
        self.naks_sent += 1
        self._write(encode_frame(seq, "N", reason.encode()))

    async def _read(self, line: _LineProtocol) -> None:
        while True:
            item = await line.frames.get()
            if isinstance(item, FrameError):
                log.debug("serial bridge: bad frame (%s, %d bytes)", item.reason, item.size)
                self._nak(0, item.reason)
                continue
            try:
                self._on_frame(item)
            except LinkDown:
                raise
            except Exception:
                # The last line of defence: that frame is lost (the terminal repeats it
                # when no ACK comes), the line goes on.
                log.exception(
                    "serial bridge: frame %s dropped after an unexpected error",
                    digest(item.payload),
                )

    def _on_frame(self, frame: Frame) -> None:
        if frame.kind in ("A", "N"):
            waiter = self._waiter
            if waiter is None or waiter[1].done():
                return  # late or stray: nothing outstanding
            if frame.kind == "A" and frame.seq != waiter[0]:
                return  # an ACK for an older copy
            reason = frame.payload.decode("ascii", "replace")
            waiter[1].set_result("ack" if frame.kind == "A" else f"nak:{reason}")
            return
        if frame.kind == "H":
            self._last_in = frame.seq
            self._write(encode_frame(frame.seq, "A"))
            log.info("serial bridge: terminal said hello")
            return
        if frame.kind != "C":
            self._nak(frame.seq, "BAD_TYPE")
            return
        if frame.seq == self._last_in:
            # Our ACK got lost and the terminal sent it again: ACK, do not apply twice.
            self._write(encode_frame(frame.seq, "A"))
            return
        try:
            self._commands.put_nowait(frame.payload)
        except asyncio.QueueFull:
            self._nak(frame.seq, "BUSY")  # push back: the terminal retries later
            return
        self._last_in = frame.seq
        self._write(encode_frame(frame.seq, "A"))

    async def _work(self) -> None:
        while True:
            payload = await self._commands.get()
            response = await self.handler.handle_safely(payload)
            await self._responses.put(response)
            self._wake.set()

    # -- outgoing --------------------------------------------------------------------------

    async def _send(self, kind: str, payload: bytes) -> bool:
        """Send one frame and wait for its ACK, retransmitting on timeout or NAK.

        True once acknowledged; False if the terminal refused it for good. Raises
        :class:`LinkDown` when the retries run out.
        """
        self._seq = (self._seq + 1) % 256
        frame = encode_frame(self._seq, kind, escape_payload(payload))
        loop = asyncio.get_running_loop()
        for attempt in range(self.config.max_retries + 1):
            future: asyncio.Future[str] = loop.create_future()
            self._waiter = (self._seq, future)
            if attempt:
                self.retransmits += 1
            self._write(frame)
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a stop
                # that arrives as the ACK lands.
                async with asyncio.timeout(self.config.ack_timeout):
                    result = await future
            except TimeoutError:
                log.debug("serial bridge: no ACK for frame %02X", self._seq)
                continue
            finally:
                self._waiter = None
            if result == "ack":
                self.sent += 1
                return True
            reason = result.partition(":")[2]
            if reason in FINAL_NAKS:
                log.error("serial bridge: terminal refused a %s frame: %s", kind, reason)
                return False
        raise LinkDown(f"no ACK after {self.config.max_retries} retransmissions")

    async def _deliver(self) -> None:
        hello = {"v": 1, "last_event": self._cursor}
        await self._send("H", dumps(hello, ascii_only=True))
        self.link.online()
        while True:
            self._wake.clear()
            while not self._responses.empty():
                await self._send("R", self._frame_json(self._responses.get_nowait().to_dict()))
            events = await self._follower.read()
            if not events:
                with contextlib.suppress(TimeoutError):
                    # The timeout catches commits made by other processes (the CLI).
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                continue
            for event in events:
                await self._deliver_event(event)
                if not self._responses.empty():
                    break  # answer the terminal before carrying on with the backlog

    async def _deliver_event(self, event: Event) -> None:
        message = await encode_event(event, self.journal, full_payload=self.config.full_payload)
        if message is not None:
            await self._send("E", self._frame_json(message))
        for final in await self.handler.finals([event]):
            await self._send("R", self._frame_json(final.response.to_dict()))
        await self._follower.commit(event.seq)

    def _frame_json(self, obj: dict[str, Any]) -> bytes:
        payload = dumps(obj, ascii_only=True)
        if len(payload) > self.config.max_frame_bytes - 16:
            # Never send what the terminal is told it may drop; say so instead.
            log.error("serial bridge: message of %d bytes does not fit a frame", len(payload))
            short = {k: obj.get(k) for k in ("v", "id", "kind", "order_id", "status")}
            payload = json.dumps({**short, "truncated": True}).encode()
        return payload
