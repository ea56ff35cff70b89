"""``edged demo``: the real daemon against the built-in Sinqro simulator.

The demo is only a config: it starts the simulator on localhost, writes
``<state-dir>/edged.toml`` pointing the daemon at it (two virtual printers, the mock panel,
the web page on localhost) and runs the same :class:`edged.app.App` a real box runs. The
file stays, so ``edged orders -c demo-state/edged.toml`` and friends work beside it (the
banner prints that command as it can be run from here).

On a terminal, each order event is one line (by order code, in the box's language and the
selling point's time zone), log warnings print below them, and the virtual panel keeps one
status line at the bottom (:class:`edged.virtual.panel.Terminal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edged.app import App, Extras
from edged.config import load_config, save_web_settings
from edged.configtools import dump_toml
from edged.flow.pairing import KV_KEY
from edged.i18n import N_, Locale
from edged.i18n.words import status_word, type_word
from edged.journal import events as ev
from edged.virtual.panel import LineStream, Terminal

log = logging.getLogger(__name__)


def demo_config(
    state_dir: Path,
    *,
    base_url: str,
    websocket_url: str,
    server_token: str,
    user_token: str,
    selling_point_id: int,
    web_port: int,
    language: str = "en",
) -> str:
    """The demo's config file text."""
    tickets = (state_dir / "tickets").resolve()
    doc = {
        "box": {
            "name": "edged-demo",
            "state_dir": str(state_dir.resolve()),
            "language": language,
            # The simulator's selling point is in Madrid; pairing through the page
            # would tell the box, the demo's config-made pairing does not.
            "timezone": "Europe/Madrid",
        },
        "sinqro": {
            "base_url": base_url,
            "websocket_url": websocket_url,
            "server_token": server_token,
            "user_token": user_token,
            "selling_point_id": selling_point_id,
            "poll_interval": 60.0,
        },
        "printers": [
            {"name": "kitchen", "uri": f"virtual://{tickets}/kitchen", "layout": "kitchen"},
            {"name": "counter", "uri": f"virtual://{tickets}/counter", "layout": "full"},
        ],
        "panel": {"pin_factory": "mock"},
        "web": {"host": "127.0.0.1", "port": web_port},
    }
    header = (
        "# Written by `edged demo` for its simulator; the tokens are the simulator's own.\n"
        "# Try: edged orders -c THIS_FILE, edged accept CODE -c THIS_FILE\n"
    )
    return header + dump_toml(doc)


# Who took a decision, in words ("from the command line", not "from cli").
SOURCES = {
    "cli": N_("from the command line"),
    "web": N_("from the page"),
    "panel": N_("with the buttons"),
    "auto": N_("automatically"),
}


async def _event_view(app: App, terminal: Terminal) -> None:
    """Print one line for each order event, for people watching the terminal."""
    journal = app.journal
    seq = journal.last_seq
    codes: dict[int, str] = {}
    while True:
        await journal.wait_for_events(seq)
        # Built per batch: the selling point's time zone is known only once the box has
        # talked to Sinqro, usually after this view started.
        timezone = app.current_pairing().timezone or app.config.box.timezone
        locale = Locale(app.config.box.language, timezone)
        for event in await journal.read_events(seq):
            seq = event.seq
            code = await _code(journal, event.order_id, ev.payload(event), codes)
            line = describe(event.kind, code, event.data, locale)
            if line:
                terminal.line(f"  {locale.time(event.ts)}  {line}")


async def _code(
    journal: object, order_id: int | None, data: ev.Payload | None, codes: dict[int, str]
) -> str:
    """An event's order as people name it: its code (the id while it has none)."""
    if order_id is None:
        return ""
    if order_id not in codes:
        code = data.code if isinstance(data, ev.OrderNew | ev.OrderStatus) else ""
        if not code:
            order = await journal.get_order(order_id)  # type: ignore[attr-defined]
            code = order.code if order is not None and order.code else str(order_id)
        codes[order_id] = code
    return codes[order_id]


def describe(kind: str, code: str, d: dict[str, Any], locale: Locale) -> str:
    """One terminal line for a journal event of ``kind`` with data ``d``, in the box's
    language ("" to skip it). ``code``: the event's order code."""
    _ = locale.gettext
    data = ev.decode(kind, d)
    if isinstance(data, ev.OrderNew):
        return _("NEW      order {code}: {type}").format(
            code=code, type=type_word(data.type, locale)
        )
    if isinstance(data, ev.OrderStatus):
        return _("STATUS   order {code}: {old} -> {new}").format(
            code=code,
            old=status_word(data.previous, locale),
            new=status_word(data.status, locale),
        )
    if isinstance(data, ev.CommandDone):
        source = SOURCES.get(data.source)
        who = _(source) if source else _("from {source}").format(source=data.source)
        if data.kind == "accept":
            return _("SENT     order {code} accepted, {who}").format(code=code, who=who)
        if data.kind == "cancel":
            return _("SENT     order {code} cancelled, {who}").format(code=code, who=who)
        return _("SENT     order {code} is now {status}, {who}").format(
            code=code, status=status_word(data.status, locale), who=who
        )
    if isinstance(data, ev.CommandFailed):
        reason = data.code
        if data.kind == "accept":
            return _("REFUSED  order {code} not accepted: {reason}").format(
                code=code, reason=reason
            )
        if data.kind == "cancel":
            return _("REFUSED  order {code} not cancelled: {reason}").format(
                code=code, reason=reason
            )
        return _("REFUSED  status of order {code} not changed: {reason}").format(
            code=code, reason=reason
        )
    if isinstance(data, ev.PrintDone):
        printer = data.printer
        if code:
            return _("PRINTED  ticket of order {code} on {printer}").format(
                code=code, printer=printer
            )
        kinds = {"text": _("setup ticket"), "test": _("test page")}
        what = kinds.get(data.kind, data.kind)
        return _("PRINTED  {kind} on {printer}").format(kind=what, printer=printer)
    return ""


