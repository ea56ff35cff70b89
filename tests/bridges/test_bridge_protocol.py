"""Bridge protocol: commands checked at the edge, applied once per id, answered the same."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from bridge_helpers import SMALL_CATALOG, event_count, make_desk, make_order, outbox

from edged.bridges.catalog import CatalogError, validate_catalog
from edged.bridges.protocol import CommandHandler, encode_event
from edged.flow.desk import OrderDesk
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.printing.jobs import MAX_REPRINTS_PER_ORDER


@pytest.fixture
async def desk(journal: Journal) -> OrderDesk:
    desk, _ = make_desk(journal)
    await desk.ingest(make_order(101), "test")
    return desk


def handler(journal: Journal, desk: OrderDesk) -> CommandHandler:
    return CommandHandler(
        journal, desk, bridge="test", max_command_bytes=4096, max_catalog_bytes=65536
    )


def cmd(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def test_accept_twice_is_one_outbox_row_and_the_same_answer(
    journal: Journal, desk: OrderDesk
) -> None:
    h = handler(journal, desk)
    first = await h.handle(cmd(id="a-1", order_id=101, delay=15), name="accept")
    again = await h.handle(cmd(id="a-1", order_id=101, delay=15), name="accept")
    assert first.status == "queued" and first.to_dict() == again.to_dict()
    rows = await outbox(journal)
    assert len(rows) == 1
    assert rows[0].kind == "accept" and rows[0].params == {"delay": 15}
    assert rows[0].source == "test" and rows[0].key == "test:a-1"
    # Sinqro's outcome becomes the answer to any later repeat, and a final response.
    await journal.finish_command(rows[0], ok=True, order=make_order(101, "accepted"))
    events = await journal.read_events(0)
    finals = await h.finals(events)
    assert [f.response.status for f in finals] == ["ok"]
    assert finals[0].response.extra["order_status"] == "accepted"
    later = await h.handle(cmd(id="a-1", order_id=101, delay=15), name="accept")
    assert later.status == "ok" and later.extra["command_id"] == rows[0].id


async def test_same_id_for_another_command_is_refused(journal: Journal, desk: OrderDesk) -> None:
    h = handler(journal, desk)
    await h.handle(cmd(id="x", order_id=101), name="accept")
    other = await h.handle(cmd(id="x", order_id=101, comment="no"), name="cancel")
    assert other.status == "error" and other.code == "DUPLICATE_ID"
    assert len(await outbox(journal)) == 1


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("accept", b"{not json", "BAD_JSON"),
        ("accept", b"\xff\xfe", "BAD_JSON"),
        ("accept", b"[1, 2]", "BAD_FIELD"),
        ("accept", cmd(id="b", order_id="abc"), "BAD_FIELD"),
        ("accept", cmd(id="b", order_id=True), "BAD_FIELD"),
        ("accept", cmd(id="b", order_id=101, delay="soon"), "BAD_FIELD"),
        ("accept", cmd(id="b", order_id=101, extra=1), "BAD_FIELD"),
        ("accept", cmd(order_id=101), "BAD_FIELD"),
        ("accept", cmd(id="has space", order_id=101), "BAD_FIELD"),
        ("accept", cmd(id="b", order_id=101, v=2), "BAD_FIELD"),
        ("accept", cmd(id="b", order_id=101, command="cancel"), "BAD_FIELD"),
        ("cancel", cmd(id="b", order_id=101), "BAD_FIELD"),
        ("cancel", cmd(id="b", order_id=101, comment=["x"]), "BAD_FIELD"),
        ("status", cmd(id="b", order_id=101, status=7), "BAD_FIELD"),
        ("reprint", cmd(id="b", order_id=101, printer="../etc"), "BAD_FIELD"),
        ("launch", cmd(id="b"), "UNKNOWN_COMMAND"),
        ("accept", cmd(id="b", order_id=101, pad="x" * 5000), "TOO_LARGE"),
        ("accept", b"[" * 5000 + b"]" * 5000, "TOO_LARGE"),
        ("accept", b"[" * 1000 + b"]" * 1000, "BAD_JSON"),
        ("catalog", cmd(id="b", catalog={"menus": []}), "BAD_CATALOG"),
        ("catalog", cmd(id="b", catalog="menus"), "BAD_CATALOG"),
        # Refused by the OrderDesk, after the edge checks:
        ("accept", cmd(id="b", order_id=999), "UNKNOWN_ORDER"),
        ("accept", cmd(id="b", order_id=101, delay=999), "BAD_DELAY"),
        (
            "cancel",
            cmd(id="b", order_id=101, comment="   "),
            "ORDER_CANCELLATION_COMMENT_IS_REQUIRED",
        ),
        ("status", cmd(id="b", order_id=101, status="teleported"), "BAD_STATUS"),
        ("reprint", cmd(id="b", order_id=999), "UNKNOWN_ORDER"),
    ],
)
async def test_hostile_commands_change_nothing(
    journal: Journal, desk: OrderDesk, name: str, payload: bytes, code: str
) -> None:
    h = handler(journal, desk)
    before = await event_count(journal)
    response = await h.handle(payload, name=name)
    assert response.status == "error"
    assert response.code == code, response
    assert response.message
    assert await event_count(journal) == before
    assert await outbox(journal) == []


async def test_command_name_from_the_body(journal: Journal, desk: OrderDesk) -> None:
    h = handler(journal, desk)
    response = await h.handle(cmd(id="p", command="ping"))
    assert response.status == "ok" and response.command == "ping"
    missing = await h.handle(cmd(id="p2"))
    assert missing.code == "BAD_FIELD"
    unknown = await h.handle(cmd(id="p3", command="format_disk"))
    assert unknown.code == "UNKNOWN_COMMAND" and unknown.request_id == "p3"


async def test_reprint_appends_print_requested_once(journal: Journal, desk: OrderDesk) -> None:
    h = handler(journal, desk)
    for _ in range(2):
        response = await h.handle(cmd(id="r1", order_id=101, printer="kitchen"), name="reprint")
        assert response.status == "ok"
    events = [e for e in await journal.read_events(0) if e.kind == ev.PRINT_REQUESTED]
    assert len(events) == 1
    assert events[0].data == {
        "kind": "reprint",
        "order_id": 101,
        "printer": "kitchen",
        "source": "test",
    }


async def test_acknowledge_all_waiting(journal: Journal, desk: OrderDesk) -> None:
    await desk.ingest(make_order(102), "test")
    h = handler(journal, desk)
    response = await h.handle(cmd(id="k1"), name="acknowledge")
    assert response.status == "ok" and sorted(response.extra["acknowledged"]) == [101, 102]
    again = await h.handle(cmd(id="k1"), name="acknowledge")
    assert again.to_dict() == response.to_dict()


async def test_catalog_push_goes_to_the_outbox(journal: Journal, desk: OrderDesk) -> None:
    h = handler(journal, desk)
    response = await h.handle(cmd(id="cat-1", catalog=SMALL_CATALOG), name="catalog")
    assert response.status == "queued"
    assert response.extra["catalog"] == {"menus": 1, "sections": 1, "products": 2, "options": 1}
    (row,) = await outbox(journal)
    assert row.kind == "catalog" and row.params["catalog"] == SMALL_CATALOG
    await journal.finish_command(row, ok=False, error_code="INVALID_DATA", error="bad price")
    finals = await h.finals(await journal.read_events(0))
    assert finals[0].response.status == "error"
    assert finals[0].response.code == "INVALID_DATA"


def test_catalog_validation_names_the_field() -> None:
    bad = copy.deepcopy(SMALL_CATALOG)
    bad["menus"][0]["menuSections"][0]["products"][0]["price"]["amount"] = "free"
    with pytest.raises(CatalogError) as caught:
        validate_catalog(bad)
    assert caught.value.path == "catalog.menus[0].menuSections[0].products[0].price.amount"
    nested = copy.deepcopy(SMALL_CATALOG)
    variant = nested["menus"][0]["menuSections"][0]["products"][0]["productVariants"][0]
    variant["productVariants"] = [{"name": "x", "price": {"amount": 1}}]
    with pytest.raises(CatalogError, match="variant cannot have variants"):
        validate_catalog(nested)
    setmenu = copy.deepcopy(SMALL_CATALOG)
    setmenu["menus"][0]["type"] = "setmenu"
    with pytest.raises(CatalogError, match=r"menus\[0\]\.price: missing"):
        validate_catalog(setmenu)


async def test_order_new_event_carries_a_summary(journal: Journal, desk: OrderDesk) -> None:
    (event,) = [e for e in await journal.read_events(0) if e.kind == ev.ORDER_NEW]
    message = await encode_event(event, journal, full_payload=False)
    assert message is not None
    assert message["id"] == event.seq and message["kind"] == "order.new"
    order = message["order"]
    assert order["id"] == 101 and order["code"] == "C101" and order["total"] == 59.9
    assert order["lines"][0]["label"] == "Pizza de la huerta"
    assert order["lines"][0]["options"][0]["label"] == "Jamón Serrano"
    assert "payload" not in message
    full = await encode_event(event, journal, full_payload=True)
    assert full is not None and full["payload"]["id"] == 101


async def test_a_reprint_flood_is_answered_every_time(journal: Journal, desk: OrderDesk) -> None:
    h = handler(journal, desk)
    answers = [
        await h.handle_safely(cmd(id=f"r-{n}", order_id=101), name="reprint")
        for n in range(MAX_REPRINTS_PER_ORDER + 3)
    ]
    assert [a.status for a in answers] == ["ok"] * MAX_REPRINTS_PER_ORDER + ["error"] * 3
    assert {a.code for a in answers[MAX_REPRINTS_PER_ORDER:]} == {"REPRINT_LIMIT"}
    assert all(a.request_id == f"r-{n}" for n, a in enumerate(answers))
    events = await journal.read_events(0)
    assert sum(e.kind == ev.PRINT_REQUESTED for e in events) == MAX_REPRINTS_PER_ORDER
