"""The daemon as a real process: READY, the CLI, a clean stop, and a SIGKILL mid-burst."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from harness import DaemonProcess, SimulatorProcess, sinqro_section
from ports import free_port
from waiting import eventually_blocking

from edged.configtools import dump_toml
from edged.i18n import Locale


def write_config(tmp_path: Path, sim: SimulatorProcess, **sections: Any) -> Path:
    info = sim.info()
    doc: dict[str, Any] = {
        "box": {"name": "test-box", "state_dir": str(tmp_path / "state")},
        "sinqro": sinqro_section(info),
        "orders": {"retry_max": 1.0},
        "panel": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    doc.update(sections)
    path = tmp_path / "edged.toml"
    path.write_text(dump_toml(doc), encoding="utf-8")
    return path


def sim_post(sim: SimulatorProcess, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{sim.root}/_sim{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def sim_get(sim: SimulatorProcess, path: str) -> Any:
    response = httpx.get(f"{sim.root}/_sim{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def journal_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged.cli", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ready_order_cli_accept_once_and_clean_stop(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    config = write_config(tmp_path, cloud)
    journal = tmp_path / "state" / "edged.sqlite3"
    with DaemonProcess(config) as daemon:
        daemon.start()
        # READY comes only once the journal exists and is migrated.
        assert journal.exists()
        assert journal_rows(journal, "PRAGMA user_version")[0][0] >= 1

        created = sim_post(cloud, "/orders", {"type": "collection"})
        order_id = int(created[0]["id"] if isinstance(created, list) else created["id"])
        eventually_blocking(
            lambda: journal_rows(journal, "SELECT 1 FROM orders WHERE id = ?", (order_id,)),
            within=15,
            what="the order in the journal",
        )
        listed = cli(config, "orders", "--json")
        assert listed.returncode == 0, listed.stderr
        assert order_id in [o["id"] for o in json.loads(listed.stdout)]

        accepted = cli(config, "accept", str(order_id), "--delay", "20", "--wait", "20")
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert "done" in accepted.stdout
        posts = [p for p in sim_get(cloud, "/actions") if p["orderId"] == order_id]
        assert len(posts) == 1
        assert posts[0]["actionType"] == "ACCEPT" and posts[0]["delayMinutes"] == 20

        refused = cli(config, "cancel", str(order_id), "--comment", "  ")
        assert refused.returncode == 3  # refused, not a usage error
        assert "ORDER_CANCELLATION_COMMENT_IS_REQUIRED" in refused.stderr

        health = httpx.get(f"http://127.0.0.1:{_web_port(config)}/health", timeout=5).json()
        assert health["link"] in ("online", "polling")
        status = cli(config, "status")
        assert status.returncode == 0 and "daemon: running" in status.stdout
        assert "link to Sinqro:" in status.stdout and "orders in the journal: 1" in status.stdout
        scripted = cli(config, "status", "--json")
        assert scripted.returncode == 0, scripted.stderr
        document = json.loads(scripted.stdout)
        assert document["running"] is True and document["journal"]["orders"] == 1
        assert document["daemon"]["link"] == health["link"]

        assert daemon.stop() == 0
        stopped = cli(config, "status")
        assert "daemon: not answering" in stopped.stdout
        assert stopped.returncode == 69  # EX_UNAVAILABLE: scripts ask "is it up?"
        assert json.loads(cli(config, "status", "--json").stdout)["running"] is False
        assert any(m.startswith("STOPPING=1") for m in daemon.messages)
    assert journal_rows(journal, "PRAGMA integrity_check")[0][0] == "ok"
    # The status change Sinqro confirmed is in the journal, once.
    kinds = journal_rows(
        journal, "SELECT kind FROM events WHERE order_id = ? ORDER BY seq", (order_id,)
    )
    assert [k for (k,) in kinds].count("order.new") == 1
    assert ("command.done",) in kinds


def _web_port(config: Path) -> int:
    import tomllib

    return int(tomllib.loads(config.read_text())["web"]["port"])


def test_commands_queued_while_the_daemon_is_down_are_sent_once_at_start(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    config = write_config(tmp_path, cloud)
    journal = tmp_path / "state" / "edged.sqlite3"
    with DaemonProcess(config) as daemon:
        daemon.start()
        order_id = int(sim_post(cloud, "/orders", {"type": "delivery"})[0]["id"])
        eventually_blocking(
            lambda: journal_rows(journal, "SELECT 1 FROM orders WHERE id = ?", (order_id,)),
            within=15,
            what="the order",
        )
        assert daemon.stop() == 0
        queued = cli(config, "cancel", str(order_id), "--comment", "Cerrado hoy", "--wait", "0")
        assert queued.returncode == 0, queued.stderr
        assert sim_get(cloud, "/actions") == []
        daemon.start()
        eventually_blocking(
            lambda: [p for p in sim_get(cloud, "/actions") if p.get("result") == "ok"],
            within=20,
            what="the cancel at Sinqro",
        )
        time.sleep(1.0)
        posts = sim_get(cloud, "/actions")
        assert len(posts) == 1 and posts[0]["actionType"] == "CANCEL"
        assert posts[0]["comment"] == "Cerrado hoy"
        daemon.stop()


def test_sigkill_mid_burst_loses_no_order_and_sends_no_command_twice(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    config = write_config(tmp_path, cloud, orders={"auto_accept": True, "retry_max": 1.0})
    journal = tmp_path / "state" / "edged.sqlite3"
    created: list[int] = []
    with DaemonProcess(config) as daemon:
        daemon.start()
        for round_ in range(6):
            for _ in range(5):
                created += [int(o["id"]) for o in sim_post(cloud, "/orders", {"count": 1})]
            # Kill at a different point of the burst each round.
            time.sleep(0.05 * round_)
            daemon.kill()
            daemon.start()
        eventually_blocking(
            lambda: len(journal_rows(journal, "SELECT id FROM orders")) >= len(created),
            within=30,
            what="every order in the journal",
        )
        eventually_blocking(
            lambda: (
                journal_rows(
                    journal, "SELECT COUNT(*) FROM outbox WHERE state IN ('queued','sending')"
                )[0][0]
                == 0
            ),
            within=60,
            what="the outbox to drain",
        )
        daemon.stop()
    stored = {i for (i,) in journal_rows(journal, "SELECT id FROM orders")}
    assert set(created) <= stored
    accepted = [p for p in sim_get(cloud, "/actions") if p.get("result") == "ok"]
    per_order: dict[int, int] = {}
    for post in accepted:
        per_order[post["orderId"]] = per_order.get(post["orderId"], 0) + 1
    assert per_order == {i: 1 for i in created}, "each auto-accept reached Sinqro exactly once"
    assert journal_rows(journal, "PRAGMA integrity_check")[0][0] == "ok"


def test_bad_config_fails_fast_with_the_key_named(tmp_path: Path) -> None:
    bad = tmp_path / "edged.toml"
    bad.write_text('[sinqro]\nserver_token = "x"\npoll_interval = "often"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "edged.cli", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    assert f"{bad}:3: sinqro.poll_interval: expected a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_config_under_systemd_is_filed_at_crit(tmp_path: Path) -> None:
    """Under systemd stderr is the journal (JOURNAL_STREAM): the line that ends the process
    carries journald's priority prefix for CRIT (sd-daemon(3)), not the default INFO."""
    bad = tmp_path / "edged.toml"
    bad.write_text('[sinqro]\nserver_token = "x"\npoll_interval = "often"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "edged.cli", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "JOURNAL_STREAM": "8:12345"},
    )
    assert result.returncode == 78
    (line,) = result.stderr.splitlines()
    assert line.startswith("<2>edged: bad configuration: ")
    assert "sinqro.poll_interval" in line
    assert "Traceback" not in result.stderr


