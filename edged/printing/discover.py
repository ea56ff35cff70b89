"""Printers the box can find by itself, for the setup page's "pick a printer" list.

* USB printers the kernel's ``usblp`` driver exposes as ``/dev/usb/lp*``;
* USB-serial adapters (``/dev/serial/by-id/*``, else ``/dev/ttyUSB*`` and ``/dev/ttyACM*``);
* network printers advertised over mDNS/DNS-SD as ``_pdl-datastream._tcp`` (raw, port 9100)
  or ``_printer._tcp`` (LPD), through the avahi daemon the image runs, read with
  ``avahi-browse``. Without avahi the list says so instead of staying silently empty.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import shutil
from dataclasses import dataclass

log = logging.getLogger(__name__)

SERVICES = ("_pdl-datastream._tcp", "_printer._tcp")
RAW_PORT = 9100
BROWSE_SECONDS = 5.0


@dataclass(frozen=True)
class Found:
    """One printer found: a suggested name, the address for the form and how it was seen."""

    name: str
    address: str
    via: str  # "usb", "serial" or "network"


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text).strip("-")
    while "--" in out:
        out = out.replace("--", "-")
    return out[:24] or "printer"


def local_devices(dev: str = "/dev") -> list[Found]:
    """USB printers and serial adapters present now."""
    found = [
        Found(f"usb-{os.path.basename(path)}", f"file://{path}", "usb")
        for path in sorted(glob.glob(os.path.join(dev, "usb", "lp*")))
    ]
    by_id = sorted(glob.glob(os.path.join(dev, "serial", "by-id", "*")))
    serial = by_id or sorted(
        glob.glob(os.path.join(dev, "ttyUSB*")) + glob.glob(os.path.join(dev, "ttyACM*"))
    )
    found += [
        Found(_slug(os.path.basename(path))[:24], f"serial://{path}?baudrate=19200", "serial")
        for path in serial
    ]
    return found


def parse_avahi(output: str) -> list[Found]:
    """Resolved entries of ``avahi-browse --parsable --resolve --terminate`` output.

    Resolved lines read ``=;iface;proto;name;type;domain;host;address;port;txt``; names
    escape characters as ``\\DDD``. A raw ``_pdl-datastream`` port is used as advertised;
    an LPD-only printer is offered on the raw port 9100 that ESC/POS printers listen on.
    """
    found: dict[str, Found] = {}
    for line in output.splitlines():
        parts = line.split(";")
        if len(parts) < 9 or parts[0] != "=":
            continue
        name, service, address, port = _unescape(parts[3]), parts[4], parts[7], parts[8]
        if service not in SERVICES or not address:
            continue
        if parts[2] == "IPv6" and address.startswith("fe80"):
            continue  # link-local needs a zone the form cannot carry
        raw_port = port if service == "_pdl-datastream._tcp" and port.isdigit() else RAW_PORT
        host = f"[{address}]" if ":" in address else address
        entry = Found(_slug(name), f"tcp://{host}:{raw_port}", "network")
        # A printer advertising both services is listed once, on its raw port.
        if service == "_pdl-datastream._tcp" or name not in found:
            found[name] = entry
    return sorted(found.values(), key=lambda f: f.name)


def _unescape(text: str) -> str:
    """An avahi label as it was advertised: avahi writes every byte outside
    ``[A-Za-z0-9_-]`` as ``\\DDD`` (decimal) and escapes ``.`` and ``\\`` with a
    backslash, so the escapes are bytes of UTF-8, decoded once they are all collected
    ("Cocina Se\\195\\177or" is "Cocina Señor", not "Cocina SeÃ±or")."""
    out, i = bytearray(), 0
    while i < len(text):
        digits = text[i + 1 : i + 4]
        if text[i] == "\\" and len(digits) == 3 and digits.isdigit() and int(digits) < 256:
            out.append(int(digits))
            i += 4
        elif text[i] == "\\" and i + 1 < len(text):
            out += text[i + 1].encode()
            i += 2
        else:
            out += text[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


async def network_printers(timeout: float = BROWSE_SECONDS) -> tuple[list[Found], str]:
    """Network printers and a problem in words (``""`` when the search ran)."""
    browse = shutil.which("avahi-browse")
    if browse is None:
        return [], "avahi-browse is not installed"
    outputs: list[str] = []
    for service in SERVICES:
        try:
            process = await asyncio.create_subprocess_exec(
                browse,
                "--parsable",
                "--resolve",
                "--terminate",
                "--no-db-lookup",
                service,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return [], f"avahi-browse could not start: {exc}"
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            return [], "avahi-browse did not answer"
        if process.returncode != 0:
            problem = stderr.decode(errors="replace").strip().splitlines()
            log.info("printer search: avahi-browse failed: %s", problem[-1:] or process.returncode)
            return [], "the avahi daemon is not running"
        outputs.append(stdout.decode(errors="replace"))
    return parse_avahi("\n".join(outputs)), ""
