"""``edged relay``: Sinqro's webhook transport for a fleet of boxes behind NAT.

Sinqro sends one integration's notifications (doc 003, ``new_order`` and
``order_status_changed``) to one URL. A vendor runs this relay next to its MQTT cluster
and gives Sinqro ``https://relay.example.com/sinqro/<secret>``. For each webhook it:

1. refuses it (403) unless the URL carries a known secret: one of ``[[relay.endpoints]]``
   (each serves only its own selling points: a notification for another is refused 403)
   or ``relay.secret`` (every selling point; weaker, a leak opens them all);
2. reads it with the same parser as the box (400 when it is not a notification, 422 when
   it names no selling point);
3. publishes the body unchanged, QoS 1, to ``<prefix>/sellingPoints/<id>/notifications``;
4. answers 200 only once the broker acknowledged (PUBACK) that publish; 503 otherwise
   (broker down, or no acknowledgement within ``mqtt.publish_timeout``), so Sinqro tries
   again. The box de-duplicates, so a repeat is harmless.

Boxes subscribe to their selling point's topic with a persistent session, so what arrives
while a box is offline waits at the broker (and the box reconciles over REST anyway).
The secret is never logged: aiohttp's access log (which would print the path) is off.

The listener is bounded like the box's page (:mod:`edged.httplimits`): at most
``relay.max_connections`` open connections, each with ``header_timeout`` seconds to send its
request head and ``body_timeout`` for its body (408 after), idle keep-alive connections
closed after ``keepalive_timeout``, bodies over ``max_body_bytes`` refused (413). Slow or
half-open connections are pushed out for new ones, so a slowloris flood cannot take the
descriptors real webhooks need; what was pushed out or refused is logged once a minute
with a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import resource
import signal
import socket
import ssl
from typing import Any

import aiomqtt
from aiohttp import web

from edged import __version__, mqttstop
from edged.decoding import PayloadError
from edged.httplimits import GuardedSite, quiet_accept_storms
from edged.mqttclient import Redial, make_client
from edged.relay.settings import RelayEndpoint, RelayFile, notifications_topic
from edged.sinqro.models import parse_notification

log = logging.getLogger(__name__)

# Descriptors the relay needs beside its HTTP connections (listener, broker, logs, TLS).
SPARE_DESCRIPTORS = 64


class Relay:
    """The webhook endpoint and its broker connection. ``await Relay(config).run()``."""

    def __init__(self, config: RelayFile) -> None:
        self.config = config
        self.client_id = config.mqtt.client_id or f"edged-relay-{socket.gethostname()}"[:128]
        self.connected = asyncio.Event()
        self.listening = asyncio.Event()
        self.port = config.relay.port
        self.received = 0
        self.published = 0
        self.refused = 0
        self.unavailable = 0
        self.slow = 0
        self.site: GuardedSite | None = None
        self._client: aiomqtt.Client | None = None
        # relay.secret is the weaker catch-all URL (every selling point): no list.
        self._endpoints = list(config.relay.endpoints)
        if config.relay.secret:
            self._endpoints.append(RelayEndpoint(config.relay.secret, [], "relay.secret"))

    # -- HTTP ----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.relay.max_body_bytes)
        path = self.config.relay.path
        app.router.add_post(f"{path}/{{secret}}", self.webhook)
        app.router.add_post(path, self.no_secret)
        app.router.add_get("/health", self.health)
        return app

    async def no_secret(self, request: web.Request) -> web.Response:
        self.refused += 1
        return _answer(403, "FORBIDDEN", "the URL lacks the shared secret")

    def _endpoint(self, given: str) -> RelayEndpoint | None:
        """The endpoint whose secret this is; a catch-all one for ``relay.secret``."""
        found: RelayEndpoint | None = None
        for endpoint in self._endpoints:
            # Every secret compared, in constant time each: no early exit tells which.
            if hmac.compare_digest(given.encode(), endpoint.secret.encode()):
                found = endpoint
        return found

    async def webhook(self, request: web.Request) -> web.Response:
        endpoint = self._endpoint(request.match_info["secret"])
        if endpoint is None:
            self.refused += 1
            log.warning("relay: refused a webhook from %s: wrong secret", request.remote)
            return _answer(403, "FORBIDDEN", "wrong secret")
        self.received += 1
        try:
            async with asyncio.timeout(self.config.relay.body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, "TOO_LARGE", "body too large")
        except TimeoutError:
            self.slow += 1
            log.warning("relay: a webhook from %s sent its body too slowly", request.remote)
            response = _answer(408, "TOO_SLOW", "the body did not arrive in time")
            response.force_close()
            return response
        try:
            note = parse_notification(body, max_bytes=self.config.relay.max_body_bytes)
        except PayloadError as exc:
            log.warning("relay: not a Sinqro notification: %s", str(exc)[:200])
            return _answer(400, "BAD_NOTIFICATION", str(exc)[:200])
        selling_point = note.selling_point_id or note.order.selling_point_id
        if not selling_point:
            log.warning("relay: %s for order %s names no selling point", note.event, note.order.id)
            return _answer(422, "NO_SELLING_POINT", "the notification names no selling point")
        if endpoint.selling_points and selling_point not in endpoint.selling_points:
            self.refused += 1
            log.warning(
                "relay: refused order %s for selling point %s: not one of endpoint %s's",
                note.order.id,
                selling_point,
                endpoint.name or "(unnamed)",
            )
            return _answer(403, "FORBIDDEN", "this URL does not serve that selling point")
        topic = notifications_topic(self.config.mqtt.topic_prefix, selling_point)
        client = self._client
        if client is None:
            self.unavailable += 1
            log.warning("relay: broker not connected; answered 503 for order %s", note.order.id)
            return _answer(503, "BROKER_UNAVAILABLE", "not connected to the broker", retry=True)
        try:
            # aiomqtt returns once the broker's PUBACK arrived, or raises on its timeout.
            await client.publish(topic, body, qos=1, timeout=self.config.mqtt.publish_timeout)
        except aiomqtt.MqttError as exc:
            self.unavailable += 1
            log.warning("relay: publish for order %s not acknowledged: %s", note.order.id, exc)
            return _answer(503, "BROKER_UNAVAILABLE", "the broker did not acknowledge", retry=True)
        self.published += 1
        log.info(
            "relay: %s for order %s -> selling point %s", note.event, note.order.id, selling_point
        )
        return web.json_response({"ok": True, "topic": topic})

    async def health(self, request: web.Request) -> web.Response:
        connected = self._client is not None
        body = {
            "ok": connected,
            "version": __version__,
            "broker": "connected" if connected else "disconnected",
            "received": self.received,
            "published": self.published,
            "refused": self.refused,
            "unavailable": self.unavailable,
            "slow": self.slow,
        }
        guard = self.site.guard if self.site is not None else None
        if guard is not None:
            body["connections"] = {
                "open": guard.open,
                "pushed_out": guard.evicted,
                "refused": guard.refused,
                "timed_out": guard.timed_out,
            }
        return web.json_response(body, status=200 if connected else 503)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve webhooks and keep the broker connection until cancelled."""
        cfg = self.config.relay
        _check_descriptors(cfg.max_connections)
        quiet_accept_storms()
        runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=cfg.keepalive_timeout)
        await runner.setup()
        context: ssl.SSLContext | None = None
        if cfg.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        site = GuardedSite(
            runner,
            cfg.host,
            cfg.port,
            max_connections=cfg.max_connections,
            header_timeout=cfg.header_timeout,
            name="relay",
            ssl_context=context,
            # Under a flood of connections (the kernel caps it at net.core.somaxconn).
            listen_queue=4096,
        )
        self.site = site
        try:
            await site.start()
            self.port = site.port
            log.info("relay: listening on %s:%d%s/<secret>", cfg.host, self.port, cfg.path)
            self.listening.set()
            await self._broker_loop()
        finally:
            await runner.cleanup()

    async def _broker_loop(self) -> None:
        mqtt = self.config.mqtt
        redial = Redial(mqtt)
        while True:
            node = redial.node
            try:
                client = make_client(mqtt, self.client_id, node=node)
                async with mqttstop.connection(client):
                    log.info("relay: connected to %s as %s", node.where, self.client_id)
                    redial.connected()
                    self._client = client
                    self.connected.set()
                    # Nothing to read: wait here until the connection drops.
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                log.warning("relay: broker %s: %s", node.where, exc)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(redial.lost())


def _check_descriptors(max_connections: int) -> None:
    """Warn when the connection cap does not fit in the process's descriptors: past them,
    accept() fails and real webhooks wait (systemd/edged-relay.service sets LimitNOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections + SPARE_DESCRIPTORS > soft:
        log.warning(
            "relay: max_connections = %d does not fit in %d file descriptors; "
            "lower it or raise LimitNOFILE",
            max_connections,
            soft,
        )


def _answer(status: int, code: str, message: str, *, retry: bool = False) -> web.Response:
    headers = {"Retry-After": "5"} if retry else None
    body: dict[str, Any] = {"ok": False, "code": code, "message": message}
    return web.json_response(body, status=status, headers=headers)


async def serve(config: RelayFile) -> int:
    """Run the relay until SIGTERM/SIGINT; returns the exit code."""
    relay = Relay(config)
    task = asyncio.create_task(relay.run(), name="relay")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("relay: stopped")
    return 0