@contextlib.contextmanager
def _logs_above(terminal: Terminal) -> Iterator[None]:
    """While the status line is live, terminal log records print above it (the handler
    itself, its level and filters, stay as logging was set up)."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    if terminal.live:
        for handler in logging.getLogger().handlers:
            terminal_stream = getattr(handler, "stream", None) in (sys.stderr, sys.stdout)
            if type(handler) is logging.StreamHandler and terminal_stream:
                moved.append((handler, handler.stream))
                handler.setStream(LineStream(terminal))
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


async def run_demo(
    *,
    state_dir: Path,
    web_port: int,
    sim_port: int,
    orders_every: float,
    headless: bool,
    language: str | None = None,
) -> int:
    """Run simulator and daemon together until Ctrl-C.

    ``language`` (``--language``) wins over a language saved on the demo's page: it is
    saved in its place, so the page shows it too; None keeps the saved one (else ``en``).
    """
    from edged.simulator.server import Simulator

    # The simulated cloud keeps its orders next to the journal: a second run finds the same
    # orders in both (no journal order that the cloud never heard of, no reused ids).
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    async with Simulator(
        host="127.0.0.1",
        port=sim_port,
        generate_every=orders_every or None,
        state_file=state_dir / "simulator.json",
    ) as sim:
        path = state_dir / "edged.toml"
        text = demo_config(
            state_dir,
            base_url=sim.base_url,
            websocket_url=sim.websocket_url,
            server_token=sim.server_token,
            user_token=sim.user_token,
            selling_point_id=sim.selling_point_id,
            web_port=web_port,
            language=language or "en",
        )
        await asyncio.to_thread(_write_file, path, text)
        config = load_config(path)
        if language and config.box.language != language:
            log.info(
                "demo: --language %s replaces %s saved on the page", language, config.box.language
            )
            config = save_web_settings(config, {"box": {"language": language}})
        extras = Extras()
        live = not headless and _isatty(sys.stdin) and _isatty(sys.stdout)
        terminal = Terminal(sys.stdout, live=live)
        if not headless:
            extras.tasks.append(("demo-view", lambda a: _event_view(a, terminal)))
            extras.tasks.append(("demo-panel", lambda a: _terminal_panel(a, terminal)))
        app = App(config, extras=extras)
        app.demo = True
        extras.tasks.append(("demo-banner", lambda a: _banner(a, path, sim.base_url, terminal)))
        extras.tasks.insert(0, ("demo-pairing", _fresh_pairing))
        with _logs_above(terminal):
            return await app.run()


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def _fresh_pairing(app: App) -> None:
    """A new simulator knows none of the last run's tokens: start from the config's."""
    if await app.journal.kept_get(KV_KEY) is not None:
        await app.journal.kept_set(KV_KEY, None)
        from edged.flow.pairing import load_pairing

        await app.set_pairing(await load_pairing(app.journal, app.config.sinqro))


async def _terminal_panel(app: App, terminal: Terminal) -> None:
    if app.panel is None:
        return
    from edged.virtual.panel import run_terminal_panel

    await run_terminal_panel(app.panel, app.state, terminal=terminal)


def _here(path: Path) -> str:
    """``path`` as typed from the current directory (relative below it)."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def edged_command() -> str:
    """How to run this same edged from the current directory: ``edged`` when that is the
    one on PATH, else its path (``.venv/bin/edged``), else ``python -m edged.cli``."""
    import shutil

    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "edged" and script.exists():
        on_path = shutil.which("edged")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "edged"
        shown = _here(script)
        return shlex.quote(shown if "/" in shown else f"./{shown}")
    return f"{shlex.quote(_here(Path(sys.executable)))} -m edged.cli"


async def _banner(app: App, path: Path, simulator: str, terminal: Terminal) -> None:
    await app.ready.wait()
    state_dir = Path(app.config.box.state_dir)
    tickets = state_dir / "tickets"
    web = f"http://127.0.0.1:{app.config.web.port}/" if app.web is not None else "(web off)"
    _ = Locale(app.config.box.language).gettext
    command = f"{edged_command()} orders -c {shlex.quote(_here(path))}"
    lines = [
        "",
        _("  edged demo is running: the daemon against the built-in Sinqro simulator."),
        _("  web page:  {url}").format(url=web),
        _("  simulator: {url}").format(url=simulator),
        _("  tickets:   {path}/<printer>/  (.txt and .png per ticket)").format(path=tickets),
        _("  config:    {path}").format(path=path),
        _("  log:       {path}").format(path=state_dir / "demo.log"),
        _("  try:       {command}").format(command=command),
        _("  stop:      Ctrl-C"),
        "",
    ]
    for line in lines:
        terminal.line(line)
    await asyncio.Event().wait()
