"""``virtual://DIR``: the null printer. Tickets become files instead of paper.

Each ticket is written twice into its directory, from the very bytes a real printer would
get (see :mod:`edged.virtual.printer` for how they are read back):

* ``<timestamp>-<order>-<kind>.txt``: the decoded text;
* ``<timestamp>-<order>-<kind>.png``: a picture of the paper, readable by a person.

Health can be played with for the demo: a file named ``PAPER_OUT``, ``COVER_OPEN`` or
``OFFLINE`` in the directory makes the printer report that state.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from edged.printing.settings import PrinterUri
from edged.printing.transports.base import (
    COVER_OPEN,
    OFFLINE,
    ONLINE,
    PAPER_OUT,
    JobMeta,
    NotReady,
    PrinterError,
    Status,
    Transport,
)
from edged.virtual.printer import PaperLine, interpret, render_png

log = logging.getLogger(__name__)

FLAGS = {"PAPER_OUT": PAPER_OUT, "COVER_OPEN": COVER_OPEN, "OFFLINE": OFFLINE}


class VirtualTransport(Transport):
    """``virtual://DIR``: prints into files instead of onto paper."""

    def __init__(
        self, uri: PrinterUri, timeout: float, *, directory: Path, codec: str, columns: int = 42
    ) -> None:
        super().__init__(uri, timeout)
        self.directory = directory
        self.codec = codec
        self.columns = columns

    def describe(self) -> str:
        return f"virtual {self.directory}"

    def status(self) -> Status:
        for flag, state in FLAGS.items():
            if (self.directory / flag).exists():
                return Status(state, f"{flag} flag file present")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Status(OFFLINE, f"cannot create {self.directory}: {exc.strerror}")
        if not os.access(self.directory, os.W_OK):
            return Status(OFFLINE, f"cannot write {self.directory}")
        return Status(ONLINE, "")

    def deliver(self, data: bytes, meta: JobMeta) -> Status:
        seen = self.status()
        if seen.state != ONLINE:
            raise NotReady(seen)
        try:
            self.write(data, meta)
        except OSError as exc:
            raise PrinterError(f"cannot write ticket: {exc}") from None
        return seen

    def write(self, data: bytes, meta: JobMeta) -> tuple[Path, Path]:
        """Write ``.txt`` and ``.png`` for one job; returns both paths."""
        paper = interpret(data, self.codec)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"{time.time() % 1:.3f}"[1:]
        order = str(meta.order_id) if meta.order_id is not None else "none"
        base = f"{stamp}-{order}-{meta.kind}"
        suffix = ""
        counter = 1
        while (self.directory / f"{base}{suffix}.txt").exists():
            counter += 1
            suffix = f"-{counter}"
        txt = self.directory / f"{base}{suffix}.txt"
        png = self.directory / f"{base}{suffix}.png"
        # The PNG first: a watcher that sees the .txt can count on the picture existing.
        tmp_png = png.with_suffix(".png.tmp")
        render_png(paper, self.columns, tmp_png)
        os.replace(tmp_png, png)
        tmp_txt = txt.with_suffix(".txt.tmp")
        text = paper.text()
        if meta.text and not any(isinstance(item, PaperLine) and item.text for item in paper.items):
            # A ticket printed as a picture has no text in its bytes: keep the ticket's own.
            text = "[raster]\n" + meta.text
        tmp_txt.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp_txt, txt)
        log.info("virtual printer: wrote %s", txt.name)
        return txt, png
