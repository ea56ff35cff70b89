"""The relay's own config file (``/etc/edged/relay.toml``): ``[relay]``, ``[mqtt]``,
``[logging]``. Strict like the box's: unknown keys and bad values stop it at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edged.config import read_toml
from edged.configtools import build, opt
from edged.mqttclient import BrokerConfig

MIN_SECRET = 16
NOTIFICATIONS_TOPIC = "{prefix}/sellingPoints/{id}/notifications"


def notifications_topic(prefix: str, selling_point_id: int) -> str:
    """Where the relay publishes a selling point's notifications, and its box listens."""
    return NOTIFICATIONS_TOPIC.format(prefix=prefix, id=selling_point_id)


def _check_secret(secret: str, key: str) -> None:
    if len(secret) < MIN_SECRET:
        raise ValueError(f"{key}: at least {MIN_SECRET} characters")
    if not all(c.isalnum() or c in "-_." for c in secret):
        raise ValueError(f"{key}: letters, digits, '-', '_' and '.' only (it goes in a URL)")


@dataclass(frozen=True)
class RelayEndpoint:
    """One webhook URL, ``<path>/<secret>``, that serves only the selling points listed:
    a vendor with several Sinqro integrations gives each its own, so a leaked URL opens
    only its own restaurants."""

    secret: str = field(
        metadata=opt(secret=True, doc="The last part of this webhook URL: <path>/<secret>")
    )
    selling_points: list[int] = field(
        metadata=opt(doc="Selling point ids this URL may publish for (others: 403)")
    )
    name: str = field(default="", metadata=opt(doc="For the log: which integration this is"))

    def check(self) -> None:
        _check_secret(self.secret, "secret")
        if not self.selling_points:
            raise ValueError("selling_points: name at least one selling point id")


@dataclass(frozen=True)
class RelayConfig:
    """The HTTP side: where Sinqro's webhooks arrive."""

    secret: str = field(
        default="",
        metadata=opt(
            env="EDGED_RELAY_SECRET",
            secret=True,
            doc="Shared secret of the URL <path>/<secret> that serves every selling point "
            "(weaker than [[relay.endpoints]])",
        ),
    )
    endpoints: list[RelayEndpoint] = field(
        default_factory=list,
        metadata=opt(doc="Webhook URLs, each for its own selling points"),
    )
    host: str = field(default="0.0.0.0", metadata=opt(doc="Address to listen on"))
    port: int = field(default=8090, metadata=opt(minimum=0, maximum=65535))
    path: str = field(default="/sinqro", metadata=opt(doc="URL path before the secret"))
    max_body_bytes: int = field(default=1_048_576, metadata=opt(minimum=1024))
    # Bounds against slow or idle clients (slowloris): see edged.httplimits.
    max_connections: int = field(
        default=512,
        metadata=opt(
            minimum=4,
            maximum=60000,
            doc="Open connections at most (keep it well under LimitNOFILE); idle ones make way",
        ),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=opt(minimum=0.5, maximum=300, doc="Seconds a connection has to send its head"),
    )
    body_timeout: float = field(
        default=10.0,
        metadata=opt(minimum=0.5, maximum=300, doc="Seconds a webhook has to send its body"),
    )
    keepalive_timeout: float = field(
        default=15.0,
        metadata=opt(minimum=0.5, maximum=600, doc="Seconds an idle connection stays open"),
    )
    tls_cert: str = field(default="", metadata=opt(doc="PEM certificate; with tls_key, HTTPS"))
    tls_key: str = field(default="", metadata=opt(doc="PEM private key for tls_cert"))

    def check(self) -> None:
        if not self.secret and not self.endpoints:
            raise ValueError("secret: set it (or EDGED_RELAY_SECRET), or give [[relay.endpoints]]")
        if self.secret:
            _check_secret(self.secret, "secret")
        secrets = [self.secret] if self.secret else []
        secrets += [e.secret for e in self.endpoints]
        if len(set(secrets)) != len(secrets):
            raise ValueError("endpoints: each URL needs its own secret")
        if not self.path.startswith("/") or self.path.endswith("/"):
            raise ValueError("path: starts with '/' and does not end with one")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_key: tls_cert and tls_key go together")


@dataclass(frozen=True)
class RelayBrokerConfig(BrokerConfig):
    """The MQTT side: the cluster the boxes listen to."""

    password: str = field(
        default="",
        metadata=opt(env="EDGED_RELAY_MQTT_PASSWORD", secret=True, doc="Broker password"),
    )
    client_id: str = field(
        default="", metadata=opt(doc="MQTT client id; empty: edged-relay-<host name>")
    )


@dataclass(frozen=True)
class RelayLogging:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class RelayFile:
    """The whole relay config."""

    relay: RelayConfig
    mqtt: RelayBrokerConfig = field(default_factory=RelayBrokerConfig)
    logging: RelayLogging = field(default_factory=RelayLogging)


def load_relay_config(path: str | os.PathLike[str]) -> RelayFile:
    """Load and check the relay's config; raises ConfigError naming file and key."""
    return build(RelayFile, read_toml(Path(path)), file=str(path))
