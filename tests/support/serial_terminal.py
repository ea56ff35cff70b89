"""The POS end of a serial line for tests: a real pseudo-terminal behind a stable path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edged.bridges.framing import Frame, FrameDecoder, FrameError, encode_frame, escape_payload

Policy = Callable[[Frame], str]  # "ack" | "nak" | "ignore"


class Terminal:
    """The POS end of the line: a pty master, our own sequence numbers, a frame log."""

    def __init__(self, link: Path, policy: Policy | None = None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tmp = link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(link)
        self.decoder = FrameDecoder(1 << 20)
        self.frames: list[Frame] = []
        self.errors: list[FrameError] = []
        self.policy = policy or (lambda frame: "ack")
        self.seq = 0
        self.closed = False
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while nobody holds the other end open
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                self.errors.append(item)
                continue
            self.frames.append(item)
            if item.kind in "ERH":
                action = self.policy(item)
                if action == "ack":
                    self.write(encode_frame(item.seq, "A"))
                elif action == "nak":
                    self.write(encode_frame(item.seq, "N", b"CHECKSUM"))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def command(self, body: Any, *, seq: int | None = None) -> int:
        """Send a command frame; returns its sequence number."""
        if seq is None:
            self.seq = (self.seq + 1) % 256
            seq = self.seq
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.write(encode_frame(seq, "C", escape_payload(payload)))
        return seq

    def of(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f.kind == kind]

    def json_of(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(f.payload) for f in self.of(kind)]

    def close(self) -> None:
        """Pull the cable: both ends of the pty go away."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
