"""Runs an MQTT bridge in its own process, so a test can SIGKILL it (last will test).

Usage: python mqtt_bridge_child.py BROKER_PORT JOURNAL_PATH
"""

from __future__ import annotations

import asyncio
import sys

from edged.bridges.mqtt import MqttBridge
from edged.bridges.settings import MqttConfig
from edged.flow.desk import OrderDesk
from edged.flow.settings import OrdersConfig
from edged.journal.store import Journal
from edged.state import BoxState


async def main(port: int, path: str) -> None:
    journal = await Journal.open(path)
    state = BoxState()
    desk = OrderDesk(journal, state, OrdersConfig())
    config = MqttConfig(enabled=True, url=f"mqtt://127.0.0.1:{port}", keepalive=5)
    await MqttBridge(config, journal, desk, state, box_id="box1").run()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
