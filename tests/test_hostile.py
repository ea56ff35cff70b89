"""Hostile input at every edge, property-based: whatever arrives, the box answers with its
documented error (or takes the input), logs it and carries on. No other exception, no
crash, no change to the journal on refusal, memory bounded.

Edges covered: websocket frames (parser and a live link against the simulator), REST
bodies (parsers and the real HTTP client against a real local server), MQTT and serial
commands, config files, the web page's forms and board API, and printed text.

Hypothesis runs with a fixed seed (``derandomize``) so CI is reproducible; each test's
example count is sized to keep the file well inside its time budget on a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from bridge_helpers import make_desk, make_order
from conftest import eventually, make_sinqro_config
from escpos_decoder import decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web_security import FakeClock, FakeSpooler, csrf_of

from edged.bridges.framing import Frame, FrameDecoder, encode_frame, escape_payload
from edged.bridges.protocol import COMMANDS, CommandHandler, dumps
from edged.config import Config, OrdersConfig, load_config, save_web_settings
from edged.configtools import ConfigError
from edged.journal.store import Journal, Tx
from edged.orders import OrderDesk
from edged.pairing import Pairing
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode
from edged.printing.slips import cancel_slip, status_slip
from edged.printing.ticket import TicketOptions, order_ticket
from edged.simulator.server import Simulator
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import (
    ORDER_TYPES,
    Order,
    PayloadError,
    decode_json,
    parse_actions,
    parse_notification,
    parse_order,
    parse_orders,
    parse_selling_points,
)
from edged.sinqro.notifications import NotificationLink
from edged.state import BoxState
from edged.web.forms import form_fields
from edged.web.security import AttemptLimiter
from edged.web.server import SECTIONS, WebServer
from edged.web.services import WebServices


def hostile(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for CI: fixed seed, no per-example deadline, shared fixtures."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- strategies -------------------------------------------------------------------------------

# Any code point, lone surrogates and control characters included.
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=30)
# What a sender could really put in a UTF-8 text frame (no lone surrogates).
WIRE_TEXT = st.text(max_size=60)
NUMBERS = (
    st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.integers(min_value=10**308, max_value=10**400)
    | st.floats()
    | st.sampled_from(["inf", "-inf", "nan", "1e999", "12.50", " 7 ", "0x10"])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
IDS = (
    st.integers(min_value=1, max_value=10**6)
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(max_value=0)
    | st.from_regex(r"\A ?[0-9]{1,25} ?\Z")
    | SCALARS
)
STATUSES = st.sampled_from(
    ["waiting_sp_validation", "accepted", "preparation", "cancelled_by_sp", "finished", ""]
)
TZ_NAMES = st.sampled_from(
    ["Europe/Madrid", "Pacific/Kiritimati", "Etc/GMT+12", "Europe", "America", "", "/", ".."]
) | st.text(max_size=20)


def _stamp(when: datetime, offset: str) -> str:
    return when.isoformat() + offset


TIMES = (
    st.builds(
        _stamp,
        st.datetimes(),
        st.sampled_from(["+14:00", "-14:00", "+0000", "Z", "", "+2359", "-23:59"]),
    )
    | st.sampled_from(["0001-01-01T00:00:00+1400", "9999-12-31T23:59:59-1400"])
    | TEXT
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the given shape, sometimes any JSON value in its place."""
    return strategy | JSON


