"""Command line: ``edged run | demo | sim | check-config | orders | accept | cancel | ...``.

This module is the entry point (``edged.cli:main``, ``python -m edged.cli``): it parses the
command line and sets up logging. The commands beside the daemon (orders, decisions,
status, reprints, check-config) are in :mod:`edged.commandline`; exit codes are listed in
:mod:`edged.commandline.base` and in ``edged --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edged import __version__, redaction
from edged.commandline.base import (
    DEFAULT_CONFIG,
    DEFAULT_RELAY_CONFIG,
    EX_CONFIG,
    EX_OK,
    EX_UNAVAILABLE,
    EXIT_CODES,
    load,
    read_env_file,
)
from edged.commandline.base import config_path as _config_path
from edged.configtools import ConfigError
from edged.i18n import LANGUAGES, Locale

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


def fatal_line(text: str) -> str:
    """A line that ends the process, at CRIT for journald (``<2>``) when stderr is the
    journal: printed before logging starts, it would otherwise be filed at INFO."""
    if os.environ.get("JOURNAL_STREAM"):
        return "\n".join(f"<2>{line}" for line in text.splitlines())
    return text


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


# -- commands -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from edged.app import run_app

    config = load(args)
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


def cmd_failure_led(args: argparse.Namespace) -> int:
    from edged import failure

    setup_logging("INFO")
    if args.check:
        return 0 if failure.down_for_good(args.check) else 1
    return failure.run(Path(_config_path(args)), args.retry_after)


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from edged.commandline import catalog, checking, fleet, orders, release, status
    from edged.sinqro.models import SETTABLE_STATUSES

    def parser_for(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.epilog = EXIT_CODES
        return p

    parser = parser_for(
        argparse.ArgumentParser(prog="edged", description="The restaurant order box daemon.")
    )
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="override the config's logging.level",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return parser_for(sub.add_parser(name, help=help, description=help))

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", help=f"config file (default $EDGED_CONFIG or {DEFAULT_CONFIG})"
        )
        return p

    def answering(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """A command that answers people: in the box's language unless told otherwise."""
        with_config(p)
        p.add_argument(
            "--language",
            choices=LANGUAGES,
            help="language of the answer (default: the box's, box.language)",
        )
        return p

    def order_ref(p: argparse.ArgumentParser) -> None:
        p.add_argument("order", help="order id or code (e.g. 422429 or OP4ES5)")

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--wait",
            type=float,
            default=10.0,
            help="seconds to wait for Sinqro's answer; 0: only queue it (default %(default)s)",
        )

    p = with_config(command("run", "run the daemon (on a real box, under systemd)"))
    p.set_defaults(func=cmd_run)

    p = command("relay", "Sinqro webhooks in, MQTT out, for a fleet of boxes")
    p.add_argument(
        "-c",
        "--config",
        help=f"relay config (default $EDGED_RELAY_CONFIG or {DEFAULT_RELAY_CONFIG})",
    )
    p.set_defaults(func=cmd_relay)

    p = command("fleet", "the vendor's fleet, as the broker holds it (each box's info)")
    fleet_sub = p.add_subparsers(
        dest="fleet_command", required=True, metavar="SUBCOMMAND", help="%(choices)s"
    )
    p = parser_for(fleet_sub.add_parser("ls", help="one line per box"))
    fleet.add_arguments(p)
    p.add_argument("--availability", choices=["online", "offline"], help="only these boxes")
    p.add_argument("--link", help="only boxes whose Sinqro link is in this state (online...)")
    p.add_argument("--with-incidents", action="store_true", help="only boxes with incidents")
    p.set_defaults(func=fleet.cmd_ls)
    p = parser_for(fleet_sub.add_parser("show", help="everything one box reported"))
    p.add_argument("box", help="box id")
    fleet.add_arguments(p)
    p.set_defaults(func=fleet.cmd_show)
    p = parser_for(
        fleet_sub.add_parser("exporter", help="Prometheus series, one set per box (/metrics)")
    )
    fleet.add_broker_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=9880, help="port to listen on (%(default)s)")
    p.set_defaults(func=fleet.cmd_exporter)
    p = parser_for(
        fleet_sub.add_parser("release", help="sign and publish a staged update's manifest")
    )
    release.add_release_arguments(p)
    p.set_defaults(func=release.cmd_release)
    p = parser_for(fleet_sub.add_parser("rollout", help="a staged update's progress"))
    rollout_sub = p.add_subparsers(
        dest="rollout_command", required=True, metavar="SUBCOMMAND", help="%(choices)s"
    )
    p = parser_for(rollout_sub.add_parser("status", help="per wave: installed, failed, pending"))
    release.add_status_arguments(p)
    p.set_defaults(func=release.cmd_rollout_status)

    p = with_config(command("box-id", "print this box's id (MQTT, fleet, host name)"))
    p.add_argument("-v", "--verbose", action="store_true", help="also where it came from")
    p.set_defaults(func=cmd_box_id)

    p = command("demo", "daemon + Sinqro simulator + virtual printer and panel")
    p.add_argument(
        "--state-dir", default="demo-state", help="journal, tickets (default %(default)s)"
    )
    p.add_argument(
        "--web-port", type=int, default=8080, help="local web page (default %(default)s)"
    )
    p.add_argument("--sim-port", type=int, default=0, help="simulator port (default: any free)")
    p.add_argument(
        "--orders-every",
        type=float,
        default=20.0,
        help="seconds between new orders; 0: none (default %(default)s)",
    )
    p.add_argument("--headless", action="store_true", help="no terminal view or keys")
    p.add_argument(
        "--language",
        choices=LANGUAGES,
        default=None,
        help="page, ticket and terminal language; wins over one saved on the page "
        "(default: the saved one, else en)",
    )
    p.set_defaults(func=cmd_demo)

    p = command("sim", "run the Sinqro simulator alone")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8900, help="port (default %(default)s)")
    p.add_argument(
        "--orders-every", type=float, default=None, help="seconds between generated orders"
    )
    p.set_defaults(func=cmd_sim)

    p = command("check-config", "validate a config file without starting; lists every problem")
    p.add_argument("file", help="the config file, e.g. /etc/edged/edged.toml")
    p.add_argument("--show", action="store_true", help="print the effective config (no secrets)")
    p.add_argument("--language", choices=LANGUAGES, help="language of the summary line")
    p.set_defaults(func=checking.cmd_check_config)

    p = answering(command("orders", "list open orders from the journal"))
    p.add_argument("--all", action="store_true", help="recent orders, final ones too")
    p.add_argument(
        "--limit", type=int, default=50, help="with --all: at most this many (default %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    p.set_defaults(func=orders.cmd_orders)

    p = answering(command("accept", "accept a waiting order"))
    order_ref(p)
    p.add_argument(
        "--delay", type=int, default=None, help="minutes of delay, 0 to 240 (Sinqro's options)"
    )
    waiting(p)
    p.set_defaults(func=lambda a: orders.decide(a, "accept"))

    p = answering(command("cancel", "cancel an order (a comment is required)"))
    order_ref(p)
    p.add_argument("--comment", required=True, help="why, for the customer (Sinqro requires it)")
    waiting(p)
    p.set_defaults(func=lambda a: orders.decide(a, "cancel"))

    p = answering(command("set-status", "move an accepted order on (preparation, ready...)"))
    order_ref(p)
    p.add_argument(
        "status", choices=SETTABLE_STATUSES, metavar="STATUS", help="the new status: %(choices)s"
    )
    p.add_argument("--reason", default="", help="why; required for cancelled_by_sp")
    waiting(p)
    p.set_defaults(func=lambda a: orders.decide(a, "status"))

    p = answering(command("products", "the selling point's products and options, as last read"))
    p.add_argument("--unavailable", action="store_true", help="only what is sold out")
    p.add_argument("--refresh", action="store_true", help="read it from Sinqro first")
    p.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    p.set_defaults(func=catalog.cmd_products)

    p = answering(command("sold-out", "mark a product or an option sold out at Sinqro"))
    p.add_argument("product", help="id, external id or name of a product or option")
    p.add_argument(
        "--until",
        default=None,
        help="back on by itself: closing, 1h, 2h, 90m or HH:MM (default: until turned back)",
    )
    waiting(p)
    p.set_defaults(func=lambda a: catalog.cmd_availability(a, False))

    p = answering(command("available", "put a sold-out product or option back on sale"))
    p.add_argument("product", help="id, external id or name of a product or option")
    waiting(p)
    p.set_defaults(func=lambda a: catalog.cmd_availability(a, True))

    p = answering(command("status", "journal counts and the daemon's health"))
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.set_defaults(func=status.cmd_status)

    p = answering(command("reprint", "print an order's ticket again"))
    order_ref(p)
    p.add_argument("--printer", default=None, help="printer name (default: the order's own)")
    p.set_defaults(func=orders.cmd_reprint)

    p = answering(command("test-print", "print a test page"))
    p.add_argument("name", help="printer name, as in the config's [[printers]]")
    p.set_defaults(func=orders.cmd_test_print)

    p = with_config(command("failure-led", "log the daemon's failure and blink the failure LED"))
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


def _quiet_stdout() -> None:
    # The reader went away (`edged orders | head -1`): point stdout at /dev/null so the
    # interpreter's last flush does not fail too (Python's documented recipe).
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    from edged.journal.writer import JournalError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        from edged.commandline.checking import line_of, located

        print(
            fatal_line(f"edged: bad configuration: {located(exc, line_of(exc))}"), file=sys.stderr
        )
        return EX_CONFIG
    except BrokenPipeError:
        _quiet_stdout()
        return EX_OK
    except JournalError as exc:
        print(f"edged: {_journal_trouble(args, exc)}", file=sys.stderr)
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


def _journal_trouble(args: argparse.Namespace, exc: Exception) -> str:
    """What the journal's error means, in the box's language (English if the config
    cannot be read)."""
    from edged.journal.opening import DamagedJournal

    language = "en"
    with contextlib.suppress(Exception):  # the config is not what failed; English will do
        language = load(args).box.language
    _ = Locale(language).gettext
    if isinstance(exc, DamagedJournal):
        return f"{_('the order journal is damaged')}: {exc}"
    return f"{_('the box cannot store right now')}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
