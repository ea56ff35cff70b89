"""Serial bridge on real pseudo-terminals, with a terminal program at the other end.

The bridge opens a stable path (a symlink, as udev gives /dev/serial/by-id/...); pulling
the cable closes the pty and a new one appears behind the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge_helpers import event_count, make_desk, make_order, outbox
from serial_terminal import Terminal
from waiting import eventually

from edged.bridges.framing import Frame, encode_frame
from edged.bridges.serial import CURSOR, SerialBridge
from edged.bridges.settings import SerialConfig
from edged.flow.desk import OrderDesk
from edged.journal.store import Journal
from edged.state import BoxState


def config(link: Path, **overrides: Any) -> SerialConfig:
    cfg = SerialConfig(
        enabled=True,
        port=str(link),
        baudrate=115200,
        ack_timeout=0.3,
        max_retries=3,
        reconnect_min=0.05,
        reconnect_max=0.2,
        max_frame_bytes=8192,
        max_command_bytes=2048,
    )
    return replace(cfg, **overrides)


@contextlib.asynccontextmanager
async def running(
    cfg: SerialConfig, journal: Journal, desk: OrderDesk, state: BoxState
) -> AsyncIterator[SerialBridge]:
    bridge = SerialBridge(cfg, journal, desk, state)
    task = asyncio.create_task(bridge.run(), name="test-serial-bridge")
    try:
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert state.get("bridge.serial") == "offline"


async def test_events_are_delivered_once_acknowledged(tmp_path: Path, journal: Journal) -> None:
    desk, state = make_desk(journal)
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with running(config(link), journal, desk, state) as bridge:
            await eventually(
                lambda: state.get("bridge.serial") == "online",
                what="hello acknowledged",
                within=20.0,
            )
            assert term.of("H")
            for i in (1, 2, 3):
                await desk.ingest(make_order(i), "test")
            await eventually(lambda: len(term.of("E")) >= 3, what="three events", within=20.0)
            events = term.json_of("E")
            assert [e["order_id"] for e in events] == [1, 2, 3]
            assert events[0]["order"]["lines"][0]["options"][0]["label"] == "Jamón Serrano"
            # Pure ASCII on the wire: non-ASCII travels as JSON escapes.
            assert b"\\u00f3n Serrano" in term.of("E")[0].payload
            await eventually(
                lambda: bridge._cursor == journal.last_seq, what="the cursor", within=20.0
            )
            assert await journal.get_cursor(CURSOR) == journal.last_seq
            assert bridge.retransmits == 0 and term.errors == []
    finally:
        term.close()


async def test_commands_answered_once_per_id_and_per_frame(
    tmp_path: Path, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(5), "test")
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with running(config(link), journal, desk, state):
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            body = {"id": "s-1", "command": "accept", "order_id": 5}
            seq = term.command(body)
            term.command(body, seq=seq)  # our ACK "got lost": same frame again
            term.command(body)  # the POS retried the command itself: new frame, same id
            await eventually(lambda: len(term.of("R")) >= 2, what="two responses", within=20.0)
            await eventually(
                lambda: len(term.of("A")) >= 3, what="an ACK for each command frame", within=20.0
            )
            responses = term.json_of("R")
            assert [r["id"] for r in responses] == ["s-1", "s-1"]
            assert responses[0] == responses[1] and responses[0]["status"] == "queued"
            (row,) = await outbox(journal)
            assert row.source == "serial"
            await journal.finish_command(row, ok=True, order=make_order(5, "accepted"))
            await eventually(lambda: len(term.of("R")) >= 3, what="the final response", within=20.0)
            assert term.json_of("R")[2]["status"] == "ok"
    finally:
        term.close()


async def test_checksum_errors_are_naked_and_junk_is_ignored(
    tmp_path: Path, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with running(config(link), journal, desk, state) as bridge:
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            good = encode_frame(9, "C", b'{"id":"p1","command":"ping"}')
            broken = good.replace(b"ping", b"pong")  # payload changed, checksum not
            term.write(b"\x00\xff garbage \r\n\x1b[2J" + broken)
            await eventually(lambda: bool(term.of("N")), what="a NAK", within=20.0)
            assert term.of("N")[0].payload == b"CHECKSUM"
            assert bridge.handler.handled == 0
            term.write(b"more junk" + good + b"\xfe\xfe")
            await eventually(lambda: bool(term.of("R")), what="the pong", within=20.0)
            assert term.json_of("R")[0]["status"] == "ok"
            assert len(term.of("N")) == 1  # junk between frames is not NAKed
            assert bridge.naks_sent == 1
    finally:
        term.close()


async def test_nak_means_retransmit(tmp_path: Path, journal: Journal) -> None:
    desk, state = make_desk(journal)
    link = tmp_path / "pos-tty"
    naked: set[int] = set()

    def nak_each_event_once(frame: Frame) -> str:
        if frame.kind == "E" and frame.seq not in naked:
            naked.add(frame.seq)
            return "nak"
        return "ack"

    term = Terminal(link, nak_each_event_once)
    try:
        async with running(config(link), journal, desk, state) as bridge:
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            await desk.ingest(make_order(1), "test")
            await eventually(
                lambda: bridge._cursor == journal.last_seq, what="delivery", within=20.0
            )
            first, second = term.of("E")
            assert first == second  # the same frame, same sequence number
            assert bridge.retransmits == 1
    finally:
        term.close()


async def test_timeouts_retransmit_up_to_the_limit_then_reopen(
    tmp_path: Path, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    link = tmp_path / "pos-tty"
    deaf = {"on": True}

    def deaf_to_events(frame: Frame) -> str:
        return "ignore" if frame.kind == "E" and deaf["on"] else "ack"

    term = Terminal(link, deaf_to_events)
    cfg = config(link, ack_timeout=0.05, max_retries=2)
    try:
        async with running(cfg, journal, desk, state) as bridge:
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            await desk.ingest(make_order(1), "test")
            # 1 send + 2 retransmissions, then the line is reopened with a new hello.
            await eventually(lambda: len(term.of("H")) >= 2, what="the reopen", within=20.0)
            second_hello = [i for i, f in enumerate(term.frames) if f.kind == "H"][1]
            copies = [f for f in term.frames[:second_hello] if f.kind == "E"]
            assert len(copies) == 3 and len({f.seq for f in copies}) == 1
            assert bridge._cursor < journal.last_seq  # not acknowledged: not delivered
            deaf["on"] = False
            await eventually(
                lambda: bridge._cursor == journal.last_seq,
                what="delivery after reopen",
                within=20.0,
            )
            assert bridge.reconnects >= 1
    finally:
        term.close()


async def test_cable_pulled_mid_frame_is_survived(tmp_path: Path, journal: Journal) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(5), "test")
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with running(config(link), journal, desk, state) as bridge:
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            body = {"id": "pull-1", "command": "cancel", "order_id": 5, "comment": "burnt"}
            frame = encode_frame(1, "C", json.dumps(body).encode())
            term.write(frame[: len(frame) // 2])  # half a frame, then the cable goes
            term.close()
            await eventually(
                lambda: state.get("bridge.serial") == "offline",
                what="the bridge to notice",
                within=20.0,
            )
            await desk.ingest(make_order(6), "test")  # happens while unplugged
            term = Terminal(link)  # plugged back in (new pty, same path)
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online again", within=20.0
            )
            assert term.of("H")
            await eventually(
                lambda: 6 in [e["order_id"] for e in term.json_of("E")],
                what="missed event",
                within=20.0,
            )
            term.command(body)
            term.command(body)
            await eventually(lambda: len(term.of("R")) >= 2, what="answers", within=20.0)
            assert len(await outbox(journal)) == 1
            assert bridge.reconnects >= 1
    finally:
        term.close()


async def test_hostile_frames_get_errors_and_change_nothing(
    tmp_path: Path, journal: Journal
) -> None:
    desk, state = make_desk(journal)
    await desk.ingest(make_order(5), "test")
    link = tmp_path / "pos-tty"
    term = Terminal(link)
    try:
        async with running(config(link), journal, desk, state):
            await eventually(
                lambda: state.get("bridge.serial") == "online", what="online", within=20.0
            )
            before = await event_count(journal)
            term.command(b"this is not json")
            term.command({"id": "big", "command": "accept", "order_id": 5, "pad": "x" * 4000})
            term.command({"id": "typ", "command": "accept", "order_id": {"a": 1}})
            term.command({"id": "unk", "command": "open_drawer"})
            term.command({"id": "nocmd", "order_id": 5})
            await eventually(
                lambda: len(term.of("R")) >= 5, what="five error responses", within=20.0
            )
            codes = [(r["id"], r["code"]) for r in term.json_of("R")]
            assert codes == [
                (None, "BAD_JSON"),
                ("big", "TOO_LARGE"),
                ("typ", "BAD_FIELD"),
                ("unk", "UNKNOWN_COMMAND"),
                ("nocmd", "BAD_FIELD"),
            ]
            # A frame longer than the line accepts is refused for good, not retried.
            term.write(encode_frame(50, "C", b"x" * 9000))
            await eventually(
                lambda: any(f.payload == b"TOO_LARGE" for f in term.of("N")),
                what="NAK",
                within=20.0,
            )
            # A frame type the box does not take.
            term.write(encode_frame(51, "E", b"{}"))
            await eventually(
                lambda: any(f.payload == b"BAD_TYPE" for f in term.of("N")), what="NAK", within=20.0
            )
            assert await event_count(journal) == before
            assert await outbox(journal) == []
    finally:
        term.close()
