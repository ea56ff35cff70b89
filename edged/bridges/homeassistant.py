"""Home Assistant MQTT discovery for one box, on the MQTT bridge's connection.

Modelled on zigbee2mqtt's discovery, following Home Assistant's MQTT documentation:

* one retained config per entity at ``<prefix>/<component>/edged_<box id>/<object>/config``
  (the ``node_id`` level lets the box find its own configs again);
* ``unique_id`` and ``default_entity_id`` (``<component>.edged_<box id>_<object>``, Home
  Assistant 2025.10 and later) with the deprecated ``object_id`` kept beside it for older
  versions; an ``origin`` block and a full ``device`` block;
* enum sensors list their ``options``; internals carry ``entity_category: diagnostic``;
* buttons (acknowledge, reprint the last order, a test print per printer) and an ``event``
  entity firing ``new_order``;
* a ``switch`` per product the owner exposed (``mqtt.homeassistant_products``): on = on
  sale. Its state is the catalog's (``<base>/state/product/<id>``, ``ON``/``OFF``), so it
  moves only once Sinqro took the change; turning it sends the same outbox command as the
  bridge's ``availability`` (``<base>/switch/product/<id>/set``);
* availability from the bridge's retained ``<base>/status`` (``online`` / ``offline``);
* a config the box no longer has (a removed printer) is cleared with an empty retained
  payload, found by subscribing to the box's own node;
* ``<prefix>/status`` = ``online`` (Home Assistant started) republishes every config.

The class builds and answers messages; the bridge owns the connection and calls
:meth:`HomeAssistant.publish_all` and :meth:`HomeAssistant.on_message`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edged import __version__
from edged.flow.desk import OrderDesk
from edged.journal import events as ev
from edged.journal.store import Journal
from edged.sinqro.catalog import CatalogProduct

log = logging.getLogger(__name__)

# Publish one message: topic, payload, retained. QoS 1 on the bridge's connection.
Publish = Callable[[str, bytes, bool], Awaitable[None]]

LINK_STATES = ("starting", "online", "polling", "offline", "unauthorized", "not_paired")
PRINTER_STATES = ("online", "offline", "paper_out", "cover_open", "unknown")
PRESS = "PRESS"
SOURCE = "homeassistant"
# The event entity's payload, built by Home Assistant from the bridge's order.new message
# (docs/bridge-protocol.md): ``event_type`` is required, the rest become attributes.
NEW_ORDER_TEMPLATE = (
    '{{ {"event_type": "new_order", "order_id": value_json.order_id,'
    ' "code": value_json.data.code, "type": value_json.data.type,'
    ' "customer": value_json.order.customer if value_json.order is defined else none,'
    ' "total": value_json.order.total if value_json.order is defined else none} | to_json }}'
)


def slug(text: str) -> str:
    """Letters, digits and single ``_``: valid in an entity id (lossy: for readable ids)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


_HA_PLAIN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)


def ha_id(text: str) -> str:
    """A box id or a printer's topic level as a Home Assistant id part, never the same for
    two different texts (``unique_id`` and discovery ``node_id`` must not collide).

    Lower-case letters and digits joined by single ``-`` (every usual box id, ``kitchen``,
    ``shop-1``) keep their readable form with ``_`` for ``-``: ``edged_shop_1`` as before.
    Any other text (``shop--1``, ``Bar``) is its slug, ``__`` and 12 hex digits of its
    SHA-256. A readable id never holds ``__``, a hashed one always does, so the two kinds
    never meet; two hashed ones meet only if 48 bits of their hashes agree.
    """
    if _HA_PLAIN.fullmatch(text):
        return text.replace("-", "_")
    tag = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug(text)}__{tag}"


