"""``edged products``, ``edged sold-out`` and ``edged available`` as people use them: real
processes (the simulator, the daemon, the command line) on a real journal. The daemon reads
the catalog when it starts; the command line queues the change, the daemon sends it once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import DaemonProcess, SimulatorProcess, write_config

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

EDGED = str(Path(sys.executable).with_name("edged"))


def edged(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGED, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def product_at_sinqro(cloud: SimulatorProcess, info: dict[str, Any], product_id: int) -> Any:
    headers = {
        "x-api-server-access-token": DEFAULT_SERVER_TOKEN,
        "x-api-user-access-token": DEFAULT_USER_TOKEN,
    }
    url = f"{info['baseUrl']}/sellingPoints/{info['sellingPointId']}/products/{product_id}"
    return httpx.get(url, headers=headers, timeout=10).json()


def test_sold_out_and_back_from_the_command_line(tmp_path: Path, cloud: SimulatorProcess) -> None:
    info = cloud.info()
    config = write_config(
        tmp_path, info, box={"state_dir": str(tmp_path / "state"), "timezone": "Europe/Madrid"}
    )
    with DaemonProcess(config, log_path=tmp_path / "edged.log") as daemon:
        daemon.start()
        deadline = time.monotonic() + 60
        while True:  # the daemon's first catalog read lands in the journal
            listed = edged(config, "products", "--json")
            if listed.returncode == 0 and json.loads(listed.stdout):
                break
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.2)
        rows = json.loads(listed.stdout)
        assert {r["id"] for r in rows if r["kind"] == "product"} >= {109800, 109805, 119800}
        assert json.loads(edged(config, "products", "--unavailable", "--json").stdout) == []

        sold = edged(config, "sold-out", "pulpo a la gallega", "--until", "2h", "--wait", "20")
        assert sold.returncode == 0, sold.stderr + daemon.log_tail()
        assert "done, Sinqro has it" in sold.stdout
        assert product_at_sinqro(cloud, info, 109805)["isAvailable"] is False
        unavailable = json.loads(edged(config, "products", "--unavailable", "--json").stdout)
        assert [(r["id"], r["available"]) for r in unavailable] == [(109805, False)]
        assert unavailable[0]["back_at"] > time.time() + 7000

        # Changed in Sinqro's back office: --refresh reads it now.
        headers = {
            "x-api-server-access-token": DEFAULT_SERVER_TOKEN,
            "x-api-user-access-token": DEFAULT_USER_TOKEN,
        }
        url = f"{info['baseUrl']}/sellingPoints/{info['sellingPointId']}/products/109809"
        httpx.patch(url, json={"isAvailable": False}, headers=headers, timeout=10)
        refreshed = edged(config, "products", "--refresh", "--unavailable", "--json")
        assert refreshed.returncode == 0, refreshed.stderr
        assert {r["id"] for r in json.loads(refreshed.stdout)} == {109805, 109809}

        back = edged(config, "available", "TPV-006", "--wait", "20")
        assert back.returncode == 0, back.stderr
        assert product_at_sinqro(cloud, info, 109805)["isAvailable"] is True

        unknown = edged(config, "sold-out", "caviar", "--wait", "0")
        assert unknown.returncode == 3 and "(UNKNOWN_PRODUCT)" in unknown.stderr
        spanish = edged(config, "sold-out", "109805", "--until", "someday", "--language", "es")
        assert spanish.returncode == 3 and "(BAD_UNTIL)" in spanish.stderr
        assert "Rechazado" in spanish.stderr
