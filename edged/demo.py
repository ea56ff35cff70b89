"""``edged demo``: the real daemon against the built-in Sinqro simulator.

The demo is only a config: it starts the simulator on localhost, writes
``<state-dir>/edged.toml`` pointing the daemon at it (two virtual printers, the mock panel,
the web page on localhost) and runs the same :class:`edged.app.App` a real box runs. The
file stays, so ``edged orders -c demo-state/edged.toml`` and friends work beside it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from edged.app import App, Extras
from edged.config import load_config
from edged.configtools import dump_toml
from edged.i18n import Locale
from edged.i18n.words import status_word, type_word
from edged.journal import events as ev
from edged.pairing import KV_KEY

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
        "# Try: edged orders -c THIS_FILE, edged accept ID -c THIS_FILE\n"
    )
    return header + dump_toml(doc)


async def _event_view(app: App) -> None:
    """Print a short line for each order event, for people watching the terminal."""
    journal = app.journal
    seq = journal.last_seq
    # On a terminal the panel redraws its status line in place: clear it before each line.
    clear = "\r\x1b[K" if sys.stdout.isatty() else ""
    while True:
        await journal.wait_for_events(seq)
        # Built per batch: the selling point's time zone is known only once the box has
        # talked to Sinqro, usually after this view started.
        timezone = app.current_pairing().timezone or app.config.box.timezone
        locale = Locale(app.config.box.language, timezone)
        for event in await journal.read_events(seq):
            seq = event.seq
            line = describe(event.kind, event.order_id, event.data, locale)
            if line:
                print(f"{clear}  {locale.time(event.ts)}  {line}", flush=True)


def describe(kind: str, order_id: int | None, d: dict[str, object], locale: Locale) -> str:
    """One terminal line for a journal event, in the box's language ("" to skip it)."""
    _ = locale.gettext
    if kind == ev.ORDER_NEW:
        return _("NEW      order {id}: {type} ({code})").format(
            id=order_id, type=type_word(str(d.get("type")), locale), code=d.get("code")
        )
    if kind == ev.ORDER_STATUS:
        return _("STATUS   order {id}: {old} -> {new}").format(
            id=order_id,
            old=status_word(str(d.get("previous")), locale),
            new=status_word(str(d.get("status")), locale),
        )
    if kind == ev.COMMAND_DONE:
        return _("SENT     {kind} of order {id} (from {source})").format(
            kind=d.get("kind"), id=order_id, source=d.get("source")
        )
    if kind == ev.COMMAND_FAILED:
        return _("REFUSED  {kind} of order {id}: {code}").format(
            kind=d.get("kind"), id=order_id, code=d.get("code")
        )
    if kind == ev.PRINT_DONE:
        printer = d.get("printer")
        if order_id:
            return _("PRINTED  ticket of order {id} on {printer}").format(
                id=order_id, printer=printer
            )
        kinds = {"text": _("setup ticket"), "test": _("test page")}
        kind = kinds.get(str(d.get("kind")), str(d.get("kind")))
        return _("PRINTED  {kind} on {printer}").format(kind=kind, printer=printer)
    return ""


async def run_demo(
    *,
    state_dir: Path,
    web_port: int,
    sim_port: int,
    orders_every: float,
    headless: bool,
    language: str = "en",
) -> int:
    """Run simulator and daemon together until Ctrl-C."""
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
            language=language,
        )
        await asyncio.to_thread(_write_file, path, text)
        config = load_config(path)
        extras = Extras()
        if not headless:
            extras.tasks.append(("demo-view", _event_view))
            extras.tasks.append(("demo-panel", _terminal_panel))
        app = App(config, extras=extras)
        app.demo = True
        extras.tasks.append(("demo-banner", lambda a: _banner(a, path)))
        extras.tasks.insert(0, ("demo-pairing", _fresh_pairing))
        return await app.run()


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def _fresh_pairing(app: App) -> None:
    """A new simulator knows none of the last run's tokens: start from the config's."""
    if await app.journal.kept_get(KV_KEY) is not None:
        await app.journal.kept_set(KV_KEY, None)
        from edged.pairing import load_pairing

        await app.set_pairing(await load_pairing(app.journal, app.config.sinqro))


async def _terminal_panel(app: App) -> None:
    if app.panel is None:
        return
    from edged.virtual.panel import run_terminal_panel

    await run_terminal_panel(app.panel, app.state)


async def _banner(app: App, path: Path) -> None:
    await app.ready.wait()
    tickets = Path(app.config.box.state_dir) / "tickets"
    web = f"http://127.0.0.1:{app.config.web.port}/" if app.web is not None else "(web off)"
    _ = Locale(app.config.box.language).gettext
    lines = [
        "",
        _("  edged demo is running: the daemon against the built-in Sinqro simulator."),
        _("  web page:  {url}").format(url=web),
        _("  tickets:   {path}/<printer>/  (.txt and .png per ticket)").format(path=tickets),
        _("  config:    {path}").format(path=path),
        _("  log:       {path}").format(path=Path(app.config.box.state_dir) / "demo.log"),
        _("  try:       edged orders -c {path}").format(path=path),
        _("  stop:      Ctrl-C"),
        "",
    ]
    print("\n".join(lines), flush=True)
    await asyncio.Event().wait()