def opt_dict(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


LINE = opt_dict(
    label=maybe(TEXT),
    quantity=maybe(NUMBERS),
    totalAmount=maybe(NUMBERS),
    comment=maybe(TEXT),
    type=st.sampled_from(["PRODUCT", "DELIVERY", "DISCOUNT"]) | JSON,
    product=maybe(opt_dict(externalId=JSON)),
    childrenOrderLines=st.lists(
        opt_dict(label=maybe(TEXT), quantity=maybe(NUMBERS), comment=maybe(TEXT)), max_size=3
    ),
)
# Everything an order may carry besides the three fields the box relies on.
ORDER_BODY = opt_dict(
    sellingPoint=maybe(opt_dict(id=IDS, timezone=maybe(TZ_NAMES), name=TEXT)),
    consumer=maybe(opt_dict(name=maybe(TEXT), lastname=maybe(TEXT), phone=maybe(TEXT))),
    market=maybe(opt_dict(name=maybe(TEXT))),
    marketOrderCode=maybe(TEXT),
    comment=maybe(TEXT),
    cancellationComment=maybe(TEXT),
    createdAt=TIMES,
    executionTime=TIMES,
    isAsap=JSON,
    totalAmount=maybe(NUMBERS),
    deliveryAmount=maybe(NUMBERS),
    dinersNumber=maybe(NUMBERS),
    currency=maybe(opt_dict(displayPattern=maybe(TEXT), symbol=maybe(TEXT), isoCode=TEXT)),
    orderLines=maybe(st.lists(LINE, max_size=4)),
    deliveryAddress=maybe(opt_dict(street=maybe(TEXT), city=maybe(TEXT), postalCode=JSON)),
    deliveries=maybe(
        st.lists(opt_dict(trackingUrl=maybe(TEXT), deliveryInstructions=maybe(TEXT)), max_size=2)
    ),
    payments=maybe(
        st.lists(opt_dict(amount=maybe(NUMBERS), prepaid=JSON, methodCode=TEXT), max_size=2)
    ),
    serviceLocation=maybe(opt_dict(name=maybe(TEXT), serviceZone=opt_dict(name=maybe(TEXT)))),
)


@st.composite
def order_objects(draw: st.DrawFn, *, sane_core: bool = False) -> dict[str, Any]:
    """An order-shaped object. ``sane_core``: id, type and status are usable, the rest is
    hostile (so the order gets stored and printed)."""
    obj = dict(draw(ORDER_BODY))
    if sane_core:
        obj["id"] = draw(st.integers(min_value=1, max_value=10**9))
        obj["type"] = draw(st.sampled_from(ORDER_TYPES) | TEXT.filter(bool))
        obj["status"] = {"code": draw(STATUSES.filter(bool)), "name": draw(TEXT)}
        if draw(st.booleans()):
            obj["status"]["isFinalStatus"] = draw(JSON)
        return obj
    for key, strategy in (
        ("id", st.integers(min_value=1, max_value=10**9) | IDS),
        ("type", maybe(st.sampled_from(ORDER_TYPES))),
        (
            "status",
            st.fixed_dictionaries({"code": STATUSES}, optional={"isFinalStatus": JSON})
            | maybe(opt_dict(code=maybe(STATUSES), isFinalStatus=JSON, name=JSON)),
        ),
    ):
        if draw(st.integers(0, 9)):  # mostly present
            obj[key] = draw(strategy)
    return obj


ENVELOPES = opt_dict(
    event=maybe(st.sampled_from(["new_order", "order_status_changed"])),
    data=maybe(order_objects()),
    sellingPointId=IDS,
    config=JSON,
)


def dumps_loose(value: Any) -> str:
    """JSON as a careless sender writes it: NaN and Infinity allowed, \\u escapes kept."""
    return json.dumps(value, allow_nan=True)


FRAME_TEXTS = (
    ENVELOPES.map(dumps_loose)
    | JSON.map(dumps_loose)
    | WIRE_TEXT
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
)


def check_storable(order: Order) -> None:
    """What the journal needs from a parsed order: an SQLite id, UTF-8 text."""
    assert 0 < order.id < 2**63
    assert isinstance(order.type, str) and order.type
    assert isinstance(order.status, str) and order.status
    order.to_json().encode("utf-8")


# -- journal snapshots ------------------------------------------------------------------------


async def snapshot(journal: Journal) -> tuple[int, ...]:
    """Row counts of every table a command or frame could touch, and the last event seq."""

    def run(tx: Tx) -> tuple[int, ...]:
        tables = ("orders", "events", "outbox", "print_jobs", "bridge_commands", "kv")
        counts = [int(tx.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables]
        seq = tx.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return (*counts, int(seq))

    return await journal.transaction(run)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(tmp_path / "journal.sqlite3", watch_interval=0)
    try:
        yield j
    finally:
        await j.close()


# -- Sinqro payloads: the parsers -------------------------------------------------------------


@hostile(200)
@given(value=JSON | order_objects() | st.lists(order_objects(), max_size=3))
def test_rest_parsers_take_any_json_value(value: Any) -> None:
    # As a body arrives: through the bounded decoder.
    value = decode_json(dumps_loose(value), max_bytes=1 << 20)
    for parse in (parse_order, parse_actions, parse_selling_points):
        with contextlib.suppress(PayloadError):
            parse(value)
    try:
        good, bad = parse_orders(value)
    except PayloadError as exc:
        assert isinstance(exc.path, str) and str(exc)
    else:
        assert all(isinstance(e, PayloadError) for e in bad)
        for order in good:
            check_storable(order)
    with contextlib.suppress(PayloadError):
        check_storable(parse_order(value))


@hostile(200)
@given(text=FRAME_TEXTS | st.binary(max_size=80) | ANY_CHAR.map(lambda c: f'{{"a":"{c}"}}'))
def test_any_frame_parses_or_raises_payload_error(text: str | bytes) -> None:
    try:
        note = parse_notification(text, max_bytes=4096)
    except PayloadError as exc:
        assert str(exc)
        return
    assert note.event in ("new_order", "order_status_changed")
    check_storable(note.order)
    json.dumps(note.config, allow_nan=True).encode("utf-8")


@hostile(100)
@given(order=order_objects(), escape=st.sampled_from(["\\ud800", "\\udfff", "\\udc00x"]))
def test_lone_surrogate_escapes_never_reach_the_journal(order: dict[str, Any], escape: str) -> None:
    order.update(id=5, type="delivery", status={"code": "waiting_sp_validation"})
    order["comment"] = "X"
    text = json.dumps({"event": "new_order", "data": order}).replace('"X"', f'"a{escape}b"')
    note = parse_notification(text, max_bytes=1 << 20)
    check_storable(note.order)
    assert note.order.raw["comment"].startswith("a")


# -- Sinqro payloads: a live link against the simulator ---------------------------------------


@dataclass
class Link:
    sim: Simulator
    link: NotificationLink
    journal: Journal
    task: asyncio.Task[None]


@pytest.fixture
async def live_link(sim: Simulator, journal: Journal) -> AsyncIterator[Link]:
    config = make_sinqro_config(sim, poll_interval=60, status_refresh_interval=60)
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    api = SinqroApi(config.base_url, config.server_token, timeout=config.request_timeout)
    pairing = Pairing(sim.user_token, sim.selling_point_id)
    link = NotificationLink(config, api, desk, journal, state, lambda: pairing)
    task = asyncio.create_task(link.run(), name="hostile-link")
    await eventually(lambda: link.websocket_up and link.reconciles >= 1, what="link online")
    try:
        yield Link(sim, link, journal, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.aclose()


async def _send_frame(h: Link, text: str) -> None:
    seen = h.link.frames
    assert h.sim.send_raw(text) == 1
    await eventually(lambda: h.link.frames > seen, what="frame handled")


@hostile(120)
@given(
    text=FRAME_TEXTS
    | order_objects(sane_core=True).map(lambda o: dumps_loose({"event": "new_order", "data": o}))
)
async def test_live_link_counts_bad_frames_and_stays_up(live_link: Link, text: str) -> None:
    h = live_link
    before = await snapshot(h.journal)
    bad = h.link.bad_frames
    ignored = h.link.ignored_frames
    await _send_frame(h, text)
    assert not h.task.done()
    assert h.link.websocket_up
    try:
        note = parse_notification(text, max_bytes=h.link.config.max_frame_bytes)
    except PayloadError:
        assert h.link.bad_frames == bad + 1
        assert await snapshot(h.journal) == before
        return
    assert h.link.bad_frames == bad
    if h.link.ignored_frames == ignored:
        assert await h.journal.get_order(note.order.id) is not None


async def test_live_link_survives_a_10_mb_frame(live_link: Link) -> None:
    h = live_link
    before = await snapshot(h.journal)
    bad, reconnects = h.link.bad_frames, h.link.reconnects
    h.sim.send_raw('{"event":"new_order","data":"' + "x" * 10_000_000 + '"}')
    await eventually(lambda: h.link.bad_frames > bad, within=15, what="oversize counted")
    await eventually(lambda: h.link.reconnects > reconnects and h.link.websocket_up, within=15)
    await _send_frame(h, "[" * 100_000 + "]" * 100_000)
    assert h.link.bad_frames == bad + 2
    assert await snapshot(h.journal) == before
    assert not h.task.done()


# -- REST bodies through the real client ------------------------------------------------------


@dataclass
class Canned:
    """What the local server answers to every request."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


@pytest.fixture
async def canned_api() -> AsyncIterator[tuple[Canned, SinqroApi]]:
    canned = Canned()

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=canned.status, body=canned.body, content_type=canned.content_type
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api = SinqroApi(f"http://127.0.0.1:{port}/pos-app/v1", "server", "user", timeout=3, retries=0)
    try:
        yield canned, api
    finally:
        await api.aclose()
        await runner.cleanup()


REST_BODIES = (
    JSON.map(dumps_loose)
    | order_objects().map(dumps_loose)
    | st.lists(order_objects(), max_size=3).map(dumps_loose)
    | opt_dict(code=JSON, message=JSON, errors=JSON, token=JSON).map(dumps_loose)
    | st.lists(opt_dict(token=maybe(TEXT), actionType=maybe(TEXT)), max_size=3).map(dumps_loose)
).map(str.encode) | st.binary(max_size=80)


async def _every_call(api: SinqroApi) -> list[Any]:
    """Every client call once; each returns a typed value or raises SinqroError."""
    calls: list[Callable[[], Any]] = [
        lambda: api.active_orders(1),
        lambda: api.orders(1, start_date="2024-01-01"),
        lambda: api.get_order(5),
        lambda: api.order_actions(5),
        lambda: api.post_action(5, "tok", cancellation_comment="no"),
        lambda: api.set_status(1, 5, "accepted"),
        lambda: api.patch_menu_collection_raw(1, {"menus": []}),
        lambda: api.login("user", "pw"),
        lambda: api.selling_points(),
    ]
    out = []
    for call in calls:
        try:
            out.append(await call())
        except SinqroError as exc:
            assert exc.code
            out.append(exc)
    return out


@hostile(100)
@given(
    status=st.sampled_from([200, 201, 204, 400, 401, 404, 409, 422, 500, 503, 302]),
    body=REST_BODIES,
    content_type=st.sampled_from(["application/json", "text/html", "application/octet-stream"]),
)
async def test_client_turns_any_body_into_a_typed_result_or_sinqro_error(
    canned_api: tuple[Canned, SinqroApi], status: int, body: bytes, content_type: str
) -> None:
    canned, api = canned_api
    canned.status, canned.body, canned.content_type = status, body, content_type
    for result in await _every_call(api):
        if isinstance(result, Order):
            check_storable(result)
        elif isinstance(result, list):
            for item in result:
                if isinstance(item, Order):
                    check_storable(item)


# -- MQTT and serial commands -----------------------------------------------------------------

COMMAND_IDS = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,8}\Z") | IDS
COMMAND_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "id": COMMAND_IDS,
        "v": st.just(1) | JSON,
        "command": maybe(st.sampled_from(COMMANDS)),
        "order_id": st.sampled_from([101, 999]) | IDS,
        "delay": maybe(st.integers(-5, 300)),
        "comment": maybe(TEXT),
        "status": maybe(STATUSES),
        "reason": maybe(TEXT),
        "printer": maybe(st.sampled_from(["kitchen", "../etc", ""])),
        "catalog": JSON,
        "extra": JSON,
    },
)
COMMAND_NAMES = st.none() | st.sampled_from(COMMANDS) | st.text(max_size=12)


def _bridge_handler(journal: Journal, desk: OrderDesk) -> CommandHandler:
    return CommandHandler(
        journal, desk, bridge="hostile", max_command_bytes=2048, max_catalog_bytes=8192
    )


@pytest.fixture
async def bridge(journal: Journal) -> tuple[Journal, CommandHandler]:
    desk, _ = make_desk(journal)
    await desk.ingest(make_order(101), "test")
    return journal, _bridge_handler(journal, desk)


async def _handle_and_check(
    journal: Journal, handler: CommandHandler, payload: bytes | str, name: str | None
) -> None:
    before = await snapshot(journal)
    response = await handler.handle(payload, name=name)
    assert response.status in ("ok", "queued", "error")
    if response.status == "error":
        assert response.code and isinstance(response.message, str)
        assert await snapshot(journal) == before
    # Both transports can send the answer back: MQTT as UTF-8 JSON, serial as a frame.
    body = response.to_dict()
    dumps(body)
    encode_frame(7, "R", escape_payload(dumps(body, ascii_only=True)))


@hostile(150)
@given(
    payload=st.binary(max_size=120)
    | COMMAND_OBJECTS.map(dumps_loose).map(str.encode)
    | JSON.map(dumps_loose).map(str.encode),
    name=COMMAND_NAMES,
)
async def test_mqtt_commands_get_an_error_code_and_change_nothing(
    bridge: tuple[Journal, CommandHandler], payload: bytes, name: str | None
) -> None:
    journal, handler = bridge
    await _handle_and_check(journal, handler, payload, name)


@hostile(150)
@given(
    payload=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
    | COMMAND_OBJECTS.map(lambda o: json.dumps(o, ensure_ascii=True, allow_nan=True))
)
async def test_serial_command_frames_get_an_error_code_and_change_nothing(
    bridge: tuple[Journal, CommandHandler], payload: str
) -> None:
    journal, handler = bridge
    wire = encode_frame(3, "C", escape_payload(payload.encode("ascii")))
    (frame,) = FrameDecoder().feed(wire)
    assert isinstance(frame, Frame) and frame.kind == "C"
    await _handle_and_check(journal, handler, frame.payload, None)


# -- huge and deeply nested input -------------------------------------------------------------

TEN_MB = '{"a":"' + "x" * 10_000_000 + '"}'
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
MILLION = "[" + ",".join(["0"] * 1_000_000) + "]"


def _bounded(fn: Callable[[], Any], *, megabytes: float) -> Any:
    """Run ``fn``; fail if it allocates more than given (tracemalloc's peak). Memory, not
    seconds: a parser that builds the huge structure shows in its peak on any machine,
    while time only measures how busy the machine is."""
    tracemalloc.start()
    try:
        result = fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    assert peak < megabytes, f"peak {peak:.0f} MB"
    return result


@pytest.mark.parametrize("text", [TEN_MB, DEEP, DEEP_OBJECT], ids=["10mb", "deep", "deep-obj"])
def test_huge_or_deep_frames_are_refused_quickly(text: str) -> None:
    def run() -> None:
        with pytest.raises(PayloadError):
            parse_notification(text, max_bytes=1_048_576)
        with pytest.raises(PayloadError):
            parse_notification(text.encode(), max_bytes=1_048_576)

    _bounded(run, megabytes=60)


def test_deep_nesting_inside_the_size_limit_is_refused() -> None:
    for text in (DEEP, DEEP_OBJECT, "[" * 129 + "]" * 129):
        with pytest.raises(PayloadError, match="nested too deeply"):
            decode_json(text, max_bytes=32 << 20)


@pytest.mark.parametrize("parse", [parse_orders, parse_actions, parse_selling_points])
def test_a_million_element_list_is_refused_with_bounded_memory(
    parse: Callable[[Any], Any],
) -> None:
    value = decode_json(MILLION, max_bytes=32 << 20)  # 2 MB: inside the REST limit
    with pytest.raises(PayloadError, match="entries"):
        _bounded(lambda: parse(value), megabytes=20)


@pytest.mark.parametrize("body", [DEEP, MILLION, "[" + ",".join(["{}"] * 1_000_000) + "]"])
async def test_huge_rest_bodies_are_bad_responses(
    canned_api: tuple[Canned, SinqroApi], body: str
) -> None:
    canned, api = canned_api
    canned.body = body.encode()
    for call in (lambda: api.active_orders(1), lambda: api.order_actions(5)):
        with pytest.raises(SinqroError) as info:
            await call()
        assert info.value.code == "BAD_RESPONSE"
    assert api.bad_entries == 0


@pytest.mark.parametrize(
    ("payload", "codes"),
    [
        (TEN_MB.encode(), {"TOO_LARGE"}),
        (DEEP.encode(), {"TOO_LARGE"}),
        (b'{"id":"x","catalog":' + DEEP[:1000].encode() + b"}", {"BAD_JSON"}),
        (MILLION.encode(), {"TOO_LARGE"}),
    ],
)
async def test_huge_commands_are_refused_and_change_nothing(
    bridge: tuple[Journal, CommandHandler], payload: bytes, codes: set[str]
) -> None:
    journal, handler = bridge
    before = await snapshot(journal)
    for name in ("accept", "catalog", None):
        response = await handler.handle(payload, name=name)
        assert response.status == "error" and response.code in codes, response
    assert await snapshot(journal) == before


# -- printed text -----------------------------------------------------------------------------

# Bytes that must never come out of outside text: drawer kick, DLE real-time commands, DEL.
# (The ticket's own init, code page and cut are counted: exactly one each.)
FORBIDDEN = (b"\x1bp", b"\x10\x14", b"\x10\x04", b"\x7f")


@hostile(150)
@given(
    order=order_objects(sane_core=True),
    layout=st.sampled_from(["full", "kitchen"]),
    language=st.sampled_from(["en", "es"]),
    columns=st.sampled_from([32, 42, 48]),
    profile=st.sampled_from(["default", "ZJ-5870"]),
)
def test_any_order_text_prints_without_control_sequences(
    order: dict[str, Any], layout: str, language: str, columns: int, profile: str
) -> None:
    parsed = parse_order(order)
    page = codepages.resolve(profile)
    encoder = EncoderSettings(page, codepages.get_profile(profile), 80)
    options = TicketOptions(columns=columns, language=language, layout=layout)  # type: ignore[arg-type]
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    tickets = [
        order_ticket(parsed, options),
        cancel_slip(parsed, parsed.status, options, at),
        status_slip(parsed, parsed.status, options, at - timedelta(days=1)),
    ]
    for ticket in tickets:
        data = encode(ticket, encoder, copies=1)
        assert data.count(b"\x1b@") == 1 and data.count(b"\x1bt") == 1
        # One cut, or none on a profile without a cutter.
        assert data.count(b"\x1dV") <= 1
        for bad in FORBIDDEN:
            assert bad not in data, bad
        decoded = decode(data, {page.number: page.codec})
        assert decoded.unexpected == [], decoded.unexpected
        assert decoded.cuts == data.count(b"\x1dV")
        for qr in decoded.qr:
            assert re.fullmatch(r"https?://[\x21-\x7e]+", qr)


# -- config files -----------------------------------------------------------------------------

SECTION_KEYS: dict[str, list[str]] = {
    "sinqro": ["server_token", "base_url", "websocket_url", "poll_interval", "selling_point_id"],
    "box": ["name", "state_dir", "language"],
    "journal": ["path", "retention_days"],
    "orders": ["auto_accept", "default_delay", "cancel_comment", "retry_max"],
    "logging": ["level"],
    "panel": ["enabled"],
    "mqtt": ["enabled", "host", "port", "max_command_bytes", "max_catalog_bytes"],
    "serial": ["enabled", "device", "baudrate", "max_command_bytes"],
    "web": ["host", "port"],
}
TOML_SCALARS = (
    st.text(max_size=12)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    | st.sampled_from(["relative/dir", "/", "virtual://x", "tcp://127.0.0.1:9100", "DEBUG"])
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """One TOML value (inline tables and arrays for containers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (no lone surrogates)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):
        lines += ["[sinqro]", 'server_token = "t"']
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*SECTION_KEYS, "printers", "nope"]))
        keys = SECTION_KEYS.get(section, ["name", "uri", "copies", "backup", "columns"])
        header = f"[[{section}]]" if section == "printers" else f"[{section}]"
        lines.append(header)
        body = draw(
            st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), TOML_VALUES, max_size=3)
        )
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in body.items()]
    if draw(st.booleans()):
        lines.insert(0, f"{toml_key(draw(st.text(max_size=6)))} = {toml_value(draw(TOML_VALUES))}")
    return "\n".join(lines) + "\n"


