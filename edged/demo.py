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
) -> str:
    """The demo's config file text."""
    tickets = (state_dir / "tickets").resolve()
    doc = {
        "box": {"name": "edged-demo", "state_dir": str(state_dir.resolve()), "language": "en"},
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
        for event in await journal.read_events(seq):
            seq = event.seq
            line = _describe(event.kind, event.order_id, event.data)
            if line:
                print(f"{clear}  {line}", flush=True)


def _describe(kind: str, order_id: int | None, d: dict[str, object]) -> str:
    if kind == ev.ORDER_NEW:
        return f"NEW     order {order_id} {d.get('type')} ({d.get('code')})"
    if kind == ev.ORDER_STATUS:
        return f"STATUS  order {order_id} {d.get('previous')} -> {d.get('status')}"
    if kind == ev.COMMAND_DONE:
        return f"SENT    {d.get('kind')} order {order_id} (from {d.get('source')})"
    if kind == ev.COMMAND_FAILED:
        return f"REFUSED {d.get('kind')} order {order_id}: {d.get('code')}"
    if kind == ev.PRINT_DONE:
        what = "reprint" if d.get("reprint") else d.get("kind")
        of = f" of order {order_id}" if order_id else ""
        return f"PRINTED {what} ticket{of} on {d.get('printer')}"
    return ""


async def run_demo(
    *,
    state_dir: Path,
    web_port: int,
    sim_port: int,
    orders_every: float,
    headless: bool,
) -> int:
    """Run simulator and daemon together until Ctrl-C."""
    from edged.simulator.server import Simulator

    async with Simulator(
        host="127.0.0.1", port=sim_port, generate_every=orders_every or None
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
    print(
        "\n"
        "  edged demo is running: the daemon against the built-in Sinqro simulator.\n"
        f"  web page:  {web}\n"
        f"  tickets:   {tickets}/<printer>/  (.txt and .png per ticket)\n"
        f"  config:    {path}\n"
        f"  log:       {Path(app.config.box.state_dir) / 'demo.log'}\n"
        f"  try:       edged orders -c {path}\n"
        "  stop:      Ctrl-C\n",
        flush=True,
    )
    await asyncio.Event().wait()
