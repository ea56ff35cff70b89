"""The fleet connection over TLS: the broker's certificate is verified, and the box signs in
with a client certificate or a user name and password (a real Mosquitto, real openssl)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

from bridge_helpers import make_desk
from broker import MosquittoBroker
from pki import make_pki
from waiting import eventually

from edged.fleet.identity import BoxIdentity
from edged.fleet.link import FleetLink
from edged.fleet.settings import FleetConfig
from edged.fleet.telemetry import Telemetry
from edged.journal.store import Journal

BOX = "10000000c1e27001"


def password_file(path: Path, user: str, password: str) -> Path:
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    path.chmod(0o600)
    return path


def tls_broker(tmp_path: Path, pki: Path, *extra: str) -> MosquittoBroker:
    return MosquittoBroker(
        tmp_path / "broker",
        persistence=False,
        extra=[
            f"cafile {pki / 'ca.pem'}",
            f"certfile {pki / 'server.pem'}",
            f"keyfile {pki / 'server.key'}",
            *extra,
        ],
    )


async def connects(tmp_path: Path, journal: Journal, config: FleetConfig) -> FleetLink:
    """Run a fleet link until it published its first info; return it (stopped)."""
    _, state = make_desk(journal)
    link = FleetLink(
        config,
        box_id=BOX,
        telemetry=Telemetry(
            identity=BoxIdentity(BOX, "serial", BOX, "test"),
            box_name=lambda: "TLS box",
            state=state.snapshot,
            selling_point=lambda: (0, "", ""),
            orders_since=journal.orders_seen_since,
            incidents=list,
            storage_path=tmp_path,
        ),
        wait_changed=state.wait_changed,
    )
    task = asyncio.create_task(link.run())
    try:
        await eventually(
            lambda: link.infos >= 1 or link.reconnects >= 2, what="connected or refused", within=30
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return link


def config(broker: MosquittoBroker, pki: Path, **kw: object) -> FleetConfig:
    return FleetConfig(
        enabled=True,
        url=f"mqtts://localhost:{broker.port}",
        ca_file=str(pki / "ca.pem"),
        reconnect_min=0.05,
        reconnect_max=0.2,
        publish_timeout=2.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    broker = tls_broker(tmp_path, pki, "require_certificate true")
    broker.start()
    journal = await Journal.open(tmp_path / "j.sqlite3")
    try:
        with_cert = await connects(
            tmp_path,
            journal,
            config(
                broker, pki, cert_file=str(pki / "client.pem"), key_file=str(pki / "client.key")
            ),
        )
        assert with_cert.infos >= 1
        without = await connects(tmp_path, journal, config(broker, pki))
        assert without.infos == 0 and without.reconnects >= 2
    finally:
        await journal.close()
        broker.kill()


async def test_user_name_and_password_and_a_verified_server(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    passwords = password_file(tmp_path / "passwords", f"box-{BOX}", "right horse")
    broker = tls_broker(tmp_path, pki, f"password_file {passwords}")
    broker.start()
    journal = await Journal.open(tmp_path / "j.sqlite3")
    try:
        good = await connects(
            tmp_path, journal, config(broker, pki, username=f"box-{BOX}", password="right horse")
        )
        assert good.infos >= 1
        bad = await connects(
            tmp_path, journal, config(broker, pki, username=f"box-{BOX}", password="wrong")
        )
        assert bad.infos == 0
        # A CA that did not sign the broker's certificate: no connection at all.
        other = make_pki(tmp_path / "other")
        stranger = await connects(
            tmp_path,
            journal,
            config(broker, other, username=f"box-{BOX}", password="right horse"),
        )
        assert stranger.infos == 0
    finally:
        await journal.close()
        broker.kill()
