"""The panel with real gpiozero devices on mock pins, a real journal and a fake clock.

Time only moves when a test advances the FakeClock, so rhythms, holds, debounce and
escalation are exact. Waits for the journal thread poll a condition, bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from waiting import eventually

from edged.clock import FakeClock
from edged.flow.desk import OrderDesk
from edged.flow.settings import OrdersConfig
from edged.i18n import Locale
from edged.journal.store import Command, Journal
from edged.panel.buttons import proof_hold
from edged.panel.controller import Panel
from edged.panel.gpio import PanelError, make_pin_factory
from edged.panel.patterns import ACTIVE_PATTERNS, PASSIVE_PATTERNS
from edged.panel.settings import PanelConfig
from edged.sinqro.models import Order, parse_order
from edged.state import BoxState

ACCEPT, CANCEL, BUZZER, LED = 5, 6, 18, 23


def order(order_id: int, status: str = "waiting_sp_validation") -> Order:
    return parse_order({"id": order_id, "type": "delivery", "status": {"code": status}})


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    old = Device.pin_factory
    mock = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = mock
    try:
        yield mock
    finally:
        mock.reset()
        Device.pin_factory = old


class Rig:
    """A running panel and the handles a test needs."""

    def __init__(
        self,
        factory: MockFactory,
        journal: Journal,
        panel_config: PanelConfig,
        orders: OrdersConfig,
    ) -> None:
        self.factory = factory
        self.journal = journal
        self.clock = FakeClock()
        self.state = BoxState()
        self.state.set("link", "online")
        self.desk = OrderDesk(journal, self.state, orders)
        self.setup_calls = 0

        async def setup() -> None:
            self.setup_calls += 1

        self.panel = Panel(
            panel_config,
            orders,
            self.desk,
            journal,
            self.state,
            clock=self.clock,
            on_setup_request=setup,
        )
        self.config = panel_config
        self.buzzer_log: list[str] = []
        self.state.watch(
            lambda key, value: self.buzzer_log.append(value) if key == "panel.buzzer" else None
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.panel.run(), name="test-panel")
        await self.clock.settle()
        await eventually(lambda: self.panel.snapshot()["running"], what="panel running")
        await self.sync()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.task

    def pin(self, number: int) -> MockPin:
        pin: MockPin = self.factory.pin(number)
        return pin

    @property
    def buzzing(self) -> bool:
        return bool(self.pin(BUZZER).state)

    @property
    def lit(self) -> bool:
        return bool(self.pin(LED).state)

    async def sync(self) -> None:
        """Let the panel catch up with the journal (reconcile done) without moving time."""
        await self.journal.ping()
        await self.clock.settle()
        await self.journal.ping()
        await self.clock.settle()

    async def add(self, order_id: int) -> None:
        await self.desk.ingest(order(order_id), "test")
        await self.clock.settle()

    async def press(self, pin: int, hold: float) -> None:
        """Press (active low, pull-up) for ``hold`` seconds and let the release settle."""
        self.pin(pin).drive_low()
        await self.clock.advance(hold)
        self.pin(pin).drive_high()
        await self.clock.advance(self.config.bounce_time)

    async def press_both(self, hold: float) -> None:
        self.pin(ACCEPT).drive_low()
        self.pin(CANCEL).drive_low()
        await self.clock.advance(hold)
        self.pin(CANCEL).drive_high()
        self.pin(ACCEPT).drive_high()
        await self.clock.advance(self.config.bounce_time)

    async def result(self) -> str:
        last = await eventually(lambda: self.panel.last_press, what="press result")
        self.panel.last_press = None
        return str(last["result"])

    async def commands(self) -> list[Command]:
        return list(reversed(await self.journal.recent_commands()))

    async def finish(self, command: Command, status: str = "accepted", ok: bool = True) -> None:
        if ok:
            await self.journal.finish_command(
                command, ok=True, order=order(command.order_id, status)
            )
        else:
            await self.journal.finish_command(
                command, ok=False, error_code="ORDER_NOT_FOUND", error="no"
            )


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(factory: MockFactory, journal: Journal) -> AsyncIterator[RigFactory]:
    rigs: list[Rig] = []

    async def make(panel: dict[str, Any] | None = None, **orders: Any) -> Rig:
        cfg = PanelConfig(**{"pin_factory": "mock", **(panel or {})})
        rig = Rig(factory, journal, cfg, OrdersConfig(**orders))
        rigs.append(rig)
        await rig.start()
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            await rig.stop()


# -- the alert -------------------------------------------------------------------------------


async def test_new_order_rings_at_once_then_waits_then_escalates(make_rig: RigFactory) -> None:
    rig = await make_rig({"escalate_after": 30.0, "repeat_every": 5.0})
    assert not rig.buzzing
    assert rig.state.get("panel.buzzer") == "quiet"
    await rig.add(1)
    assert rig.buzzing, "the first beep starts without moving time"
    assert rig.state.get("panel.buzzer") == "new_order"
    await rig.clock.advance(ACTIVE_PATTERNS["new_order"].duration + 0.01)
    assert not rig.buzzing
    await rig.clock.advance(5.0)
    assert rig.state.get("panel.buzzer") == "waiting"
    assert rig.buzzing
    await rig.clock.advance(30.0)
    assert rig.state.get("panel.buzzer") == "escalated"
    # Escalated repeats faster than waiting: count rings over 10 s.
    pin = rig.pin(BUZZER)
    pin.clear_states()
    await rig.clock.advance(10.0)
    rings = sum(1 for s in pin.states[1:] if s.state)
    per_cycle = sum(1 for hz, _ in ACTIVE_PATTERNS["escalated"].steps if hz)
    assert rings >= 3 * per_cycle  # waiting would ring twice per 5.6 s
    assert rig.panel.snapshot()["ringing"] == [1]


async def test_acknowledged_order_is_quiet_and_a_new_order_rings_again(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    await rig.add(1)
    await rig.clock.advance(0.1)
    await rig.press(CANCEL, 0.2)  # short CANCEL: silence only
    assert await rig.result() == "silenced"
    assert not any(c.kind == "cancel" for c in await rig.commands())
    stored = await rig.journal.get_order(1)
    assert stored is not None and stored.acknowledged and stored.is_waiting
    await rig.clock.advance(1.0)  # the confirm chirp
    pin = rig.pin(BUZZER)
    pin.clear_states()
    await rig.clock.advance(60.0)
    assert not any(s.state for s in pin.states), "an acknowledged order must not ring"
    assert rig.state.get("panel.led") == "orders_waiting", "the LED still shows it waits"
    await rig.add(2)
    assert rig.buzzing and rig.state.get("panel.buzzer") == "new_order"
    assert rig.panel.snapshot()["ringing"] == [2]


async def test_alert_stops_when_the_order_is_accepted_elsewhere(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add(1)
    await rig.clock.advance(7.0)
    assert rig.state.get("panel.buzzer") in ("waiting", "new_order")
    # The web page accepts; the sender closes the command with Sinqro's order.
    command = await rig.desk.accept(1, None, source="web")
    await rig.clock.settle()
    assert not rig.buzzing
    await rig.finish(command)
    await rig.sync()
    pin = rig.pin(BUZZER)
    pin.clear_states()
    await rig.clock.advance(30.0)
    assert not any(s.state for s in pin.states)
    assert rig.state.get("panel.buzzer") == "quiet"


async def test_alert_stops_on_a_status_change_from_sinqro(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add(1)
    await rig.clock.advance(0.1)
    assert rig.buzzing
    # Accepted on another device: the notification brings the new status.
    await rig.desk.ingest(order(1, "accepted"), "websocket")
    await rig.clock.settle()
    assert not rig.buzzing
    await rig.clock.advance(30.0)
    assert rig.state.get("panel.buzzer") == "quiet"


async def test_orders_waiting_at_start_ring(factory: MockFactory, journal: Journal) -> None:
    await journal.upsert_order(order(7))
    rig = Rig(factory, journal, PanelConfig(pin_factory="mock"), OrdersConfig())
    await rig.start()
    try:
        await eventually(lambda: rig.panel.snapshot()["ringing"] == [7], what="ringing")
        await rig.clock.settle()
        assert rig.buzzing
    finally:
        await rig.stop()


# -- buttons ----------------------------------------------------------------------------------


async def test_short_accept_accepts_oldest_with_default_delay(make_rig: RigFactory) -> None:
    rig = await make_rig(default_delay=0, long_press_delay=20)
    await rig.add(1)
    await rig.add(2)
    await rig.press(ACCEPT, 0.3)
    command = await eventually(rig.commands, what="a command")
    [cmd] = command
    assert (cmd.kind, cmd.order_id, cmd.params, cmd.source) == (
        "accept",
        1,
        {"delay": None},
        "panel",
    )
    await rig.finish(cmd)
    assert await rig.result() == "accepted"
    assert "confirm" in rig.buzzer_log
    await rig.sync()
    assert rig.panel.snapshot()["ringing"] == [2]


async def test_long_accept_uses_long_press_delay(make_rig: RigFactory) -> None:
    rig = await make_rig({"accept_hold": 1.5}, default_delay=10, long_press_delay=20)
    await rig.add(1)
    rig.pin(ACCEPT).drive_low()
    await rig.clock.advance(1.6)
    assert "tick" in rig.buzzer_log, "a tick says: long enough, release now"
    rig.pin(ACCEPT).drive_high()
    await rig.clock.advance(0.05)
    [cmd] = await eventually(rig.commands)
    assert cmd.params == {"delay": 20}
    await rig.finish(cmd)
    assert await rig.result() == "accepted"


async def test_short_accept_with_default_delay(make_rig: RigFactory) -> None:
    rig = await make_rig(default_delay=10)
    await rig.add(1)
    await rig.press(ACCEPT, 0.5)
    [cmd] = await eventually(rig.commands)
    assert cmd.params == {"delay": 10}


async def test_short_cancel_never_cancels(make_rig: RigFactory) -> None:
    rig = await make_rig({"cancel_hold": 2.0})
    await rig.add(1)
    for hold in (0.1, 0.5, 1.0, 1.5, 1.99):
        await rig.press(CANCEL, hold)
        await rig.result()
    assert [c for c in await rig.commands() if c.kind == "cancel"] == []
    stored = await rig.journal.get_order(1)
    assert stored is not None and stored.is_waiting


async def test_long_cancel_cancels_oldest_with_the_comment(make_rig: RigFactory) -> None:
    rig = await make_rig(cancel_comment="Kitchen closed")
    await rig.add(1)
    await rig.add(2)
    await rig.press(CANCEL, 2.0)
    [cmd] = await eventually(rig.commands)
    assert (cmd.kind, cmd.order_id, cmd.params) == ("cancel", 1, {"comment": "Kitchen closed"})
    await rig.finish(cmd, status="cancelled_by_sp")
    assert await rig.result() == "cancelled"


def test_cancel_hold_below_two_seconds_is_refused_by_config() -> None:
    from edged.configtools import ConfigError, build

    with pytest.raises(ConfigError, match="cancel_hold"):
        build(PanelConfig, {"cancel_hold": 1.0}, file="edged.toml", where="panel")
    with pytest.raises(ConfigError, match="button_active"):
        build(PanelConfig, {"button_pull": "up", "button_active": "high"}, file="x", where="panel")
    with pytest.raises(ConfigError, match="cancel_pin"):
        build(PanelConfig, {"cancel_pin": 5}, file="x", where="panel")


async def test_bounce_is_one_press(make_rig: RigFactory) -> None:
    rig = await make_rig({"bounce_time": 0.05})
    await rig.add(1)
    await rig.add(2)
    pin = rig.pin(ACCEPT)
    for _ in range(5):  # contact chatter, faster than the debounce
        pin.drive_low()
        await rig.clock.advance(0.004)
        pin.drive_high()
        await rig.clock.advance(0.004)
    pin.drive_low()
    await rig.clock.advance(0.3)
    for _ in range(3):
        pin.drive_high()
        await rig.clock.advance(0.003)
        pin.drive_low()
        await rig.clock.advance(0.003)
    pin.drive_high()
    await rig.clock.advance(0.1)
    [cmd] = await eventually(rig.commands)
    await rig.finish(cmd)
    assert await rig.result() == "accepted"
    assert len(await rig.commands()) == 1
    # And a glitch shorter than the debounce is no press at all.
    pin.drive_low()
    await rig.clock.advance(0.01)
    pin.drive_high()
    await rig.clock.advance(0.2)
    await rig.sync()
    assert len(await rig.commands()) == 1
    assert rig.panel.last_press is None


async def test_both_buttons_acknowledge_all_and_long_hold_asks_for_setup(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig({"setup_hold": 5.0})
    await rig.add(1)
    await rig.add(2)
    await rig.press_both(0.5)
    assert await rig.result() == "silenced"
    for order_id in (1, 2):
        stored = await rig.journal.get_order(order_id)
        assert stored is not None and stored.acknowledged
    await rig.sync()
    assert rig.panel.snapshot()["ringing"] == []
    assert rig.setup_calls == 0
    await rig.press_both(5.2)
    assert await rig.result() == "setup"
    assert rig.setup_calls == 1
    assert await rig.commands() == [], "both buttons never accept or cancel"


async def test_nothing_waiting_is_refused(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.press(ACCEPT, 0.2)
    assert await rig.result() == "refused"
    await rig.press(CANCEL, 2.5)
    assert await rig.result() == "refused"
    assert "refused" in rig.buzzer_log
    assert await rig.commands() == []


async def test_only_both_buttons_held_prove_access_and_a_press_for_an_order_never_does(
    make_rig: RigFactory,
) -> None:
    """The web page's first-visit proof takes both buttons held together, then let go, a
    gesture no order decision uses: with orders waiting and the page's window open, ACCEPT
    accepts (and the page hears it went to an order); the brief both press staff use to
    silence proves nothing; the hold proves and decides nothing."""
    rig = await make_rig(default_delay=0)
    offered: list[str] = []
    told: list[tuple[str, str]] = []

    def access_press() -> bool:
        offered.append("proof")
        return True  # a browser's window is open

    rig.panel.on_access_press = access_press
    rig.panel.on_press_result = lambda result, code: told.append((result, code))
    await rig.add(1)
    await rig.add(2)
    await rig.sync()
    await rig.press(ACCEPT, 0.3)
    [cmd] = await eventually(rig.commands, what="the accept")
    assert (cmd.kind, cmd.order_id) == ("accept", 1)
    await rig.finish(cmd)
    assert await rig.result() == "accepted"
    stored = await rig.journal.get_order(1)
    assert stored is not None
    assert told == [("accepted", stored.code)]
    await rig.press_both(0.5)
    assert await rig.result() == "silenced"
    assert offered == [], "a brief both press is the everyday silence, never a proof"
    assert told[-1] == ("silenced", "")
    await rig.press_both(proof_hold(rig.config) + 0.3)
    assert await rig.result() == "proof"
    assert offered == ["proof"]
    assert "tick" in rig.buzzer_log, "a click says when to let go"
    assert len(await rig.commands()) == 1, "the proof decided nothing"
    second = await rig.journal.get_order(2)
    assert second is not None and second.is_waiting
    assert told[-1] == ("silenced", ""), "a proof is no press that went elsewhere"
    assert rig.setup_calls == 0


async def test_both_held_with_no_page_waiting_is_refused(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.panel.on_access_press = lambda: False
    await rig.press_both(proof_hold(rig.config) + 0.3)
    assert await rig.result() == "refused"


async def test_sinqro_says_no_is_refused(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add(1)
    await rig.press(ACCEPT, 0.2)
    [cmd] = await eventually(rig.commands)
    await rig.finish(cmd, ok=False)
    assert await rig.result() == "refused"


async def test_offline_press_is_queued_and_the_next_press_takes_the_next_order(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig({"command_wait": 3.0})
    await rig.add(1)
    await rig.add(2)
    await rig.press(ACCEPT, 0.2)
    await eventually(rig.commands)
    while rig.panel.last_press is None:  # nobody answers: the wait runs out on the clock
        await rig.clock.advance(0.5)
        await asyncio.sleep(0.001)
    assert await rig.result() == "queued"
    assert "queued" in rig.buzzer_log
    await rig.press(ACCEPT, 0.2)
    await eventually(lambda: rig.commands())
    commands = await eventually(lambda: _two(rig))
    assert [c.order_id for c in commands] == [1, 2]


async def _two(rig: Rig) -> list[Command] | None:
    commands = await rig.commands()
    return commands if len(commands) == 2 else None


async def test_stuck_button_does_nothing(make_rig: RigFactory) -> None:
    rig = await make_rig({"max_hold": 10.0})
    await rig.add(1)
    await rig.press(ACCEPT, 12.0)
    assert await rig.result() == "ignored"
    await rig.press(CANCEL, 12.0)
    assert await rig.result() == "ignored"
    assert await rig.commands() == []


async def test_button_down_at_start_never_acts(factory: MockFactory, journal: Journal) -> None:
    factory.pin(ACCEPT).drive_low()  # held (or shorted) before the panel starts
    rig = Rig(factory, journal, PanelConfig(pin_factory="mock"), OrdersConfig())
    await rig.start()
    try:
        await rig.add(1)
        rig.pin(ACCEPT).drive_high()
        await rig.clock.advance(0.5)
        await rig.sync()
        assert await rig.commands() == []
    finally:
        await rig.stop()


async def test_edge_from_another_thread_reaches_the_loop(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add(1)
    loop_thread = threading.get_ident()
    seen: list[tuple[int, str, bool]] = []
    original = rig.panel._on_edge

    def spy(name: Any, level: bool) -> None:
        seen.append((threading.get_ident(), name, level))
        original(name, level)

    rig.panel._on_edge = spy  # type: ignore[method-assign]
    pin = rig.pin(ACCEPT)
    driver: list[int] = []

    def finger(level: bool) -> None:
        driver.append(threading.get_ident())
        pin.drive_low() if level else pin.drive_high()

    await asyncio.to_thread(finger, True)
    await eventually(lambda: seen)
    await rig.clock.advance(0.3)
    await asyncio.to_thread(finger, False)
    await eventually(lambda: len(seen) == 2)
    await rig.clock.advance(0.1)
    assert driver[0] != loop_thread
    assert all(ident == loop_thread for ident, _, _ in seen)
    assert [(n, lv) for _, n, lv in seen] == [("accept", True), ("accept", False)]
    await eventually(rig.commands)


# -- virtual presses ----------------------------------------------------------------------------


async def test_virtual_press_drives_the_mock_pins(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.add(1)
    pin = rig.pin(ACCEPT)
    pin.clear_states()
    press = asyncio.create_task(rig.panel.virtual_press("accept", 0.2))
    await rig.clock.advance(0.3)
    assert [s.state for s in pin.states] == [True, False, True], "the mock pin really moved"
    [cmd] = await eventually(rig.commands)
    await rig.finish(cmd)
    assert await press == "accepted"
    press = asyncio.create_task(rig.panel.virtual_press("both", 0.3))
    await rig.clock.advance(0.5)
    assert await press == "silenced"


async def test_virtual_press_without_gpio(journal: Journal, factory: MockFactory) -> None:
    rig = Rig(factory, journal, PanelConfig(enabled=False), OrdersConfig())
    await rig.start()
    try:
        assert rig.panel.snapshot()["pin_factory"] == "none"
        await rig.add(1)
        assert rig.panel.snapshot()["buzzer"]["pattern"] == "new_order"
        press = asyncio.create_task(rig.panel.virtual_press("cancel", 2.5))
        await rig.clock.advance(2.6)
        [cmd] = await eventually(rig.commands)
        assert cmd.kind == "cancel"
        await rig.finish(cmd, status="cancelled_by_sp")
        assert await press == "cancelled"
    finally:
        await rig.stop()


# -- auto-accept, passive buzzer, LED -------------------------------------------------------------


async def test_auto_accept_rings_once_and_chirps_when_done(make_rig: RigFactory) -> None:
    rig = await make_rig(auto_accept=True)
    await rig.add(1)
    assert rig.buzzing and rig.state.get("panel.buzzer") == "new_order"
    await rig.clock.advance(ACTIVE_PATTERNS["new_order"].duration + 0.01)
    await rig.sync()
    pin = rig.pin(BUZZER)
    pin.clear_states()
    await rig.clock.advance(60.0)
    assert not any(s.state for s in pin.states), "auto-accept: no repeat"
    [cmd] = await rig.commands()
    assert (cmd.source, cmd.kind) == ("auto", "accept")
    rig.buzzer_log.clear()
    await rig.finish(cmd)
    await rig.clock.settle()
    assert rig.buzzer_log[:1] == ["confirm"]


async def test_auto_accept_failure_rings_for_a_person(make_rig: RigFactory) -> None:
    rig = await make_rig(auto_accept=True)
    await rig.add(1)
    await rig.clock.advance(2.0)
    [cmd] = await rig.commands()
    await rig.finish(cmd, ok=False)
    await eventually(lambda: rig.panel.snapshot()["ringing"] == [1])
    await rig.clock.advance(6.0)
    assert "waiting" in rig.buzzer_log


async def test_passive_buzzer_plays_tones(make_rig: RigFactory) -> None:
    rig = await make_rig({"buzzer_type": "passive"})
    await rig.add(1)
    pin = rig.pin(BUZZER)
    heard = []
    for _, seconds in PASSIVE_PATTERNS["new_order"].steps:
        heard.append((pin.frequency if pin.state else 0, pin.state))
        await rig.clock.advance(seconds)
    expected = [hz for hz, _ in PASSIVE_PATTERNS["new_order"].steps]
    assert [hz for hz, _ in heard] == expected
    assert all(state == 0.5 for (hz, state) in heard if hz)


async def test_passive_buzzer_on_a_pin_without_pwm_is_a_clear_error(journal: Journal) -> None:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()  # plain pins: no PWM
    try:
        rig = Rig(
            Device.pin_factory,
            journal,
            PanelConfig(pin_factory="mock", buzzer_type="passive"),
            OrdersConfig(),
        )
        with pytest.raises(PanelError, match="PWM"):
            await rig.panel.run()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


def test_auto_factory_without_gpio_library_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(PanelError, match="no GPIO library"):
        make_pin_factory("auto")


async def _led_cycle(rig: Rig, seconds: float, step: float = 0.05) -> list[bool]:
    samples = []
    await rig.clock.advance(step / 2)  # sample mid-step, never on a boundary
    for _ in range(round(seconds / step)):
        samples.append(rig.lit)
        await rig.clock.advance(step)
    return samples


def _runs(samples: list[bool]) -> list[tuple[bool, int]]:
    runs: list[tuple[bool, int]] = []
    for s in samples:
        if runs and runs[-1][0] == s:
            runs[-1] = (s, runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


async def test_led_table(make_rig: RigFactory) -> None:
    rig = await make_rig()
    state = rig.state

    async def shows(name: str) -> list[tuple[bool, int]]:
        await rig.clock.settle()
        assert state.get("panel.led") == name
        assert rig.panel.snapshot()["led"]["state"] == name
        return _runs(await _led_cycle(rig, 4.0))

    # 6 online: steady on.
    assert await shows("online") == [(True, 80)]
    # 5 starting: 0.5 s on / off.
    state.set("link", "starting")
    runs = await shows("starting")
    assert all(n == 10 for _, n in runs[1:-1]) and len(runs) >= 7
    # 4 offline: 1 s on / off.
    state.set("link", "offline")
    runs = await shows("offline")
    assert all(n == 20 for _, n in runs[1:-1])
    # 3 not paired beats offline: a short flash every 2 s.
    state.set("link", "not_paired")
    runs = await shows("not_paired")
    assert (True, 2) in runs and (False, 38) in runs
    # 2 printer problem beats not paired: double blink.
    state.set("printer.kitchen", {"state": "paper_out", "detail": ""})
    runs = await shows("printer_problem")
    assert runs[:4] == [(True, 3), (False, 3), (True, 3), (False, 21)]
    # 1 orders waiting beats everything: fast blink.
    await rig.add(1)
    runs = await shows("orders_waiting")
    assert all(n == 4 for _, n in runs[1:-1])
    # Back down the table as things clear.
    cmd = await rig.desk.accept(1, None, source="web")
    await rig.finish(cmd)
    await eventually(lambda: state.get("panel.led") == "printer_problem")
    state.set("printer.kitchen", {"state": "online", "detail": ""})
    state.set("link", "online")
    assert await shows("online") == [(True, 80)]


async def test_stop_releases_the_pins(factory: MockFactory, journal: Journal) -> None:
    rig = Rig(factory, journal, PanelConfig(pin_factory="mock"), OrdersConfig())
    await rig.start()
    await rig.add(1)
    assert rig.buzzing
    await rig.stop()
    assert not rig.buzzing and not rig.lit
    assert rig.state.get("panel.led") == "off"
    # The pins are free again: a second panel can claim them.
    again = Rig(factory, journal, PanelConfig(pin_factory="mock"), OrdersConfig())
    await again.start()
    await again.stop()


# -- the demo's terminal panel --------------------------------------------------------------------


async def test_terminal_panel_headless_prints_changes(make_rig: RigFactory) -> None:
    import io

    from edged.virtual.panel import run_terminal_panel

    rig = await make_rig()
    out = io.StringIO()
    stdin = io.StringIO("aaaa")  # not a TTY: never read
    view = asyncio.create_task(run_terminal_panel(rig.panel, rig.state, stdin=stdin, stdout=out))
    try:
        await rig.clock.settle()
        await rig.add(1)
        await eventually(lambda: "buzzer new order" in out.getvalue())
        assert "LED order waiting" in out.getvalue()
        assert stdin.read() == "aaaa"
        assert await rig.commands() == []
    finally:
        view.cancel()
        with pytest.raises(asyncio.CancelledError):
            await view


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("es", "PANEL   LED pedido esperando, zumbador pedido nuevo"),
        ("ca", "PANELL  LED comanda en espera, brunzidor comanda nova"),
    ],
)
async def test_terminal_panel_speaks_the_box_language(
    make_rig: RigFactory, language: str, expected: str
) -> None:
    import io

    from edged.virtual.panel import run_terminal_panel, status_line

    rig = await make_rig()
    rig.panel.language = language
    out = io.StringIO()
    view = asyncio.create_task(
        run_terminal_panel(rig.panel, rig.state, stdin=io.StringIO(""), stdout=out)
    )
    try:
        await rig.clock.settle()
        await rig.add(1)
        await eventually(lambda: expected in out.getvalue())
        assert "orders_waiting" not in out.getvalue()
        assert "new_order" not in out.getvalue()
        line = status_line(rig.panel.snapshot(), color=False, locale=Locale(language))
        assert "orders_waiting" not in line and "LED" in line
    finally:
        view.cancel()
        with pytest.raises(asyncio.CancelledError):
            await view


async def test_terminal_panel_keys_press_buttons_on_a_tty(make_rig: RigFactory) -> None:
    import os
    import pty

    from edged.virtual.panel import run_terminal_panel

    rig = await make_rig()
    await rig.add(1)
    master, slave = pty.openpty()
    tty_in = os.fdopen(slave, "r", closefd=False)
    tty_out = os.fdopen(os.dup(slave), "w")
    view = asyncio.create_task(
        run_terminal_panel(rig.panel, rig.state, stdin=tty_in, stdout=tty_out)
    )
    try:
        await rig.clock.settle()
        os.write(master, b"C")  # long CANCEL
        await eventually(lambda: not rig.pin(CANCEL).state, what="the key drove the pin")
        await rig.clock.advance(rig.config.cancel_hold + 0.5)
        [cmd] = await eventually(rig.commands)
        assert cmd.kind == "cancel"
        await rig.finish(cmd, status="cancelled_by_sp")
        screen = b""
        while b"-> cancelled" not in screen:
            screen += await asyncio.wait_for(asyncio.to_thread(os.read, master, 4096), 5)
        assert b"LED" in screen
    finally:
        view.cancel()
        with pytest.raises(asyncio.CancelledError):
            await view
        tty_out.close()
        tty_in.close()
        os.close(slave)
        os.close(master)
