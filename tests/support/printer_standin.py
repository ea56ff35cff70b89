"""A network printer stand-in: a real TCP server that keeps what it is sent and answers
status queries the way a printer in the chosen state would: ESC/POS ``DLE EOT n``, or, in
the ``star-*`` modes, Star's ``ESC ACK SOH`` with an automatic status (ASB)."""

from __future__ import annotations

import asyncio
import contextlib
import time

# Replies to DLE EOT 1 (printer), 2 (offline cause), 4 (paper roll sensor).
REPLIES = {
    "online": {1: 0x12, 2: 0x12, 4: 0x12},
    "paper_out": {1: 0x1A, 2: 0x32, 4: 0x72},
    "cover_open": {1: 0x1A, 2: 0x16, 4: 0x12},
    "offline": {1: 0x1A, 2: 0x52, 4: 0x12},
}
# Star ASB, 9 bytes (header 0x23: length 9; 0x86: version 3 with a length extension bit).
# Byte 3: bit 3 offline, bit 5 cover open; byte 6: bit 3 paper end.
STAR_ASB = {
    "star-online": bytes.fromhex("238600000000000000"),
    "star-cover_open": bytes.fromhex("238628000000000000"),
    "star-paper_out": bytes.fromhex("238608000008000000"),
}
ASB_REQUEST = b"\x1b\x06\x01"
MODES = (*REPLIES, *STAR_ASB, "silent", "hang")


class TcpPrinter:
    """``mode``: online, paper_out, cover_open, offline (answers accordingly), silent
    (reads but never answers), hang (accepts, then never reads)."""

    def __init__(self, mode: str = "online") -> None:
        assert mode in MODES
        self.mode = mode
        self.jobs: list[bytes] = []  # one entry per connection that sent ticket bytes
        self.queries = 0
        self.first_byte_at: list[float] = []  # perf_counter() of each ticket's first byte
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.received = asyncio.Event()  # set when a connection that sent a ticket ends
        self.first_byte = asyncio.Event()  # set when a ticket's first byte arrives
        self.port = 0

    async def start(self) -> TcpPrinter:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpPrinter:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ticket = bytearray()
        pending = b""
        try:
            if self.mode == "hang":
                await asyncio.Event().wait()
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    ticket += pending  # a short tail held back in case it was a query
                    break
                data = pending + chunk
                pending = b""
                i = 0
                while i < len(data):
                    if self.mode in STAR_ASB and data[i] == 0x1B:
                        if len(data) - i < 3:
                            pending = data[i:]
                            break
                        if data[i : i + 3] == ASB_REQUEST:
                            self.queries += 1
                            writer.write(STAR_ASB[self.mode])
                            await writer.drain()
                            i += 3
                            continue
                    if data[i] == 0x10 and self.mode not in STAR_ASB:
                        if len(data) - i < 3:
                            pending = data[i:]
                            break
                        if data[i + 1] == 0x04:
                            self.queries += 1
                            reply = REPLIES.get(self.mode, {}).get(data[i + 2])
                            if reply is not None:
                                writer.write(bytes([reply]))
                                await writer.drain()
                            i += 3
                            continue
                    if not ticket:
                        self.first_byte_at.append(time.perf_counter())
                        self.first_byte.set()
                    ticket.append(data[i])
                    i += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if ticket:
                self.jobs.append(bytes(ticket))
                self.received.set()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)
