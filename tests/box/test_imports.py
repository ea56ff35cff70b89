"""A part's libraries are imported when the part starts, not with the daemon.

``edged run`` (as systemd starts it, a process of its own) against the simulator: once it
is READY and has stored the simulator's orders it is stopped, and a ``sitecustomize`` hook
writes the names in ``sys.modules`` at exit. Without MQTT, a fleet or a raster printer
the daemon must never have imported the simulator, Pillow, qrcode, aiomqtt, paho or
python-escpos; with the MQTT bridge on, the MQTT libraries do come (so the check can fail).
This is a functional check of what the process loaded, not a timing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from harness import DaemonProcess, SimulatorProcess, write_config
from ports import free_port

from edged.config import load_config

ROOT = Path(__file__).resolve().parents[2]
NEVER_UNCONFIGURED = ("edged.simulator", "PIL", "qrcode", "aiomqtt", "paho", "escpos")
HOOK = """\
import atexit, json, os, sys

def _dump():
    with open(os.environ["EDGED_MODULES_OUT"], "w", encoding="utf-8") as fh:
        json.dump(sorted(sys.modules), fh)

atexit.register(_dump)
"""


def run_and_list_modules(tmp_path: Path, cloud: SimulatorProcess, **sections: Any) -> set[str]:
    """The modules a real ``edged run`` with ``sections`` held when it stopped."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    out = tmp_path / "modules.json"
    httpx.post(f"{cloud.root}/_sim/orders", json={"count": 2}, timeout=30).raise_for_status()
    config = write_config(tmp_path, cloud.info(), **sections)
    env = {
        "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]),
        "EDGED_MODULES_OUT": str(out),
    }
    journal = Path(load_config(config).journal_path)
    with DaemonProcess(config, env=env) as daemon:
        daemon.start(wait_ready=60)
        deadline = time.monotonic() + 60
        while stored(journal) < 2:  # the catch-up ran: the link and the desk did their work
            assert time.monotonic() < deadline, daemon.log_tail()
            daemon.wait_for("READY=1", 5)  # reads the notify socket meanwhile
            time.sleep(0.05)
        assert daemon.stop() == 0, daemon.log_tail()
    return set(json.loads(out.read_text(encoding="utf-8")))


def stored(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0  # not migrated yet


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_run_without_optional_parts_never_imports_their_libraries(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    modules = run_and_list_modules(
        tmp_path, cloud, panel={"pin_factory": "mock"}, mqtt={"enabled": False}
    )
    assert "edged.app" in modules and "edged.web.server" in modules  # it really ran
    for package in NEVER_UNCONFIGURED:
        assert not loaded(modules, package), (package, loaded(modules, package)[:5])


def test_mqtt_bridge_brings_the_mqtt_libraries(tmp_path: Path, cloud: SimulatorProcess) -> None:
    # No broker listens there: the bridge part starts (and retries), which is enough.
    url = f"mqtt://127.0.0.1:{free_port()}"
    modules = run_and_list_modules(tmp_path, cloud, mqtt={"enabled": True, "url": url})
    assert loaded(modules, "aiomqtt") and loaded(modules, "paho")
    for package in ("edged.simulator", "PIL", "qrcode", "escpos"):
        assert not loaded(modules, package), (package, loaded(modules, package)[:5])