def test_reprint_and_test_print_go_through_the_spooler(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    tickets = tmp_path / "tickets"
    # A zone far from the test machine's: the test page tells the box's time, not UTC.
    box = {"name": "test-box", "state_dir": str(tmp_path / "state"), "timezone": "Asia/Tokyo"}
    config = write_config(
        tmp_path, cloud, box=box, printers=[{"name": "counter", "uri": f"virtual://{tickets}"}]
    )
    journal = tmp_path / "state" / "edged.sqlite3"

    def texts(kind: str) -> list[str]:
        return [p.read_text(encoding="utf-8") for p in sorted(tickets.glob(f"*-{kind}.txt"))]

    with DaemonProcess(config) as daemon:
        daemon.start()
        order_id = int(sim_post(cloud, "/orders", {"type": "delivery"})[0]["id"])
        eventually_blocking(lambda: texts("order"), within=15, what="the first ticket")
        assert "REPRINT" not in texts("order")[0]

        code = journal_rows(journal, "SELECT code FROM orders WHERE id = ?", (order_id,))[0][0]
        done = cli(config, "reprint", code.lower())  # by code, as on the ticket, any case
        assert done.returncode == 0, done.stderr
        assert code in done.stdout
        (reprint,) = eventually_blocking(lambda: texts("reprint"), within=15, what="the reprint")
        assert "REPRINT" in reprint
        assert len(texts("order")) == 1

        tokyo = Locale("en", "Asia/Tokyo")
        before = tokyo.day_datetime(time.time())
        assert cli(config, "test-print", "counter").returncode == 0
        (page,) = eventually_blocking(
            lambda: list(tickets.glob("*-test.txt")), within=15, what="the test page"
        )
        after = tokyo.day_datetime(time.time())
        shown = {before, after}
        assert any(f"At: {when}" in page.read_text(encoding="utf-8") for when in shown), shown

        unknown = cli(config, "test-print", "bar")
        assert unknown.returncode == 2 and "no printer named bar" in unknown.stderr
        assert cli(config, "reprint", "123456789").returncode == 3
        daemon.stop()
    printed = journal_rows(journal, "SELECT data FROM events WHERE kind = 'print.done'")
    kinds = sorted(json.loads(data)["kind"] for (data,) in printed)
    # The setup ticket printed at first start, then the order, its reprint and the test.
    assert kinds == ["order", "reprint", "test", "text"]


def test_ready_means_started_watchdog_is_fed_and_sigterm_loses_nothing(
    tmp_path: Path, cloud: SimulatorProcess
) -> None:
    config = write_config(tmp_path, cloud)
    journal = tmp_path / "state" / "edged.sqlite3"
    daemon = DaemonProcess(config, env={"WATCHDOG_USEC": "400000"})
    with daemon:
        daemon.start()
        # READY promises the parts are up: the web page answers at once, no retry.
        health = httpx.get(f"http://127.0.0.1:{_web_port(config)}/health", timeout=5)
        assert health.status_code == 200
        daemon.wait_for("WATCHDOG=1", 10)

        order_id = int(sim_post(cloud, "/orders", {"type": "collection"})[0]["id"])
        eventually_blocking(
            lambda: journal_rows(journal, "SELECT 1 FROM orders WHERE id = ?", (order_id,)),
            within=15,
            what="the order",
        )
        sim_post(cloud, "/faults", {"refuseAll": "close"})
        queued = cli(config, "accept", str(order_id), "--wait", "1")
        assert "still queued" in queued.stdout
        assert daemon.stop() == 0
        pending = journal_rows(journal, "SELECT state FROM outbox")
        assert pending in ([("queued",)], [("sending",)]), "the decision survived the stop"

        sim_post(cloud, "/faults", {"refuseAll": None})
        daemon.start()
        eventually_blocking(
            lambda: journal_rows(journal, "SELECT state FROM outbox") == [("done",)],
            within=20,
            what="the accept delivered after the restart",
        )
        daemon.stop()
    accepted = [p for p in sim_get(cloud, "/actions") if p["orderId"] == order_id]
    assert [p["result"] for p in accepted] == ["ok"]
