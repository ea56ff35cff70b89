"""Hostile input at the box's wire edges, property-based: whatever arrives, each decoder
returns its typed value or raises its one error type, the part logs it and carries on. No
other exception, no crash, no change to the journal on refusal, memory bounded.

Edges here: websocket frames (parser and a live link against the simulator), REST bodies
(parsers and the real HTTP client against a real local server), MQTT and serial commands
(decoder, handler and frame decoder), the number and id rules, and the last line of
defence behind each of them. Config files, web forms and printed text are in
test_hostile_forms.py; the whole daemon on every channel in test_hostile_daemon.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from bridge_helpers import make_desk, make_order
from conftest import make_sinqro_config
from fuzzing import (
    ANY_CHAR,
    FRAME_TEXTS,
    IDS,
    JSON,
    RAW_TOKENS,
    STATUSES,
    TEXT,
    TRICKY_DIGITS,
    Raw,
    check_storable,
    dumps_loose,
    hostile,
    maybe,
    opt_dict,
    order_objects,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st
from waiting import eventually

from edged import decoding
from edged.bridges.commands import BadRequest, parse_command, request_id_of
from edged.bridges.framing import Frame, FrameDecoder, FrameError, encode_frame, escape_payload
from edged.bridges.protocol import COMMANDS, CommandHandler, Response, dumps
from edged.decoding import PayloadError, decode_json, parse_id
from edged.flow.desk import OrderDesk
from edged.flow.intake import NotificationLink
from edged.flow.pairing import Pairing
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal
from edged.simulator.server import Simulator
from edged.sinqro import api as api_module
from edged.sinqro.api import SinqroApi
from edged.sinqro.errors import SinqroError
from edged.sinqro.models import (
    Order,
    parse_actions,
    parse_notification,
    parse_order,
    parse_orders,
    parse_selling_points,
)
from edged.state import BoxState

# -- the rules for numbers and ids ------------------------------------------------------------


@hostile(2000)
@given(value=JSON | TRICKY_DIGITS | st.text(max_size=30) | st.integers())
def test_number_rules_take_only_plain_ascii_numbers(value: Any) -> None:
    whole = decoding.whole_number(value, minimum=-(10**6), maximum=10**6)
    if whole is not None:
        assert -(10**6) <= whole <= 10**6
        if isinstance(value, str):
            assert value.strip(" \t\r\n").lstrip("-").isascii()
            assert str(abs(whole)) == value.strip(" \t\r\n").lstrip("-").lstrip("0") or whole == 0
    number = decoding.decimal(value)
    if number is not None:
        assert number == number and abs(number) != float("inf")
        if isinstance(value, str):
            assert value.isascii() and "_" not in value and "x" not in value.lower()
    if isinstance(value, str):
        parsed = decoding.ascii_int(value, signed=True)
        assert parsed is None or all(c in "0123456789- \t\r\n" for c in value)
    identifier = parse_id(value)
    assert identifier is None or 0 < identifier < 2**63


def test_lookalike_digits_are_no_ids() -> None:
    for text in ("²", "١٢", "𝟓", "５", "1_000", "0x10", "+5", "7²", "", " ", "9" * 20):
        assert parse_id(text) is None, text
    assert parse_id(" 42 ") == 42 and parse_id(42) == 42 and parse_id(True) is None
    assert decoding.decimal("nan") is None and decoding.decimal("1e999") is None
    assert decoding.decimal("12.50") == 12.5 and decoding.decimal(10**400) is None


# -- Sinqro payloads: the parsers -------------------------------------------------------------


def _decoded(text: str | bytes, max_bytes: int = 1 << 20) -> Any:
    """``decode_json`` of a hostile text: a value, or None when refused (PayloadError)."""
    try:
        return decode_json(text, max_bytes=max_bytes)
    except PayloadError as exc:
        assert str(exc)
        return None


@hostile(2000)
@given(value=JSON | order_objects() | st.lists(order_objects(), max_size=3))
def test_rest_parsers_take_any_json_value(value: Any) -> None:
    # As a body arrives: through the bounded decoder (which refuses NaN, 1e999 and
    # integers past the int-string limit).
    value = _decoded(dumps_loose(value))
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


@hostile(3000)
@given(text=FRAME_TEXTS | st.binary(max_size=80) | ANY_CHAR.map(lambda c: f'{{"a":"{c}"}}'))
def test_any_frame_parses_or_raises_payload_error(text: str | bytes) -> None:
    try:
        note = parse_notification(text, max_bytes=1 << 16)
    except PayloadError as exc:
        assert str(exc)
        return
    assert note.event in ("new_order", "order_status_changed")
    check_storable(note.order)
    json.dumps(note.config, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize("token", RAW_TOKENS, ids=[t[:12] for t in RAW_TOKENS])
@pytest.mark.parametrize("where", ["id", "totalAmount", "sellingPointId"])
def test_pathological_numbers_are_payload_errors_or_harmless(token: str, where: str) -> None:
    order = {"id": 7, "type": "delivery", "status": {"code": "waiting_sp_validation"}}
    envelope: dict[str, Any] = {"event": "new_order", "data": order}
    if where == "sellingPointId":
        envelope[where] = Raw(token)
    else:
        order[where] = Raw(token)
    text = dumps_loose(envelope)
    try:
        note = parse_notification(text, max_bytes=1 << 20)
    except PayloadError:
        return
    # What got through is a finite, storable number ("1e-999" is 0.0, "-0" is 0).
    check_storable(note.order)


@pytest.mark.parametrize("value", ["²", "١٢", "𝟓", "1_0", "9" * 25, -1, 0, 2**63, True, 1.5])
def test_an_order_id_that_only_looks_like_a_number_is_a_payload_error(value: Any) -> None:
    frame = json.dumps(
        {"event": "new_order", "data": {"id": value, "type": "x", "status": {"code": "y"}}}
    )
    with pytest.raises(PayloadError, match=r"data\.id"):
        parse_notification(frame, max_bytes=4096)


@hostile(300)
@given(order=order_objects(), escape=st.sampled_from(["\\ud800", "\\udfff", "\\udc00x"]))
def test_lone_surrogate_escapes_never_reach_the_journal(order: dict[str, Any], escape: str) -> None:
    order.update(id=5, type="delivery", status={"code": "waiting_sp_validation"})
    order["comment"] = "X"
    text = dumps_loose({"event": "new_order", "data": order}).replace('"X"', f'"a{escape}b"')
    try:
        note = parse_notification(text, max_bytes=1 << 20)
    except PayloadError as exc:
        assert "JSON" in str(exc)  # a hostile number elsewhere in the order
        return
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
    await eventually(
        lambda: link.websocket_up and link.reconciler.reconciles >= 1, what="link online"
    )
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


@hostile(600)
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


async def test_an_unexpected_error_costs_one_frame_not_the_link(
    live_link: Link, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = live_link
    real = h.link.desk.ingest
    calls = 0

    async def ingest_once_broken(order: Order, source: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the order flow")
        return await real(order, source)

    monkeypatch.setattr(h.link.desk, "ingest", ingest_once_broken)
    bad = h.link.bad_frames
    frame = json.dumps(
        {"event": "new_order", "data": {"id": 71, "type": "delivery", "status": {"code": "x"}}}
    )
    with caplog.at_level(logging.ERROR, logger="edged.flow.intake"):
        await _send_frame(h, frame)
    assert h.link.bad_frames == bad + 1
    assert decoding.digest(frame) in caplog.text
    assert not h.task.done() and h.link.websocket_up
    # The part goes on: the next frame is stored.
    await _send_frame(h, frame.replace("71", "72"))
    assert await h.journal.get_order(72) is not None


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


@hostile(500)
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


async def test_a_parser_bug_is_a_bad_response_not_a_crash(
    canned_api: tuple[Canned, SinqroApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    canned, api = canned_api
    canned.body = json.dumps({"id": 5, "type": "delivery", "status": {"code": "x"}}).encode()

    def broken(obj: Any, path: str = "order") -> Order:
        raise KeyError("a bug in the parser")

    monkeypatch.setattr(api_module, "parse_order", broken)
    with pytest.raises(SinqroError) as info:
        await api.get_order(5)
    assert info.value.code == "BAD_RESPONSE"


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
    response = await handler.handle_safely(payload, name=name)
    assert response.status in ("ok", "queued", "error")
    assert response.code != "INTERNAL", response  # handle_safely's guard never fired
    if response.status == "error":
        assert response.code and isinstance(response.message, str)
        assert await snapshot(journal) == before
    # Both transports can send the answer back: MQTT as UTF-8 JSON, serial as a frame.
    body = response.to_dict()
    dumps(body)
    encode_frame(7, "R", escape_payload(dumps(body, ascii_only=True)))


@hostile(1000)
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


@hostile(1000)
@given(
    payload=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
    | COMMAND_OBJECTS.map(lambda o: dumps_loose(o))
)
async def test_serial_command_frames_get_an_error_code_and_change_nothing(
    bridge: tuple[Journal, CommandHandler], payload: str
) -> None:
    journal, handler = bridge
    wire = encode_frame(3, "C", escape_payload(payload.encode("ascii")))
    (frame,) = FrameDecoder().feed(wire)
    assert isinstance(frame, Frame) and frame.kind == "C"
    await _handle_and_check(journal, handler, frame.payload, None)


@hostile(2000)
@given(
    payload=st.binary(max_size=200)
    | COMMAND_OBJECTS.map(dumps_loose).map(str.encode)
    | JSON.map(dumps_loose),
    name=COMMAND_NAMES,
    fallback=st.none() | st.text(max_size=70),
)
def test_the_command_decoder_returns_a_request_or_bad_request(
    payload: bytes | str, name: str | None, fallback: str | None
) -> None:
    try:
        request = parse_command(
            payload, name=name, request_id=fallback, max_bytes=2048, max_catalog_bytes=8192
        )
    except BadRequest as exc:
        assert exc.code and exc.message
    else:
        assert request.name in COMMANDS and 0 < len(request.request_id) <= 64
        json.dumps(request.params, allow_nan=False)
    rid = request_id_of(payload, fallback=fallback, max_bytes=8192)
    assert rid is None or rid == fallback or 0 < len(rid) <= 64


@hostile(3000)
@given(
    chunks=st.lists(st.binary(max_size=40) | st.sampled_from([b"$", b"\r\n", b"*"]), max_size=12)
)
def test_the_frame_decoder_takes_any_bytes(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame=64)
    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert isinstance(item, (Frame, FrameError))
            if isinstance(item, Frame):
                assert 0 <= item.seq <= 255 and len(item.payload) <= 64


@hostile(1000)
@given(text=st.text(max_size=80) | JSON.map(dumps_loose))
def test_a_damaged_stored_answer_is_a_value_error(text: str) -> None:
    try:
        response = Response.from_row(text)
    except ValueError:
        return
    assert response.status in ("ok", "queued", "error")


async def test_an_unexpected_error_in_a_command_is_answered_internal(
    bridge: tuple[Journal, CommandHandler],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, handler = bridge

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the desk")

    monkeypatch.setattr(handler.desk, "accept", broken)
    payload = b'{"id": "t-1", "order_id": 101}'
    with caplog.at_level(logging.ERROR, logger="edged.bridges.protocol"):
        response = await handler.handle_safely(payload, name="accept")
    assert response.status == "error" and response.code == "INTERNAL"
    assert decoding.digest(payload) in caplog.text and decoding.digest(payload) in response.message
    ping = await handler.handle_safely(b'{"id": "t-2"}', name="ping")
    assert ping.status == "ok"


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
        response = await handler.handle_safely(payload, name=name)
        assert response.status == "error" and response.code in codes, response
    assert await snapshot(journal) == before
