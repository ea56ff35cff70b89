"""BoxState's keys: every fixed key documented, printer and part keys made one way."""

from __future__ import annotations

from typing import get_args

from edged import state as state_module
from edged.state import BoxState, FixedKey, part_key, printer_key


def test_every_fixed_key_is_documented() -> None:
    doc = state_module.__doc__ or ""
    missing = [key for key in get_args(FixedKey) if f"``{key}``" not in doc]
    assert missing == []


def test_printer_and_part_keys_read_back_by_name() -> None:
    box = BoxState()
    box.set(printer_key("bar"), {"state": "online", "detail": ""})
    box.set(part_key("spooler"), {"state": "running"})
    assert box.printers() == {"bar": {"state": "online", "detail": ""}}
    assert box.snapshot()["printer.bar"]["state"] == "online"
    assert box.get(part_key("spooler")) == {"state": "running"}
    assert "part.spooler" in box.current_keys()
    box.delete(printer_key("bar"))
    assert box.printers() == {}
