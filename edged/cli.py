"""Command line: ``edged run | demo | sim | check-config | orders | accept | cancel | ...``.

Commands that act on orders (accept, cancel, set-status, reprint, test-print) write to the
journal, whether the daemon is running or not: a running daemon notices within a second
and delivers them; a stopped one delivers them when it starts. Nothing bypasses the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edged import __version__, redaction
from edged.config import Config, load_config
from edged.configtools import ConfigError, to_plain
from edged.i18n import LANGUAGES, Locale
from edged.i18n.words import status_word, type_word

DEFAULT_CONFIG = "/etc/edged/edged.toml"
DEFAULT_RELAY_CONFIG = "/etc/edged/relay.toml"
EX_CONFIG = 78  # sysexits.h: the unit does not restart on it (RestartPreventExitStatus)
log = logging.getLogger("edged")

# syslog priorities for journald's "<N>" line prefixes (sd-daemon(3)).
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class _JournaldFormatter(logging.Formatter):
    """``<N>logger: message``: journald adds time and host, and reads the priority."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def setup_logging(level: str, *, file: Path | None = None) -> None:
    """Log to stderr (journald-style under systemd). With ``file``, everything at ``level``
    goes there and only warnings reach the terminal (the interactive demo)."""
    plain = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournaldFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(plain)
    handlers: list[logging.Handler] = [handler]
    if file is not None:
        handler.setLevel(logging.WARNING)
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(file, encoding="utf-8")
        to_file.setFormatter(plain)
        handlers.append(to_file)
    redaction.install(handlers)  # no secret in any log, at any level
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("websockets", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # httpx logs every URL (a Telegram bot's holds its token), httpcore the traffic: never
    # below WARNING, even when debugging.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("EDGED_CONFIG") or DEFAULT_CONFIG)


def read_env_file(path: Path) -> None:
    """Take ``KEY=VALUE`` lines from the unit's EnvironmentFile, for CLI use on a box.

    Only keys not already in the environment are set, as systemd does for the daemon.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def _load(args: argparse.Namespace) -> Config:
    path = Path(_config_path(args))
    read_env_file(path.with_name("edged.env"))
    return load_config(path)


# -- commands -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from edged.app import run_app

    config = _load(args)
    setup_logging(args.log_level or config.logging.level)
    log.info("edged %s starting with %s", __version__, config.source)
    return asyncio.run(run_app(config))


def cmd_demo(args: argparse.Namespace) -> int:
    from edged.demo import run_demo

    state_dir = Path(args.state_dir)
    # Interactive: the terminal shows the order view and the panel; details go to a file.
    log_file = None if args.headless else state_dir / "demo.log"
    setup_logging(args.log_level or "INFO", file=log_file)
    return asyncio.run(
        run_demo(
            state_dir=state_dir,
            web_port=args.web_port,
            sim_port=args.sim_port,
            orders_every=args.orders_every,
            language=args.language,
            headless=args.headless,
        )
    )


def cmd_sim(args: argparse.Namespace) -> int:
    from edged.simulator.server import serve

    setup_logging(args.log_level or "INFO")
    asyncio.run(serve(args.host, args.port, generate_every=args.orders_every))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    read_env_file(Path(args.file).with_name("edged.env"))
    config = load_config(args.file)
    print(f"{config.source}: OK")
    if args.show:
        print(json.dumps(to_plain(config), indent=2, ensure_ascii=False))
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    from edged.relay.server import serve
    from edged.relay.settings import load_relay_config

    path = Path(args.config or os.environ.get("EDGED_RELAY_CONFIG") or DEFAULT_RELAY_CONFIG)
    read_env_file(path.with_name("relay.env"))
    config = load_relay_config(path)
    redaction.remember_config(config)
    setup_logging(args.log_level or config.logging.level)
    log.info("edged relay %s starting with %s", __version__, path)
    return asyncio.run(serve(config))


def cmd_box_id(args: argparse.Namespace) -> int:
    """Print the box id. Reads only the ``[box]`` table, so it works before the rest of the
    config is complete (the image names the host ``edged-<id>`` at first boot)."""
    from edged.config import load_box_config
    from edged.fleet.identity import resolve_identity

    path = Path(_config_path(args))
    box = load_box_config(path, with_web_settings=False)
    state_dir = Path(box.state_dir)
    if not state_dir.is_absolute():
        state_dir = path.parent / state_dir
    identity = resolve_identity(
        configured=box.id,
        serial_file=box.serial_file,
        machine_id_file=box.machine_id_file,
        state_dir=state_dir,
    )
    print(identity.box_id)
    if args.verbose:
        print(f"source: {identity.source}")
        print(f"hostname: {identity.hostname}")
        print(f"board: {identity.board_model}")
    return 0


async def _with_journal(args: argparse.Namespace, work: Any) -> int:
    from edged.journal.store import Journal

    config = _load(args)
    if not config.journal_path.exists():
        print(f"no journal at {config.journal_path} (has edged run yet?)", file=sys.stderr)
        return 1
    journal = await Journal.open(config.journal_path, watch_interval=0)
    try:
        result: int = await work(config, journal)
        return result
    finally:
        await journal.close()


async def _locale(config: Config, journal: Any) -> Locale:
    """The box's language and the selling point's time zone (from the pairing)."""
    from edged.pairing import load_pairing

    pairing = await load_pairing(journal, config.sinqro)
    return Locale(config.box.language, pairing.timezone or config.box.timezone)


async def resolve_order(journal: Any, ref: str) -> tuple[int | None, str]:
    """An order id from what was typed: an id, or the order's code (``OP4ES5``, any
    case). Returns ``(id, "")`` or ``(None, why)``."""
    text = ref.strip().lstrip("#")
    if text.isdigit() and len(text) <= 19 and await journal.get_order(int(text)) is not None:
        return int(text), ""
    matches = [
        o
        for o in await journal.list_orders(search=text, limit=50)
        if o.code.upper() == text.upper()
    ]
    if len(matches) == 1:
        return matches[0].id, ""
    if matches:
        ids = ", ".join(str(o.id) for o in matches)
        return None, f"code {text} matches several orders ({ids}): give the id"
    return None, f"no order with id or code {text} in the journal"


def cmd_orders(args: argparse.Namespace) -> int:
    async def work(config: Config, journal: Any) -> int:
        locale = await _locale(config, journal)
        _ = locale.gettext
        if args.all:
            orders = await journal.list_orders(limit=args.limit)
        else:
            orders = await journal.open_orders()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": o.id,
                            "code": o.code,
                            "type": o.type,
                            "status": o.status,
                            "final": o.is_final,
                            "first_seen": o.first_seen,
                        }
                        for o in orders
                    ],
                    indent=2,
                )
            )
            return 0
        if not orders:
            print(_("no orders") if args.all else _("no open orders"))
            return 0
        rows = [(_("ID"), _("CODE"), _("TYPE"), _("STATUS"), _("SEEN"))]
        rows += [
            (
                str(o.id),
                o.code,
                type_word(o.type, locale),
                status_word(o.status, locale),
                locale.datetime(o.first_seen),
            )
            for o in orders
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            cells = [row[0].rjust(widths[0])] + [
                c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)
            ]
            print("  ".join(cells).rstrip())
        return 0

    return asyncio.run(_with_journal(args, work))


def _decide(args: argparse.Namespace, action: str) -> int:
    from edged.orders import CommandRefused, OrderDesk
    from edged.state import BoxState

    async def work(config: Config, journal: Any) -> int:
        desk = OrderDesk(journal, BoxState(), config.orders)
        order_id, why = await resolve_order(journal, args.order)
        if order_id is None:
            print(f"refused: {why} (UNKNOWN_ORDER)", file=sys.stderr)
            return 2
        try:
            if action == "accept":
                command = await desk.accept(order_id, args.delay, source="cli")
            elif action == "cancel":
                command = await desk.cancel(order_id, args.comment, source="cli")
            else:
                command = await desk.set_status(
                    order_id, args.status, reason=args.reason or "", source="cli"
                )
        except CommandRefused as exc:
            print(f"refused: {exc.message} ({exc.code})", file=sys.stderr)
            return 2
        print(f"command {command.id} queued: {action} order {order_id}")
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            current = await journal.get_command(command.id)
            if current.state == "done":
                print(f"command {command.id} done")
                return 0
            if current.state == "failed":
                print(
                    f"command {command.id} failed: {current.error_code}: {current.error}",
                    file=sys.stderr,
                )
                return 3
            await asyncio.sleep(0.2)
        if args.wait:
            print(f"command {command.id} still queued: the daemon will deliver it")
        return 0

    return asyncio.run(_with_journal(args, work))


def cmd_status(args: argparse.Namespace) -> int:
    async def work(config: Config, journal: Any) -> int:
        counts = await journal.counts()
        health: dict[str, Any] | None = None
        if config.web.enabled:
            import httpx

            host = "127.0.0.1" if config.web.host in ("0.0.0.0", "::") else config.web.host
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    response = await client.get(f"http://{host}:{config.web.port}/health")
                    health = response.json()
            except (httpx.HTTPError, ValueError):
                health = None
        print(f"journal: {config.journal_path}")
        for key, value in counts.items():
            print(f"  {key}: {value}")
        if health is None:
            print("daemon: not answering on its web port (stopped, or web disabled)")
        else:
            print("daemon: running")
            for key, value in health.items():
                print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
        return 0

    return asyncio.run(_with_journal(args, work))


def _unknown_printer(config: Config, name: str | None) -> bool:
    """True (after saying so) when ``name`` is given but not a configured printer."""
    names = [p.name for p in config.printers]
    if name is None or name in names:
        return False
    print(f"no printer {name!r}; configured: {', '.join(names) or 'none'}", file=sys.stderr)
    return True


def cmd_reprint(args: argparse.Namespace) -> int:
    from edged.printing.jobs import PrintRefused, append_print_request

    async def work(config: Config, journal: Any) -> int:
        if _unknown_printer(config, args.printer):
            return 2
        if await journal.get_order(args.order) is None:
            print(f"order {args.order} is not in the journal", file=sys.stderr)
            return 2
        try:
            await append_print_request(
                journal, "reprint", order_id=args.order, printer=args.printer, source="cli"
            )
        except PrintRefused as exc:
            print(f"reprint refused: {exc}", file=sys.stderr)
            return 1
        print(f"reprint of order {args.order} requested")
        return 0

    return asyncio.run(_with_journal(args, work))


def cmd_test_print(args: argparse.Namespace) -> int:
    from edged.printing.spooler import append_print_request

    async def work(config: Config, journal: Any) -> int:
        if _unknown_printer(config, args.name):
            return 2
        await append_print_request(journal, "test", printer=args.name, source="cli")
        print(f"test print on {args.name} requested")
        return 0

    return asyncio.run(_with_journal(args, work))


def cmd_failure_led(args: argparse.Namespace) -> int:
    from edged import failure

    setup_logging("INFO")
    if args.check:
        return 0 if failure.down_for_good(args.check) else 1
    return failure.run(Path(_config_path(args)), args.retry_after)


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edged", description="The restaurant order box daemon.")
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override the config"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", help=f"config file (default $EDGED_CONFIG or {DEFAULT_CONFIG})"
        )
        return p

    p = with_config(sub.add_parser("run", help="run the daemon (on a real box, under systemd)"))
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("relay", help="Sinqro webhooks in, MQTT out, for a fleet of boxes")
    p.add_argument(
        "-c",
        "--config",
        help=f"relay config (default $EDGED_RELAY_CONFIG or {DEFAULT_RELAY_CONFIG})",
    )
    p.set_defaults(func=cmd_relay)

    p = with_config(sub.add_parser("box-id", help="print this box's id (MQTT, fleet, host name)"))
    p.add_argument("-v", "--verbose", action="store_true", help="also where it came from")
    p.set_defaults(func=cmd_box_id)

    p = sub.add_parser("demo", help="daemon + Sinqro simulator + virtual printer and panel")
    p.add_argument(
        "--state-dir", default="demo-state", help="journal, tickets (default %(default)s)"
    )
    p.add_argument(
        "--web-port", type=int, default=8080, help="local web page (default %(default)s)"
    )
    p.add_argument("--sim-port", type=int, default=0, help="simulator port (default: any free)")
    p.add_argument("--orders-every", type=float, default=20.0, help="seconds between new orders")
    p.add_argument("--headless", action="store_true", help="no terminal view or keys")
    p.add_argument("--language", choices=LANGUAGES, default="en", help="page and ticket language")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run the Sinqro simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--orders-every", type=float, default=None, help="generate orders")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("check-config", help="validate a config file without starting")
    p.add_argument("file")
    p.add_argument("--show", action="store_true", help="print the effective config (no secrets)")
    p.set_defaults(func=cmd_check_config)

    p = with_config(sub.add_parser("orders", help="list open orders from the journal"))
    p.add_argument("--all", action="store_true", help="recent orders, final ones too")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_orders)

    p = with_config(sub.add_parser("accept", help="accept a waiting order"))
    p.add_argument("order", help="order id or code (e.g. OP4ES5)")
    p.add_argument("--delay", type=int, default=None, help="minutes of delay (Sinqro's options)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for Sinqro's answer")
    p.set_defaults(func=lambda a: _decide(a, "accept"))

    p = with_config(sub.add_parser("cancel", help="cancel an order (a comment is required)"))
    p.add_argument("order", help="order id or code (e.g. OP4ES5)")
    p.add_argument("--comment", required=True)
    p.add_argument("--wait", type=float, default=10.0)
    p.set_defaults(func=lambda a: _decide(a, "cancel"))

    p = with_config(sub.add_parser("set-status", help="move an order on (preparation, ready...)"))
    p.add_argument("order", help="order id or code (e.g. OP4ES5)")
    p.add_argument("status")
    p.add_argument("--reason", default="", help="required for cancelled_by_sp")
    p.add_argument("--wait", type=float, default=10.0)
    p.set_defaults(func=lambda a: _decide(a, "status"))

    p = with_config(sub.add_parser("status", help="journal counts and the daemon's health"))
    p.set_defaults(func=cmd_status)

    p = with_config(sub.add_parser("reprint", help="print an order's ticket again"))
    p.add_argument("order", type=int)
    p.add_argument("--printer", default=None)
    p.set_defaults(func=cmd_reprint)

    p = with_config(sub.add_parser("test-print", help="print a test page"))
    p.add_argument("name", help="printer name")
    p.set_defaults(func=cmd_test_print)

    p = with_config(
        sub.add_parser("failure-led", help="log the daemon's failure and blink the failure LED")
    )
    p.add_argument(
        "--retry-after", type=float, default=300.0, help="seconds to blink (0: until stopped)"
    )
    p.add_argument(
        "--check",
        metavar="UNIT",
        help="only answer: exit 0 if UNIT is down and will not be restarted, else 1",
    )
    p.set_defaults(func=cmd_failure_led)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"edged: bad configuration: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
