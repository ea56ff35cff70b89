"""One way to reach an MQTT broker: the POS bridge (``[mqtt]``), the fleet link (``[fleet]``),
the relay (``relay.toml`` ``[mqtt]``) and the relay's subscriber on the box.

:class:`BrokerConfig` is the one config schema (``mqtt://`` or ``mqtts://``, user name and
password or a client certificate, client id, keepalive, MQTT version); each section
subclasses it for its own defaults and environment variable. :func:`make_client` turns it
into an :class:`aiomqtt.Client` (persistent session and last will on request).
Reconnecting is the caller's loop, as everywhere in edged.

Ground level: imports nothing of edged but :mod:`edged.configtools`.
"""

from __future__ import annotations

import random
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlsplit

from edged import backoff
from edged.configtools import opt

if TYPE_CHECKING:
    import aiomqtt

TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class BrokerConfig:
    """An MQTT broker connection (TLS verified against ``ca_file`` or the system CAs)."""

    # The rule a configured client id must follow (None: any); the fleet's ACL patterns
    # (``%c``) need a plain one.
    client_id_rule: ClassVar[re.Pattern[str] | None] = CLIENT_ID

    url: str = field(
        default="mqtt://localhost:1883",
        metadata=opt(doc="mqtt://host[:port] or mqtts://host[:port] (TLS, default port 8883)"),
    )
    failover_urls: list[str] = field(
        default_factory=list,
        metadata=opt(doc="Other nodes of the same broker cluster, tried in turn when one is lost"),
    )
    username: str = ""
    password: str = field(default="", metadata=opt(secret=True, doc="Broker password"))
    ca_file: str = field(default="", metadata=opt(doc="PEM CA bundle; empty: system CAs"))
    cert_file: str = field(default="", metadata=opt(doc="PEM client certificate (mutual TLS)"))
    key_file: str = field(default="", metadata=opt(doc="PEM client key (mutual TLS)"))
    tls_insecure: bool = field(
        default=False, metadata=opt(doc="Skip the broker host name check (testing only)")
    )
    client_id: str = field(default="", metadata=opt(doc="MQTT client id; empty: derived"))
    topic_prefix: str = field(default="edged", metadata=opt(doc="First topic level(s)"))
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive: int = field(default=60, metadata=opt(minimum=5, maximum=3600))
    reconnect_min: float = field(default=1.0, metadata=opt(minimum=0.01, maximum=600))
    reconnect_max: float = field(default=60.0, metadata=opt(minimum=0.01, maximum=3600))
    publish_timeout: float = field(default=10.0, metadata=opt(minimum=0.1, maximum=600))

    def check(self) -> None:
        scheme = _check_url("url", self.url)
        for n, other in enumerate(self.failover_urls):
            if _check_url(f"failover_urls[{n}]", other) != scheme:
                raise ValueError(f"failover_urls[{n}]: every node of one cluster uses {scheme}://")
        if not TOPIC_PREFIX.match(self.topic_prefix):
            raise ValueError("topic_prefix: letters, digits, '_', '-', '.' and '/' only")
        rule = self.client_id_rule
        if self.client_id and rule is not None and not rule.match(self.client_id):
            raise ValueError("client_id: 1 to 128 of A-Z a-z 0-9 _ . : -")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file: cert_file and key_file go together")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be below reconnect_min")

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def nodes(self) -> tuple[Node, ...]:
        """``url`` and then ``failover_urls``, in the order they are tried."""
        return tuple(_node(u, self.tls) for u in (self.url, *self.failover_urls))

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def where(self) -> str:
        """``host:port`` of the first node, for log lines (never the URL: it may one day
        carry credentials)."""
        return self.nodes[0].where


