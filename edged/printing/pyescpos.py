"""python-escpos, set up for the box: its in-memory printer builds the ESC/POS bytes.

Every ticket, slip, test page and setup ticket is written through python-escpos's ``Dummy``
printer (text and styles, the forced code page, ``GS v 0`` pictures, QR codes, the cut);
edged keeps its own asynchronous transports, status queries and the Star command set.

Two things are arranged here, once, before python-escpos is imported:

* its printer database is parsed from YAML and pickled into
  ``ESCPOS_CAPABILITIES_PICKLE_DIR``; under systemd that is the daemon's runtime directory
  (RAM, kept across restarts: the parse happens once per boot and nothing is written to the
  SD card); elsewhere python-escpos's own temporary directory;
* the profile handed to ``Dummy`` is a python-escpos ``Profile`` built from edged's printer
  database (python-escpos's own profiles with the newer escpos-printer-db ones laid over:
  :mod:`edged.printing.codepages`), with the head width filled in where the database says
  "Unknown" (python-escpos prints a warning to stdout for every picture otherwise).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from edged.printing import codepages


def _prepare_import() -> None:
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime and os.path.isdir(runtime):
        os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", runtime)


@functools.cache
def _profile_class(name: str, dots: int) -> type[Any]:
    _prepare_import()
    from escpos import capabilities

    data = dict(codepages.database()["profiles"][name])
    media = dict(data.get("media") or {})
    width = dict(media.get("width") or {})
    if not isinstance(width.get("pixels"), int) and dots:
        width["pixels"] = dots
        media["width"] = width
        data["media"] = media

    def init(self: Any) -> None:
        # Profile.__init__ would replace the database's features with {}.
        pass

    class_name = "Edged" + re.sub(r"[^0-9A-Za-z_]", "", name) + "Profile"
    cls: type[Any] = type(
        class_name, (capabilities.Profile,), {"profile_data": data, "__init__": init}
    )
    return cls


def printer(profile: str, dots: int) -> Any:
    """A fresh in-memory python-escpos printer for ``profile`` (``output`` holds the bytes)."""
    cls = _profile_class(profile, dots)
    from escpos.printer import Dummy

    return Dummy(profile=cls())


def warm_up(profile: str, dots: int) -> None:
    """Import python-escpos and build the profile ahead of the first ticket (the import and
    its database parse take most of a second here and several on a Pi): run it on a thread
    when the printers start, so the first order's ticket does not wait for it."""
    printer(profile, dots)