@dataclass(frozen=True)
class DeviceInfo:
    """The box as a Home Assistant device."""

    box_id: str
    name: str
    serial_number: str = ""
    hw_version: str = ""
    configuration_url: str = ""
    model: str = "Order box"
    manufacturer: str = "edged"

    def block(self) -> dict[str, Any]:
        device: dict[str, Any] = {
            "identifiers": [f"edged_{self.box_id}"],
            "name": self.name,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "sw_version": __version__,
            "serial_number": self.serial_number or self.box_id,
        }
        if self.hw_version:
            device["hw_version"] = self.hw_version
        if self.configuration_url:
            device["configuration_url"] = self.configuration_url
        return device


class Actions(Protocol):
    """What the buttons do."""

    async def acknowledge(self) -> None: ...

    async def reprint_last(self) -> None: ...

    async def test_print(self, printer: str) -> None: ...


class Products(Protocol):
    """The catalog's side of the product switches."""

    async def products(self) -> Sequence[CatalogProduct]: ...

    async def set_available(self, product_id: int, available: bool) -> int:
        """Queue the change; returns the outbox command's id."""
        ...

    async def answered(self, command_id: int, product_id: int, available: bool) -> bool:
        """True while the command is on its way, or done with the catalog showing it."""
        ...


ON, OFF = "ON", "OFF"


@dataclass(frozen=True)
class Entity:
    component: str  # sensor | button | event | switch
    object_id: str
    config: dict[str, Any]