def _load_or_config_error(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        assert exc.file and exc.problem
        return None


@hostile(200)
@given(document=toml_documents())
def test_any_toml_document_loads_or_names_the_bad_key(tmp_path: Path, document: str) -> None:
    path = tmp_path / "edged.toml"
    path.write_text(document, "utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.file == str(path)
        # A document that parses is refused by key; only broken syntax (or a key that is
        # itself the empty string) has none.
        if exc.key == "":
            assert re.search("TOML|missing|unknown key|nested", exc.problem), exc


@hostile(100)
@given(document=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_as_config_is_a_config_error_or_a_config(tmp_path: Path, document: str) -> None:
    path = tmp_path / "edged.toml"
    path.write_bytes(document.encode("utf-8", "surrogatepass"))
    _load_or_config_error(path)


@pytest.mark.parametrize(
    "document",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "{b = " * 5_000 + "1" + "}" * 5_000,
        "box = 5\n[sinqro]\nserver_token = 't'\n",
        "box = [1, 2]\n[sinqro]\nserver_token = 't'\n",
        '[sinqro]\nserver_token = "t"\n[box]\nstate_dir = "a\\u0000b"\n',
        "[sinqro]\nserver_token = 't'\n[box]\nstate_dir = 7\n",
    ],
    ids=["deep-array", "deep-table", "box-int", "box-list", "nul-dir", "dir-int"],
)
def test_hostile_config_shapes_are_config_errors(tmp_path: Path, document: str) -> None:
    path = tmp_path / "edged.toml"
    path.write_text(document, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)


# -- web forms and the board API --------------------------------------------------------------


@dataclass
class WebBox:
    server: WebServer
    journal: Journal
    printed: list[list[str]]
    state_dir: Path
    client: httpx.AsyncClient
    csrf: str = ""

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.toml"

    def settings_text(self) -> str | None:
        return self.settings_file.read_text() if self.settings_file.exists() else None


@pytest.fixture
async def webbox(tmp_path: Path, journal: Journal) -> AsyncIterator[WebBox]:
    state_dir = tmp_path / "state"
    config_path = tmp_path / "edged.toml"
    config_path.write_text(
        '[sinqro]\nserver_token = "s"\nbase_url = "http://127.0.0.1:9"\n'
        f'[box]\nstate_dir = "{state_dir}"\n'
        '[[printers]]\nname = "kitchen"\nuri = "virtual://kitchen"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\n'
    )
    holder = {"config": load_config(config_path)}
    desk = OrderDesk(journal, BoxState(), holder["config"].orders)

    async def refuse(*args: Any) -> Any:
        raise SinqroError("UNAVAILABLE", "offline in this test")

    async def nothing() -> None:
        return None

    async def apply(changes: dict[str, Any]) -> Config:
        holder["config"] = await asyncio.to_thread(save_web_settings, holder["config"], changes)
        return holder["config"]

    async def no_sleep(seconds: float) -> None:
        return None

    printed: list[list[str]] = []
    services = WebServices(
        box_name="Hostile box",
        journal=journal,
        state=BoxState(),
        desk=desk,
        pairing=lambda: Pairing("u", 1, "One", "demo"),
        login=refuse,
        choose_selling_point=refuse,
        logout=nothing,
        order_actions=refuse,
        config=lambda: holder["config"],
        apply_settings=apply,
        spooler=FakeSpooler(printed),
    )
    # A limiter that never locks out: the properties below guess wrong codes on purpose.
    limiter = AttemptLimiter(per_client=10**9, overall=10**9, clock=FakeClock(), sleep=no_sleep)
    server = WebServer(holder["config"].web, services, limiter=limiter, scrypt_n=2**10)
    server.action_wait = 0.05
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=10) as client:
        box = WebBox(server, journal, printed, state_dir, client)
        page = await client.get("/setup")
        password = "correct horse battery"
        signed = await client.post(
            "/setup",
            data={
                "csrf": csrf_of(page.text),
                "code": re.findall(r"Setup code:\n(\S+)", "\n".join(printed[-1]))[0],
                "password": password,
                "confirm": password,
            },
        )
        assert signed.status_code == 303, signed.text
        box.csrf = csrf_of((await client.get("/board")).text)
        await journal.upsert_order(make_order(101))
        try:
            yield box
        finally:
            await server.stop()


FORM_TEXT = st.text(max_size=20) | st.sampled_from(["", " ", "-1", "1e999", "nan", "999999"])


@st.composite
def setting_forms(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    section = draw(st.sampled_from(sorted(SECTIONS)))
    keys = [f.key for f in form_fields(SECTIONS[section], section)]
    chosen = draw(st.lists(st.sampled_from(keys) | st.text(max_size=10), max_size=5))
    return section, [(k, draw(FORM_TEXT)) for k in chosen]


def _error_shown(html: str) -> bool:
    return re.search(r'class="[^"]*\b(field|form)-error\b', html) is not None


async def _post_form(box: WebBox, path: str, fields: Sequence[tuple[str, str]]) -> httpx.Response:
    form: dict[str, list[str]] = {"csrf": [box.csrf]}
    for key, value in fields:
        form.setdefault(key, []).append(value)
    return await box.client.post(path, data=form)


@hostile(60)
@given(form=setting_forms())
async def test_any_settings_form_saves_or_shows_the_error(
    webbox: WebBox, form: tuple[str, list[tuple[str, str]]]
) -> None:
    section, fields = form
    before = webbox.settings_text()
    response = await _post_form(webbox, f"/settings/{section}", fields)
    assert response.status_code in (303, 400), response.text[:500]
    if response.status_code == 400:
        assert _error_shown(response.text)
        assert webbox.settings_text() == before


@hostile(40)
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(["name", "uri", "copies", "columns", "backup", "layout", "bogus"]).map(
                lambda k: f"printers[1].{k}"
            ),
            FORM_TEXT | st.sampled_from(["tcp://127.0.0.1:9100", "virtual://bar", "kitchen"]),
        ),
        max_size=5,
    )
)
async def test_any_printer_form_saves_or_shows_the_error(
    webbox: WebBox, fields: list[tuple[str, str]]
) -> None:
    before = webbox.settings_text()
    response = await _post_form(webbox, "/settings/printers/add", fields)
    assert response.status_code in (303, 400), response.text[:500]
    if response.status_code == 400:
        assert _error_shown(response.text)
        assert webbox.settings_text() == before