@dataclass(frozen=True)
class Node:
    """One broker address of a cluster."""

    host: str
    port: int

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _check_url(key: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{key}: expected mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    return parts.scheme


def _node(url: str, tls: bool) -> Node:
    parts = urlsplit(url)
    return Node(parts.hostname or "localhost", parts.port or (8883 if tls else 1883))


class Redial:
    """Which node a reconnect loop dials next, and how long it waits first.

    A lost connection moves on to the next node of ``nodes`` (round the list). The wait
    doubles from ``reconnect_min`` once per full round of failed nodes, up to
    ``reconnect_max``, and each wait is drawn between half and all of it, so boxes that lost
    the same node come back spread out rather than in the same second. One good connection
    (:meth:`connected`) starts over.
    """

    def __init__(self, config: BrokerConfig, rng: random.Random | None = None) -> None:
        self.nodes = config.nodes
        self._first = config.reconnect_min
        self._cap = config.reconnect_max
        self._rng = rng or random.Random()
        self._index = 0
        self._failures = 0

    @property
    def node(self) -> Node:
        """The node to dial now."""
        return self.nodes[self._index]

    def connected(self) -> None:
        """The current node took us: the next loss starts from the shortest wait."""
        self._failures = 0

    def lost(self) -> float:
        """The connection to :attr:`node` failed or dropped: move on, return the wait (s)."""
        rounds = self._failures // len(self.nodes)
        self._failures += 1
        self._index = (self._index + 1) % len(self.nodes)
        return backoff.delay(self._first, self._cap, rounds, self._rng)


def tls_context(config: BrokerConfig) -> ssl.SSLContext | None:
    """The TLS context for an ``mqtts://`` broker (certificate and host name verified)."""
    if not config.tls:
        return None
    context = ssl.create_default_context(cafile=config.ca_file or None)
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    if config.tls_insecure:
        context.check_hostname = False
    return context


def make_client(
    config: BrokerConfig,
    identifier: str,
    *,
    will: aiomqtt.Will | None = None,
    session_expiry: int = 0,
    fresh: bool = False,
    max_queued_incoming: int = 1000,
    node: Node | None = None,
) -> aiomqtt.Client:
    """A client for ``config``, to ``node`` (default: the first, ``url``).

    ``session_expiry`` > 0 asks for a persistent session (the broker keeps subscriptions and
    QoS 1 messages for us while we are away); with ``fresh`` an earlier session, and the
    subscriptions it held, is dropped first. MQTT 3.1.1 has no expiry (the broker keeps the
    session as long as it likes), and its fresh start is a clean session: the broker drops it
    when that connection ends and the next connection starts a new one, so a gap that the
    caller's reconcile covers."""
    # The MQTT libraries (~5 MiB) load with the first client, not with the config schema:
    # a box without MQTT or a fleet never imports them.
    import aiomqtt
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    v5 = config.protocol == "5"
    properties: Properties | None = None
    persistent = session_expiry > 0
    if v5 and persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry
    clean_session: bool | None
    if v5:
        clean_session = None
        clean_start: paho.CleanStartOption = fresh or not persistent
    else:
        clean_session = fresh or not persistent
        clean_start = paho.MQTT_CLEAN_START_FIRST_ONLY
    node = node or config.nodes[0]
    return aiomqtt.Client(
        node.host,
        node.port,
        identifier=identifier,
        username=config.username or None,
        password=config.password or None,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=clean_session,
        clean_start=clean_start,
        properties=properties,
        keepalive=config.keepalive,
        timeout=config.publish_timeout,
        tls_context=tls_context(config),
        max_queued_incoming_messages=max_queued_incoming,
    )


def suback_refused(granted: object) -> bool:
    """Did a SUBACK refuse any topic? ``granted`` is what ``aiomqtt.Client.subscribe`` returns:
    ints (3.1.1) or paho ReasonCodes (5); 0x80 and above is a refusal (a broker short of
    resources, or one whose ACL says no, answers the SUBSCRIBE with it rather than closing)."""
    codes = granted if isinstance(granted, (list, tuple)) else [granted]
    return any(_code(g) >= 0x80 for g in codes)


def _code(granted: object) -> int:
    value = getattr(granted, "value", granted)
    return value if isinstance(value, int) else 0x80
