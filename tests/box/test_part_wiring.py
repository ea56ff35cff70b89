"""Parts own their wiring: every part subscribes to the journal and the box state while it
runs and unsubscribes when it stops, so restarting parts (SIGHUP's reload of changed
sections) leaves no listener of a stopped instance behind. The composition root runs in
this process against the in-process Sinqro simulator."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness import app_config
from ports import free_port
from test_live_settings import running
from waiting import eventually

from edged.app import App
from edged.config import load_config
from edged.configtools import dump_toml
from edged.simulator.server import Simulator

RESTARTED = ("panel", "mqtt", "serial", "web", "alerts")


def sections(step: int) -> dict[str, Any]:
    """Sections of every part that listens, different for each ``step``."""
    return {
        "panel": {"enabled": True, "pin_factory": "mock", "escalate_after": 100.0 + step},
        "mqtt": {"enabled": True, "url": f"mqtt://127.0.0.1:{free_port()}"},
        "serial": {"enabled": True, "port": f"/dev/edged-test-absent-{step}"},
        "web": {"host": "127.0.0.1", "port": free_port(), "session_idle_minutes": 30 + step},
        "alerts": {"order_waiting_after": 60.0 + step},
    }


def wiring(app: App) -> tuple[int, int, int]:
    """How many listeners the journal, the state and the unstored orders hold."""
    return (
        len(app.journal._listeners),
        len(app.state._watchers),
        len(app.desk.unstored._listeners),
    )


def all_running(app: App) -> bool:
    return all(app.state.get(f"part.{name}", {}).get("state") == "running" for name in RESTARTED)


async def test_restarted_parts_leave_no_listener_behind(tmp_path: Path, sim: Simulator) -> None:
    path = app_config(tmp_path, sim, **sections(0))
    app = App(load_config(path))
    async with running(app):
        await eventually(lambda: all_running(app), what="every part running")
        before = wiring(app)
        old_panel, old_web, old_alerts = app.panel, app.web, app.alerts
        assert old_panel is not None and old_web is not None and old_alerts is not None
        # Running parts listen (else this test would prove nothing).
        assert old_panel._on_events in app.journal._listeners
        assert old_alerts._on_state in app.state._watchers
        assert old_web.live.on_state_change in app.state._watchers
        for step in (1, 2):
            doc = {**tomllib.loads(path.read_text(encoding="utf-8")), **sections(step)}
            path.write_text(dump_toml(doc), encoding="utf-8")
            result = await app.reload()
            assert set(RESTARTED) <= set(result.parts), result.parts
            await eventually(
                lambda old=old_web: app.web not in (None, old) and all_running(app),
                what="every restarted part running again",
            )
            old_web = app.web
        assert wiring(app) == before
        assert old_panel._on_events not in app.journal._listeners
        assert old_panel._on_unstored not in app.desk.unstored._listeners
        assert old_alerts._on_state not in app.state._watchers
        assert app.panel is not None and app.panel is not old_panel
        assert app.panel._on_events in app.journal._listeners