@hostile(60)
@given(
    code=FORM_TEXT,
    password=FORM_TEXT | st.just("correct horse battery"),
    confirm=FORM_TEXT | st.just("correct horse battery"),
    extra=st.lists(st.tuples(st.text(max_size=8), FORM_TEXT), max_size=3),
)
async def test_any_setup_form_is_refused_with_a_4xx(
    webbox: WebBox, code: str, password: str, confirm: str, extra: list[tuple[str, str]]
) -> None:
    fields = [("code", code), ("password", password), ("confirm", confirm), *extra]
    response = await _post_form(webbox, "/setup", fields)
    assert 400 <= response.status_code < 500, response.text[:500]
    assert _error_shown(response.text) or response.status_code == 429


BOARD_ACTIONS = st.sampled_from(["accept", "cancel", "status", "reprint", "ack"])
ORDER_PATH_IDS = st.sampled_from(["101", "999", "0", "99999999999999999999999", "9" * 400])


@hostile(120)
@given(
    action=BOARD_ACTIONS,
    order_id=ORDER_PATH_IDS,
    body=st.dictionaries(
        st.sampled_from(["delay", "comment", "status", "printer", "button"]) | TEXT,
        JSON,
        max_size=3,
    )
    | JSON,
    as_form=st.booleans(),
)
async def test_board_api_answers_any_body_without_a_500(
    webbox: WebBox, action: str, order_id: str, body: Any, as_form: bool
) -> None:
    before = await snapshot(webbox.journal)
    headers = {"X-CSRF-Token": webbox.csrf}
    path = f"/api/orders/{order_id}/{action}"
    if as_form and isinstance(body, dict):
        form = {str(k).encode("utf-8", "replace").decode(): str(v) for k, v in body.items()}
        form = {k: v.encode("utf-8", "replace").decode() for k, v in form.items()}
        response = await webbox.client.post(path, data=form, headers=headers)
    else:
        raw = dumps_loose(body).encode()
        headers["Content-Type"] = "application/json"
        response = await webbox.client.post(path, content=raw, headers=headers)
    assert response.status_code < 500, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code >= 400:
        assert response.json()["code"]
        assert await snapshot(webbox.journal) == before


@pytest.mark.parametrize(
    "body", ["[" * 30_000 + "]" * 30_000, '{"a":' * 10_000 + "1" + "}" * 10_000]
)
async def test_board_api_refuses_deep_json_with_a_400(webbox: WebBox, body: str) -> None:
    before = await snapshot(webbox.journal)
    for action in ("accept", "cancel"):
        response = await webbox.client.post(
            f"/api/orders/101/{action}",
            content=body.encode(),
            headers={"X-CSRF-Token": webbox.csrf, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text[:300]
    assert await snapshot(webbox.journal) == before