class HomeAssistant:
    """Discovery configs and button presses for one box."""

    def __init__(
        self,
        *,
        prefix: str,
        base: str,
        device: DeviceInfo,
        printers: Callable[[], Sequence[str]],
        state_topic: Callable[[str], str | None],
        actions: Actions,
        products: Products | None = None,
        exposed: Sequence[str] = (),
    ) -> None:
        """``state_topic(key)`` is the bridge's topic for a BoxState key (``link``,
        ``printer.NAME``...); the entities read their state there. ``exposed`` names the
        products (id or external id) that get a switch, read from ``products``."""
        self.prefix = prefix
        self.base = base
        self.device = device
        self.printers = printers
        self.state_topic = state_topic
        self.actions = actions
        self.node = f"edged_{ha_id(device.box_id)}"
        self.status_topic = f"{prefix}/status"
        self.cleared = 0
        self.presses = 0
        self._published: set[str] = set()
        self.products = products
        self.exposed = tuple(exposed)
        # The exposed products as last read from the catalog, and the states published.
        self._switches: list[CatalogProduct] = []
        self._switch_states: dict[int, str] = {}
        # product id -> (payload asked, outbox command id): a repeat of a change still
        # on its way is not queued twice (Home Assistant resends on a double tap).
        self._asked: dict[int, tuple[str, int]] = {}
        self.switched = 0

    # -- topics ------------------------------------------------------------------------------

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/status"

    def config_topic(self, entity: Entity) -> str:
        return f"{self.prefix}/{entity.component}/{self.node}/{entity.object_id}/config"

    def printer_topic(self, name: str) -> str:
        topic = self.state_topic(f"printer.{name}")
        assert topic is not None, "the bridge mirrors every printer"
        return topic

    def printer_level(self, name: str) -> str:
        """The printer's own topic level, as the bridge names it."""
        return self.printer_topic(name).rsplit("/", 1)[-1]

    def button_topic(self, action: str, printer: str | None = None) -> str:
        tail = f"/{self.printer_level(printer)}" if printer is not None else ""
        return f"{self.base}/button/{action}{tail}"

    def product_state_topic(self, product_id: int) -> str:
        return f"{self.base}/state/product/{product_id}"

    def product_command_topic(self, product_id: int) -> str:
        return f"{self.base}/switch/product/{product_id}/set"

    def subscriptions(self) -> list[str]:
        """Topics the bridge subscribes to for Home Assistant (QoS 1)."""
        out = [
            self.status_topic,
            f"{self.prefix}/+/{self.node}/+/config",
            f"{self.base}/button/#",
        ]
        if self.exposed:
            out.append(f"{self.base}/switch/#")
        return out

    def owns(self, topic: str) -> bool:
        return (
            topic == self.status_topic
            or topic.startswith(f"{self.base}/button/")
            or (bool(self.exposed) and topic.startswith(f"{self.base}/switch/"))
            or (topic.startswith(f"{self.prefix}/") and f"/{self.node}/" in topic)
        )

    # -- configs -----------------------------------------------------------------------------

    def _common(self, component: str, object_id: str, name: str) -> dict[str, Any]:
        entity_slug = f"{self.node}_{slug(object_id)}"
        return {
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
            "default_entity_id": f"{component}.{entity_slug}",
            "object_id": entity_slug,
            "availability_topic": self.availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "device": self.device.block(),
            "origin": {"name": "edged", "sw_version": __version__},
        }

    def _sensor(self, object_id: str, name: str, state_topic: str, **extra: Any) -> Entity:
        config = self._common("sensor", object_id, name)
        config["state_topic"] = state_topic
        config.update(extra)
        return Entity("sensor", object_id, config)

    def _button(self, object_id: str, name: str, command_topic: str, **extra: Any) -> Entity:
        config = self._common("button", object_id, name)
        config["command_topic"] = command_topic
        config["payload_press"] = PRESS
        config.update(extra)
        return Entity("button", object_id, config)

    def entities(self) -> list[Entity]:
        """Every entity the box has now (the printers as configured)."""

        def state(key: str) -> str:
            topic = self.state_topic(key)
            assert topic is not None, f"the bridge mirrors {key}"
            return topic

        out = [
            self._sensor(
                "waiting_orders",
                "Waiting orders",
                state("waiting_orders"),
                state_class="measurement",
                icon="mdi:receipt-text-clock",
            ),
            self._sensor(
                "link",
                "Sinqro link",
                state("link"),
                device_class="enum",
                options=list(LINK_STATES),
                icon="mdi:cloud-sync",
            ),
            self._sensor(
                "queued_commands",
                "Queued decisions",
                state("queued_commands"),
                state_class="measurement",
                entity_category="diagnostic",
                icon="mdi:tray-full",
            ),
            self._sensor(
                "led", "LED", state("panel.led"), entity_category="diagnostic", icon="mdi:led-on"
            ),
            self._sensor(
                "buzzer",
                "Buzzer",
                state("panel.buzzer"),
                entity_category="diagnostic",
                icon="mdi:bullhorn",
            ),
            self._button(
                "acknowledge",
                "Acknowledge",
                self.button_topic("acknowledge"),
                icon="mdi:bell-off",
            ),
            self._button(
                "reprint_last",
                "Reprint last order",
                self.button_topic("reprint_last"),
                icon="mdi:printer-pos-refresh",
            ),
        ]
        event = self._common("event", "new_order", "New order")
        event.update(
            state_topic=f"{self.base}/events/order.new",
            event_types=["new_order"],
            value_template=NEW_ORDER_TEMPLATE,
            icon="mdi:receipt-text-plus",
        )
        out.append(Entity("event", "new_order", event))
        for name in self.printers():
            topic = self.printer_topic(name)
            level = topic.rsplit("/", 1)[-1]
            printer_id = f"printer_{ha_id(level.lower())}"
            out.append(
                self._sensor(
                    printer_id,
                    f"Printer {name}",
                    topic,
                    device_class="enum",
                    options=list(PRINTER_STATES),
                    value_template="{{ value_json.state }}",
                    json_attributes_topic=topic,
                    icon="mdi:printer-pos",
                )
            )
            out.append(
                self._button(
                    f"test_print_{ha_id(level.lower())}",
                    f"Test print {name}",
                    self.button_topic("test_print", name),
                    entity_category="diagnostic",
                    icon="mdi:printer-check",
                )
            )
        for product in self._switches:
            config = self._common("switch", f"product_{product.id}", product.name or "Product")
            config.update(
                state_topic=self.product_state_topic(product.id),
                command_topic=self.product_command_topic(product.id),
                payload_on=ON,
                payload_off=OFF,
                state_on=ON,
                state_off=OFF,
                optimistic=False,
                icon="mdi:food",
            )
            out.append(Entity("switch", f"product_{product.id}", config))
        return out

    def messages(self) -> dict[str, bytes]:
        """Discovery topic -> config payload, for every current entity."""
        return {
            self.config_topic(e): json.dumps(e.config, separators=(",", ":")).encode()
            for e in self.entities()
        }

    async def _read_switches(self) -> None:
        if self.products is None or not self.exposed:
            return
        try:
            products = await self.products.products()
        except Exception as exc:  # no catalog yet: the switches wait for one
            log.warning("home assistant: catalog not readable: %s", exc)
            return
        wanted = set(self.exposed)
        self._switches = [
            p
            for p in products
            if str(p.id) in wanted or (p.external_id and p.external_id in wanted)
        ]
        found = {str(p.id) for p in self._switches} | {p.external_id for p in self._switches}
        for key in sorted(wanted - found):
            log.warning("home assistant: exposed product %r is not in the catalog", key[:80])

    async def catalog_changed(self, publish: Publish) -> None:
        """The catalog moved: new or renamed switches get their config, and every switch
        whose availability changed its state (nothing is published when nothing moved)."""
        if not self.exposed:
            return
        before = [(p.id, p.name) for p in self._switches]
        await self._read_switches()
        if [(p.id, p.name) for p in self._switches] != before:
            await self._publish_configs(publish)
        await self._publish_switch_states(publish)

    async def _publish_switch_states(self, publish: Publish, *, again: bool = False) -> None:
        for product in self._switches:
            value = ON if product.available else OFF
            if again or self._switch_states.get(product.id) != value:
                await publish(self.product_state_topic(product.id), value.encode(), True)
                self._switch_states[product.id] = value

    async def publish_all(self, publish: Publish) -> None:
        """Publish every config (retained) and clear those the box published before but no
        longer has (e.g. after a printer was removed while connected); then the product
        switches' states."""
        await self._read_switches()
        await self._publish_configs(publish)
        await self._publish_switch_states(publish, again=True)

    async def _publish_configs(self, publish: Publish) -> None:
        current = self.messages()
        for topic in sorted(self._published - current.keys()):
            await self._clear(publish, topic)
        for topic, payload in current.items():
            await publish(topic, payload, True)
        self._published = set(current)
        log.info("home assistant: %d discovery configs published", len(current))

    async def _clear(self, publish: Publish, topic: str) -> None:
        log.info("home assistant: removing %s", topic)
        await publish(topic, b"", True)
        self.cleared += 1

    # -- messages in -------------------------------------------------------------------------

    async def on_message(
        self, topic: str, payload: bytes, *, retain: bool, publish: Publish
    ) -> bool:
        """Handle one message on a topic this class :meth:`owns`. Returns True when Home
        Assistant came online and the bridge should republish its states too."""
        if topic == self.status_topic:
            if payload.strip().lower() == b"online":
                log.info("home assistant is online; publishing discovery again")
                await self.publish_all(publish)
                return True
            return False
        if topic.startswith(f"{self.base}/button/"):
            if retain:
                # A retained press would fire again on every reconnect.
                log.warning("home assistant: ignoring retained button press on %s", topic)
                return False
            await self._press(topic[len(self.base) + len("/button/") :])
            return False
        if topic.startswith(f"{self.base}/switch/"):
            if retain:
                log.warning("home assistant: ignoring retained switch command on %s", topic)
                return False
            await self._switch(topic, payload)
            return False
        if payload and topic not in self.messages():
            # A retained config of ours for an entity that no longer exists.
            await self._clear(publish, topic)
        return False

    async def _press(self, path: str) -> None:
        action, _, printer_level = path.partition("/")
        try:
            if action == "acknowledge" and not printer_level:
                await self.actions.acknowledge()
            elif action == "reprint_last" and not printer_level:
                await self.actions.reprint_last()
            elif action == "test_print" and printer_level:
                names = {self.printer_level(p): p for p in self.printers()}
                if printer_level not in names:
                    log.warning("home assistant: test print for unknown printer %r", path)
                    return
                await self.actions.test_print(names[printer_level])
            else:
                log.warning("home assistant: unknown button %r", path[:80])
                return
        except Exception as exc:  # one failed press must not end the bridge
            log.error("home assistant: %s failed: %s", action, exc)
            return
        self.presses += 1
        log.info("home assistant: %s pressed", path)

    async def _switch(self, topic: str, payload: bytes) -> None:
        product = next(
            (p for p in self._switches if self.product_command_topic(p.id) == topic), None
        )
        value = payload.strip().upper()
        if product is None or self.products is None:
            log.warning("home assistant: switch for a product not exposed: %s", topic[:200])
            return
        if value not in (ON.encode(), OFF.encode()):
            log.warning("home assistant: switch payload %r is neither ON nor OFF", payload[:20])
            return
        asked = self._asked.get(product.id)
        if (
            asked is not None
            and asked[0] == value.decode()
            and await self.products.answered(asked[1], product.id, value == ON.encode())
        ):
            # Home Assistant resends a tap: the first is still on its way, or Sinqro took it
            # and the catalog already says so. Either way a second PATCH would change nothing.
            log.info("home assistant: product %d %s already asked", product.id, value.decode())
            return
        try:
            command_id = await self.products.set_available(product.id, value == ON.encode())
        except Exception as exc:  # a refusal (not paired, no catalog) must not end the bridge
            log.error("home assistant: product %d not changed: %s", product.id, exc)
            return
        self._asked[product.id] = (value.decode(), command_id)
        self.switched += 1
        log.info("home assistant: product %d switched %s", product.id, value.decode())


