"""``python -m edged.simulator --port N [--state FILE]``: the simulator in its own process.

Crash tests run it apart from the daemon so the daemon can be killed while the simulator
keeps counting what it received (``GET /_sim/actions``); ``--state`` also writes orders and
received actions to a JSON file, and reads it back on start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN, serve


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edged.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--state", default=None, help="persist orders and received actions here")
    p.add_argument(
        "--orders-every", type=float, default=None, help="create a random order every N seconds"
    )
    p.add_argument("--server-token", default=DEFAULT_SERVER_TOKEN)
    p.add_argument("--user-token", default=DEFAULT_USER_TOKEN, help="pre-issued token of demo")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    task = asyncio.create_task(
        serve(
            args.host,
            args.port,
            generate_every=args.orders_every,
            server_token=args.server_token,
            user_token=args.user_token,
            state_file=args.state,
        ),
        name="simulator",
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
