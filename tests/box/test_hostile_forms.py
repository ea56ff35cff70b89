"""Hostile input at the box's human edges, property-based: config files, the web page's
forms and board API, and order text on paper. Whatever arrives is taken or refused with the
edge's own error (ConfigError naming the key, the field's message, a 4xx in JSON); nothing
else escapes, and a refusal changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bridge_helpers import make_order
from escpos_decoder import decode
from fuzzing import JSON, TEXT, dumps_loose, hostile, order_objects, snapshot
from hypothesis import given
from hypothesis import strategies as st
from web_box import (
    FakeClock,
    FakeSpooler,
    Settings,
    first_visit,
    offline_services,
    printed_code,
    web_box,
)

from edged.config import Config, load_config
from edged.configtools import ConfigError, build
from edged.flow.desk import OrderDesk
from edged.flow.pairing import Pairing
from edged.journal.store import Journal
from edged.printing import codepages
from edged.printing.escpos import EncoderSettings, encode
from edged.printing.slips import cancel_slip, status_slip
from edged.printing.ticket import TicketOptions, order_ticket
from edged.sinqro.models import parse_order
from edged.state import BoxState
from edged.web.forms import form_fields, parse_form
from edged.web.security import AttemptLimiter
from edged.web.server import SECTIONS, WebServer

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


@dataclass(frozen=True)
class TomlRaw:
    """A TOML value token written as it is (one tomllib or Python's int() chokes on)."""

    token: str


TOML_SCALARS = (
    st.sampled_from(["9" * 5000, "-" + "9" * 400, "1e999", "nan", "-inf", "0x" + "f" * 40]).map(
        TomlRaw
    )
    | st.text(max_size=12)
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
    if isinstance(value, TomlRaw):
        return value.token
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


@hostile(2000)
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


@hostile(1000)
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
    settings = Settings(config_path)
    desk = OrderDesk(journal, BoxState(), settings.config.orders)
    printed: list[list[str]] = []
    services = offline_services(
        journal,
        settings,
        state=BoxState(),
        desk=desk,
        box_name="Hostile box",
        pairing=lambda: Pairing("u", 1, "One", "demo"),
        spooler=FakeSpooler(printed),
    )
    # Limiters that never hold back: the properties below guess wrong codes on purpose.
    async with web_box(
        settings.config.web,
        services,
        limiter=AttemptLimiter(free=10**9, clock=FakeClock()),
        code_limiter=AttemptLimiter(free=10**9, clock=FakeClock()),
        scrypt_n=2**10,
        action_wait=0.05,
    ) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=10) as client:
            box = WebBox(server, journal, printed, state_dir, client)
            box.csrf = await first_visit(client, printed_code(printed))
            await journal.upsert_order(make_order(101))
            yield box


FORM_TEXT = st.text(max_size=20) | st.sampled_from(
    ["", " ", "-1", "1e999", "nan", "999999", "²", "١٢", "1_000", "+5", "9" * 5000, "0x10"]
)


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


@hostile(1000)
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


@hostile(500)
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


async def test_a_printer_named_like_another_but_for_case_is_refused(webbox: WebBox) -> None:
    """ "Kitchen" beside "kitchen" would share one Home Assistant entity and confuse people."""
    before = webbox.settings_text()
    response = await _post_form(
        webbox,
        "/settings/printers/add",
        [("printers[1].name", "Kitchen"), ("printers[1].uri", "tcp://127.0.0.1:9100")],
    )
    assert response.status_code == 400
    assert _error_shown(response.text)
    assert "differ only in case" in response.text
    assert webbox.settings_text() == before


@hostile(1000)
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


@hostile(1500)
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


# -- printed text -----------------------------------------------------------------------------

# Bytes that must never come out of outside text: drawer kick, DLE real-time commands, DEL.
# (The ticket's own init, code page and cut are counted: exactly one each.)
FORBIDDEN = (b"\x1bp", b"\x10\x14", b"\x10\x04", b"\x7f")


@hostile(500)
@given(
    order=order_objects(sane_core=True),
    layout=st.sampled_from(["full", "kitchen"]),
    language=st.sampled_from(["en", "es", "ca"]),
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


@hostile(3000)
@given(form=setting_forms())
def test_any_form_decodes_to_a_setting_or_a_config_error(
    form: tuple[str, list[tuple[str, str]]],
) -> None:
    section, fields = form
    cls = SECTIONS[section]
    values: dict[str, list[str]] = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)
    table = parse_form(cls, section, values)
    try:
        build(cls, table, file="web", where=section)
    except ConfigError as exc:
        assert exc.key.startswith(section) and exc.problem


@pytest.mark.parametrize("baud", ["²", "١٢٠٠", "9_600", "0x2580", "9" * 30])
def test_a_printer_baud_rate_of_lookalike_digits_is_a_config_error(
    tmp_path: Path, baud: str
) -> None:
    path = tmp_path / "edged.toml"
    uri = f"serial:///dev/ttyUSB0?baudrate={baud}"
    path.write_text(
        f'[sinqro]\nserver_token = "t"\n[[printers]]\nname = "p"\nuri = {json.dumps(uri)}\n',
        "utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "printers" in info.value.key


@pytest.mark.parametrize(
    "state_dir", ["-" + "9" * 400, json.dumps("x" * 5000), "[1, 2]", json.dumps("a\x00b")]
)
def test_a_state_dir_the_system_cannot_use_is_a_config_error(
    tmp_path: Path, state_dir: str
) -> None:
    path = tmp_path / "edged.toml"
    path.write_text(f'[sinqro]\nserver_token = "t"\n[box]\nstate_dir = {state_dir}\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key.startswith("box")