class CatalogProducts:
    """The switches' catalog: the desk's catalog keeper (set once the daemon built it),
    and its outbox command, exactly as the bridges' ``availability`` queues it."""

    def __init__(self, desk: OrderDesk) -> None:
        self.desk = desk

    async def products(self) -> Sequence[CatalogProduct]:
        keeper = self.desk.catalog
        return () if keeper is None else (await keeper.catalog()).products

    async def set_available(self, product_id: int, available: bool) -> int:
        keeper = self.desk.catalog
        if keeper is None:
            raise RuntimeError("this box keeps no catalog (not running)")
        command, _ = await keeper.set_available(
            str(product_id), available, kind="product", source=SOURCE
        )
        return command.id

    async def answered(self, command_id: int, product_id: int, available: bool) -> bool:
        """True while ``command_id`` is on its way, or once it is done and the catalog shows
        ``product_id`` as ``available`` asked."""
        command = await self.desk.journal.get_command(command_id)
        if command is None:
            return False
        if command.state in ("queued", "sending"):
            return True
        if command.state != "done":
            return False
        current = next((p for p in await self.products() if p.id == product_id), None)
        return current is not None and current.available == available


class JournalActions:
    """The buttons, through the same paths as the web page and the CLI: the desk silences,
    print requests go to the journal for the spooler (in this process or not)."""

    def __init__(self, journal: Journal, desk: OrderDesk) -> None:
        self.journal = journal
        self.desk = desk

    async def acknowledge(self) -> None:
        ids = await self.desk.acknowledge(None, source=SOURCE)
        log.info("home assistant: acknowledged orders %s", ids)

    async def reprint_last(self) -> None:
        latest = await self.journal.list_orders(limit=1)
        if not latest:
            log.warning("home assistant: no order to reprint yet")
            return
        await self.journal.append_event(
            ev.PRINT_REQUESTED,
            latest[0].id,
            {"kind": "reprint", "order_id": latest[0].id, "source": SOURCE},
        )

    async def test_print(self, printer: str) -> None:
        await self.journal.append_event(
            ev.PRINT_REQUESTED, None, {"kind": "test", "printer": printer, "source": SOURCE}
        )
