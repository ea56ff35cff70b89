"""Printer transports against real sockets, a real pseudo-terminal and real files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from escpos_decoder import decode
from printer_standin import REPLIES, TcpPrinter
from waiting import eventually

from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode
from edged.printing.settings import PrinterConfig, parse_uri
from edged.printing.slips import text_ticket
from edged.printing.ticket import TicketOptions
from edged.printing.transports import (
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    Transport,
    UsbTransport,
    make_transport,
    parse_status,
)

META = JobMeta(1, "text", None)


def ticket_bytes(text: str = "Hola, señor: 12,50€") -> bytes:
    settings = EncoderSettings(codepages.resolve("default"), codepages.get_profile("default"))
    return encode(text_ticket([text], TicketOptions()), settings)


def transport(uri: str, timeout: float = 0.5) -> Transport:
    config = PrinterConfig(name="p", uri=uri, timeout=timeout)
    return make_transport(config, base_dir=Path("/nonexistent"), codec="cp858")


def test_parse_status() -> None:
    assert parse_status(0x12, 0x12, 0x12) == Status("online", "")
    assert parse_status(0x12, 0x12, 0x1E).detail == "paper low"
    assert parse_status(0x1A, 0x32, 0x72).state == "paper_out"
    assert parse_status(0x1A, 0x16, 0x12).state == "cover_open"
    assert parse_status(0x1A, 0x52, 0x12).state == "offline"
    assert parse_status(None, None, None).state == "unknown"
    # A byte that cannot be a status reply proves nothing either.
    assert parse_status(0xFF, None, None).state == "unknown"
    assert parse_status(0x00, 0x00, 0x00).state == "unknown"


async def test_tcp_online_prints_exact_bytes() -> None:
    data = ticket_bytes()
    async with TcpPrinter("online") as printer:
        t = transport(printer.uri)
        assert (await asyncio.to_thread(t.status)).state == "online"
        seen = await asyncio.to_thread(t.deliver, data, META)
        assert seen.state == "online"
        await asyncio.wait_for(printer.received.wait(), 5)
    assert printer.jobs == [data]
    decoded = decode(printer.jobs[0])
    assert decoded.unexpected == []
    assert decoded.lines[0].text == "Hola, señor: 12,50€"


@pytest.mark.parametrize("mode", ["paper_out", "cover_open", "offline"])
async def test_tcp_not_ready_sends_nothing(mode: str) -> None:
    async with TcpPrinter(mode) as printer:
        t = transport(printer.uri)
        assert (await asyncio.to_thread(t.status)).state == mode
        with pytest.raises(NotReady) as err:
            await asyncio.to_thread(t.deliver, ticket_bytes(), META)
        assert err.value.status.state == mode
    assert printer.jobs == []


async def test_tcp_silent_printer_is_unknown_not_fine() -> None:
    async with TcpPrinter("silent") as printer:
        t = transport(printer.uri, timeout=0.3)
        status = await asyncio.to_thread(t.status)
        assert status.state == "unknown"
        seen = await asyncio.to_thread(t.deliver, ticket_bytes(), META)
        assert seen.state == "unknown"
        await asyncio.wait_for(printer.received.wait(), 5)
    assert len(printer.jobs) == 1


async def test_tcp_printer_that_accepts_then_hangs() -> None:
    async with TcpPrinter("hang") as printer:
        t = transport(printer.uri, timeout=0.3)
        assert (await asyncio.to_thread(t.status)).state == "unknown"
        # More than any socket buffer holds: the send must give up, saying bytes went out.
        big = b"x" * (64 * 1024 * 1024)
        with pytest.raises(PrinterError) as err:
            await asyncio.to_thread(t.deliver, big, META)
        assert err.value.partial


async def test_tcp_nobody_listening_is_offline() -> None:
    async with TcpPrinter("online") as printer:
        uri = printer.uri
    t = transport(uri)
    status = await asyncio.to_thread(t.status)
    assert status.state == "offline"
    assert "cannot connect" in status.detail
    with pytest.raises(NotReady):
        await asyncio.to_thread(t.deliver, ticket_bytes(), META)


class PtyPrinter:
    """The printer end of a real pseudo-terminal: keeps bytes, answers DLE EOT."""

    def __init__(self, mode: str = "online") -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.mode = mode
        self.data = bytearray()
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return
        i = 0
        while i < len(chunk):
            if chunk[i : i + 2] == b"\x10\x04" and i + 2 < len(chunk):
                reply = REPLIES.get(self.mode, {}).get(chunk[i + 2])
                if reply is not None:
                    os.write(self.master, bytes([reply]))
                i += 3
                continue
            self.data.append(chunk[i])
            i += 1

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
async def pty_printer() -> AsyncIterator[PtyPrinter]:
    printer = PtyPrinter()
    try:
        yield printer
    finally:
        printer.close()


async def test_serial_on_a_pty(pty_printer: PtyPrinter) -> None:
    data = ticket_bytes("Piña colada: 4,00€")
    t = transport(f"serial://{pty_printer.path}?baudrate=19200")
    assert (await asyncio.to_thread(t.status)).state == "online"
    seen = await asyncio.to_thread(t.deliver, data, META)
    assert seen.state == "online"
    await eventually(lambda: len(pty_printer.data) >= len(data), what="bytes on the pty")
    assert bytes(pty_printer.data) == data
    assert decode(bytes(pty_printer.data)).lines[0].text == "Piña colada: 4,00€"

    pty_printer.mode = "paper_out"
    with pytest.raises(NotReady) as err:
        await asyncio.to_thread(t.deliver, data, META)
    assert err.value.status.state == "paper_out"

    pty_printer.mode = "silent"
    assert (await asyncio.to_thread(t.status)).state == "unknown"


async def test_serial_missing_port_is_offline(tmp_path: Path) -> None:
    t = transport(f"serial://{tmp_path}/ttyNOPE")
    assert (await asyncio.to_thread(t.status)).state == "offline"


async def test_file_transport(tmp_path: Path) -> None:
    out = tmp_path / "lp0"
    t = transport(f"file://{out}")
    assert (await asyncio.to_thread(t.status)).state == "online"
    data = ticket_bytes()
    await asyncio.to_thread(t.deliver, data, META)
    await asyncio.to_thread(t.deliver, data, META)
    assert out.read_bytes() == data * 2
    gone = transport(f"file://{tmp_path}/missing/lp0")
    assert (await asyncio.to_thread(gone.status)).state == "offline"


def test_usb_finds_its_usblp_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mimic sysfs: usbmisc/lp3/device -> .../1-1/1-1:1.0 whose parent has the ids.
    device = tmp_path / "devices" / "1-1"
    interface = device / "1-1:1.0"
    interface.mkdir(parents=True)
    (device / "idVendor").write_text("04b8\n")
    (device / "idProduct").write_text("0202\n")
    lp = tmp_path / "usbmisc" / "lp3"
    lp.mkdir(parents=True)
    (lp / "device").symlink_to(interface)
    monkeypatch.setattr(UsbTransport, "SYSFS", tmp_path / "usbmisc")
    found = UsbTransport(parse_uri("usb://04b8:0202"), 0.5)
    assert found.path() == "/dev/usb/lp3"
    other = UsbTransport(parse_uri("usb://0416:5011"), 0.5)
    assert other.path() == ""
    assert other.status().state == "offline"
    with pytest.raises(NotReady):
        other.deliver(b"x", META)


async def test_virtual_printer_writes_text_and_picture(tmp_path: Path) -> None:
    config = PrinterConfig(name="v", uri="virtual://tickets", timeout=1.0)
    t = make_transport(config, base_dir=tmp_path, codec="cp858")
    meta = JobMeta(7, "order", 422429)
    await asyncio.to_thread(t.deliver, ticket_bytes("Jamón y queso: 3,00€"), meta)
    texts = list((tmp_path / "tickets").glob("*-422429-order.txt"))
    pngs = list((tmp_path / "tickets").glob("*-422429-order.png"))
    assert len(texts) == 1 and len(pngs) == 1
    assert "Jamón y queso: 3,00€" in texts[0].read_text("utf-8")
    from PIL import Image

    with Image.open(pngs[0]) as img:
        assert img.width > 300 and img.height > 40
        # Something dark was drawn: the text is there to read.
        assert img.convert("L").getextrema()[0] < 100
    (tmp_path / "tickets" / "PAPER_OUT").touch()
    assert (await asyncio.to_thread(t.status)).state == "paper_out"
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "tickets" / "PAPER_OUT").unlink()
