"""Every event kind has a typed payload, and old or odd rows decode to empty values."""

from __future__ import annotations

from typing import Any

import pytest

from edged.journal import events as ev

KINDS = [value for name, value in vars(ev).items() if name.isupper() and isinstance(value, str)]

WRITTEN: dict[str, tuple[dict[str, Any], ev.Payload]] = {
    ev.ORDER_NEW: (
        {"type": "delivery", "status": "waiting_sp_validation", "code": "AB12"},
        ev.OrderNew("delivery", "waiting_sp_validation", "AB12"),
    ),
    ev.ORDER_STATUS: (
        {
            "status": "kitchen",
            "previous": "done",
            "type": "delivery",
            "code": "AB12",
            "final": False,
            "reopened": True,
        },
        ev.OrderStatus("kitchen", "done", "delivery", "AB12", False, True),
    ),
    ev.ORDER_ACKNOWLEDGED: ({"source": "panel"}, ev.OrderAcknowledged("panel")),
    ev.COMMAND_QUEUED: (
        {"command_id": 7, "kind": "accept", "params": {"delay": 10}, "source": "web"},
        ev.CommandQueued(7, "accept", "web", {"delay": 10}),
    ),
    ev.COMMAND_DONE: (
        {"command_id": 7, "kind": "accept", "source": "web", "status": "kitchen"},
        ev.CommandDone(7, "accept", "web", "kitchen"),
    ),
    ev.COMMAND_FAILED: (
        {"command_id": 7, "kind": "cancel", "source": "mqtt", "code": "TOO_LATE", "message": "no"},
        ev.CommandFailed(7, "cancel", "mqtt", "TOO_LATE", "no"),
    ),
    ev.PRINTER_HEALTH: (
        {"printer": "front", "state": "paper_out", "detail": "cover open"},
        ev.PrinterHealth("front", "paper_out", "cover open"),
    ),
    ev.PRINT_DONE: (
        {"printer": "front", "job_id": 3, "kind": "order", "reprint": True},
        ev.PrintDone("front", 3, "order", True),
    ),
    ev.PRINT_FAILED: (
        {"printer": "", "job_id": None, "kind": "reprint", "reason": "no such printer"},
        ev.PrintFailed("", None, "reprint", "no such printer"),
    ),
    ev.PRINT_REQUESTED: (
        {
            "kind": "text",
            "source": "setup",
            "printer": "front",
            "lines": ["a", "b"],
            "qr": "WIFI:",
            "big": [0, True, "x", 1],
        },
        ev.PrintRequested("text", "setup", None, "front", ["a", "b"], "WIFI:", [0, 1]),
    ),
    ev.LINK_PAIRED: ({"selling_point_id": 42}, ev.LinkPaired(42)),
    ev.LINK_UNPAIRED: ({}, ev.LinkUnpaired()),
    ev.CATALOG_CHANGED: (
        {
            "selling_point_id": 42,
            "products": 30,
            "unavailable": 2,
            "changed": [{"kind": "product", "id": 9, "available": False}, "odd"],
        },
        ev.CatalogChanged(42, 30, 2, [{"kind": "product", "id": 9, "available": False}]),
    ),
}


def test_every_kind_has_a_typed_payload() -> None:
    assert sorted(WRITTEN) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_what_the_writers_store_decodes_to_its_fields(kind: str) -> None:
    data, expected = WRITTEN[kind]
    event = ev.Event(seq=1, ts=0.0, kind=kind, order_id=5, data=data)
    assert ev.payload(event) == expected


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_an_old_row_without_fields_decodes_to_empty_values(kind: str) -> None:
    decoded = ev.decode(kind, {})
    assert type(decoded) is type(WRITTEN[kind][1])
    assert ev.decode(kind, {"printer": 12, "command_id": "7", "final": "yes"}) is not None


def test_odd_values_do_not_pass_as_their_type() -> None:
    odd = ev.decode(ev.COMMAND_DONE, {"command_id": True, "status": 3})
    assert odd == ev.CommandDone(0, "", "", "")
    failed = ev.decode(ev.COMMAND_FAILED, {"code": ""})
    assert isinstance(failed, ev.CommandFailed) and failed.code == "ERROR"
    # A printer name that is not text is kept as text: it is refused as unknown, not lost.
    request = ev.decode(ev.PRINT_REQUESTED, {"kind": "test", "printer": 12, "lines": "x"})
    assert isinstance(request, ev.PrintRequested)
    assert request.printer == "12" and request.lines is None


def test_a_kind_this_edged_does_not_know_has_no_payload() -> None:
    assert ev.decode("order.teleported", {"to": "mars"}) is None
