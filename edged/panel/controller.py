"""The panel: buzzer, LED and the ACCEPT / CANCEL buttons, tied to the order flow.

:class:`Panel` follows the journal (which orders ring) and :class:`~edged.state.BoxState`
(what the LED shows), plays patterns from :mod:`edged.panel.patterns` and turns button
gestures (:mod:`edged.panel.buttons`) into :class:`~edged.flow.desk.OrderDesk` decisions,
each ending with an audible answer:

=========  ====================================================================
answer     meaning
=========  ====================================================================
confirm    Sinqro took the decision (within ``command_wait``), or silenced
queued     the decision is safe in the outbox; Sinqro has not answered yet
refused    nothing waiting, the desk refused it, or Sinqro said no
error      something broke (stuck button, journal error, setup hook failed)
=========  ====================================================================

The buttons act on the oldest waiting order that has no decision on its way yet, so with
the link down a second press decides the next order instead of queueing the same one twice.
While a kitchen display is on (:attr:`Panel.kitchen`) and no order waits for a decision,
the short presses work the display: ACCEPT bumps the selected tile (answered like a
decision), CANCEL moves the selection (``bumped``, ``moved``); a new order takes the buttons
back at once.

Publishes ``panel.led`` and ``panel.buzzer`` in BoxState.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from edged.clock import Clock, RealClock
from edged.flow.desk import OrderDesk, Outcome
from edged.flow.refusals import CommandRefused
from edged.flow.settings import DEFAULT_CANCEL_COMMENT, OrdersConfig
from edged.flow.station import KitchenStation
from edged.i18n import Locale
from edged.journal import events as ev
from edged.journal.events import Event
from edged.journal.store import Journal, JournalError, StoredOrder
from edged.panel.alerts import DECISIONS, AlertTracker
from edged.panel.buttons import BUTTONS, ButtonLogic, ButtonName, Gesture, Intent
from edged.panel.gpio import ButtonInput, Hardware, PanelError
from edged.panel.patterns import buzzer_table, led_state
from edged.panel.players import BuzzerPlayer, LedPlayer, Signal
from edged.panel.settings import PanelConfig
from edged.sinqro.models import Order
from edged.state import BoxState

log = logging.getLogger(__name__)

SetupHook = Callable[[], Awaitable[None]]
VirtualButton = Literal["accept", "cancel", "both"]
SOURCE = "panel"
#: Words :meth:`Panel.virtual_press` returns.
RESULTS = (
    "accepted",
    "cancelled",
    "queued",
    "refused",
    "silenced",
    "setup",
    "proof",
    "ignored",
    "error",
    "bumped",
    "moved",
)
_LED_KEYS = ("link", "waiting_orders", "queued_commands", "journal")


class Panel:
    """Buzzer, LED and buttons. Run :meth:`run` as a task; cancel it to stop."""

    def __init__(
        self,
        config: PanelConfig,
        orders: OrdersConfig,
        desk: OrderDesk,
        journal: Journal,
        state: BoxState,
        *,
        clock: Clock | None = None,
        on_setup_request: SetupHook | None = None,
    ) -> None:
        self.config = config
        self.orders = orders
        self.desk = desk
        self.journal = journal
        self.state = state
        self.clock: Clock = clock or RealClock()
        self.on_setup_request = on_setup_request
        # The web page's proof of physical access: both buttons held (buttons.proof_hold),
        # then let go, while the page waits for one prove the browser (True when taken).
        # No order decision uses that gesture, so a press meant for an order never proves.
        self.on_access_press: Callable[[], bool] | None = None
        # Told every other press's result and the order it went to (its code, or ""), so
        # the page can say that a press went to an order and proved nothing.
        self.on_press_result: Callable[[str, str], None] | None = None
        self._decided_code = ""
        # The kitchen display's station (set by the assembly); see the module docstring.
        self.kitchen: KitchenStation | None = None
        # The box's language: the default cancel comment goes out in it.
        self.language = "en"
        self.hardware = Hardware(config)
        self.tracker = AlertTracker(
            now=self.clock.monotonic,
            escalate_after=config.escalate_after,
            auto_accept=orders.auto_accept,
            on_change=self._alert_changed,
            on_auto_result=self._auto_result,
            on_auto_new=self._auto_new,
        )
        self.buzzer = BuzzerPlayer(
            self.hardware.buzzer,
            self.clock,
            buzzer_table(config.buzzer_type, config.repeat_every),
            self.tracker.alert,
            alert_started=self._alert_started,
            until_change=self.tracker.until_escalation,
            publish=lambda name: self.state.set("panel.buzzer", name),
        )
        self.led = LedPlayer(self.hardware.led, self.clock)
        self.buttons = ButtonLogic(
            self.clock, config, self._read_button, self._on_intent, self._on_gesture_end
        )
        self.last_press: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._resync = Signal()
        self._decide = asyncio.Lock()
        self._actions: dict[int, list[asyncio.Task[str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gesture_waiters: list[asyncio.Future[str]] = []

    # -- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim the pins and run until cancelled; the pins are released on the way out.

        Raises :class:`~edged.panel.gpio.PanelError` when the GPIO cannot be opened.
        """
        if self._running:
            raise RuntimeError("panel is already running")
        self._loop = asyncio.get_running_loop()
        self.hardware.open()
        for button in (self.hardware.accept, self.hardware.cancel):
            button.watch(self._edge_callback(button.name))
        self._running = True
        self.journal.add_listener(self._on_events)
        self.state.watch(self._on_state)
        self.desk.unstored.add_listener(self._on_unstored)
        self.state.set("panel.buzzer", self.buzzer.playing)
        self._update_led()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.buzzer.run(), name="panel-buzzer")
                tg.create_task(self.led.run(), name="panel-led")
                tg.create_task(self._follow(), name="panel-follow")
                tg.create_task(self._watch_journal(), name="panel-journal")
        finally:
            self._running = False
            self.desk.unstored.remove_listener(self._on_unstored)
            self.state.unwatch(self._on_state)
            self.journal.remove_listener(self._on_events)
            self.buttons.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks))
            for waiter in self._gesture_waiters:
                waiter.cancel()
            self._gesture_waiters.clear()
            self.hardware.close()
            self.state.set("panel.led", "off")
            self.state.set("panel.buzzer", "quiet")
            log.info("panel: stopped")

    def update_orders_config(self, orders: OrdersConfig) -> None:
        """Take new ``[orders]`` settings (delays, comment, auto-accept) without a restart."""
        self.orders = orders
        self.tracker.auto_accept = orders.auto_accept

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- GPIO threads -> loop ----------------------------------------------------------------

    def _edge_callback(self, name: ButtonName) -> Callable[[bool], None]:
        def on_edge(level: bool) -> None:
            # gpiozero calls this on its own thread (or ours, for mock pins).
            loop = self._loop
            if loop is None:
                return
            # RuntimeError: the loop is closing; the press goes with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_edge, name, level)

        return on_edge

    def _on_edge(self, name: ButtonName, level: bool) -> None:
        """An edge, on the loop."""
        if self._running and name in BUTTONS:
            self.buttons.edge(name, level)

    def _button(self, name: ButtonName) -> ButtonInput:
        return self.hardware.accept if name == "accept" else self.hardware.cancel

    def _read_button(self, name: ButtonName) -> bool:
        return self._button(name).pressed

    # -- following the journal and the box state ----------------------------------------------

    def _on_events(self, events: list[Event]) -> None:
        if self._running and self.tracker.apply(events):
            self._resync.fire()

    def _on_unstored(self, order: Order) -> None:
        """An order the journal could not store yet rings (or stops) as if it were stored
        (its own events come once it is; see edged/journal/unstored.py)."""
        data: dict[str, Any] = {"type": order.type, "status": order.status, "code": order.code}
        kind = ev.ORDER_NEW
        if not order.is_waiting:
            kind, data["final"] = ev.ORDER_STATUS, order.is_final
        self._on_events([Event(self.journal.last_seq, time.time(), kind, order.id, data)])

    def _on_state(self, key: str, value: Any) -> None:
        if not self._running:
            return
        if key in _LED_KEYS or key.startswith(("printer.", "part.")):
            self._update_led()
        if key in ("waiting_orders", "queued_commands"):
            self._resync.fire()

    def _update_led(self) -> None:
        name = led_state(self.state.snapshot())
        self.led.show(name)
        self.state.set("panel.led", name)

    async def _follow(self) -> None:
        """Reconcile the ringing set with the journal whenever something may have moved."""
        while True:
            self._resync.consume()
            start = self.journal.last_seq
            try:
                waiting = await self.journal.waiting_refs()
                pending = await self.journal.pending_commands()
                stored = {order_id for order_id, _ in waiting}
                held = self.desk.unstored.waiting_ids()  # ring too, till they are stored
                waiting += [(order_id, False) for order_id in held if order_id not in stored]
            except JournalError as exc:
                # An unreadable card: keep ringing for what is known, look again shortly.
                log.error("panel: journal unavailable: %s; retrying", exc)
                await self.clock.sleep(1.0)
                self._resync.fire()
                continue
            self.tracker.reconcile(start, waiting, pending)
            # Same counts as Journal.counts(); keeps the LED true even when a writer
            # (a test, a tool) did not refresh them.
            self.state.set("waiting_orders", len(waiting))
            self.state.set("queued_commands", len(pending))
            await self._resync.wait(self.clock, None)

    async def _watch_journal(self) -> None:
        """Commits by other processes (the CLI) reach us only through the journal's watcher."""
        seen = self.journal.last_seq
        while True:
            await self.journal.wait_for_events(seen)
            seen = self.journal.last_seq
            self._resync.fire()

    def _alert_changed(self, added: bool) -> None:
        # A new ringing order starts the alert at once; an order leaving the set only cuts
        # the rhythm when nothing rings any more (no restart for the others).
        if added:
            self.buzzer.poke(fast=True)
        elif self.tracker.alert() is None:
            self.buzzer.poke()

    def _alert_started(self, name: str) -> None:
        if name == "new_order":
            self.tracker.take_fresh()

    def _auto_new(self, order_id: int) -> None:
        if self._running:
            self.buzzer.answer("new_order")

    def _auto_result(self, order_id: int, ok: bool) -> None:
        if self._running:
            self.buzzer.answer("confirm" if ok else "error")

    # -- gestures -> decisions ---------------------------------------------------------------

    def _on_intent(self, gesture: Gesture, intent: Intent) -> None:
        if intent == "tick":
            self.buzzer.answer("tick")
            return
        task = self._spawn(self._act(intent), name=f"panel-{intent}-{gesture.id}")
        self._actions.setdefault(gesture.id, []).append(task)

    def _proof(self) -> str:
        """Both buttons held, then let go: the proof of access for the page waiting for
        one. It decides nothing (the brief both press before it only silenced)."""
        if self.on_access_press is not None and self.on_access_press():
            log.info("panel: both buttons held: proof of access for the web page")
            self.buzzer.answer("confirm")
            return "proof"
        log.info("panel: both buttons held, but no web page waits for a proof of access")
        self.buzzer.answer("refused")
        return "refused"

    def _on_gesture_end(self, gesture: Gesture) -> None:
        actions = self._actions.pop(gesture.id, [])
        waiters, self._gesture_waiters = self._gesture_waiters, []
        self._spawn(self._finish_gesture(gesture, actions, waiters), f"panel-gesture-{gesture.id}")

    async def _finish_gesture(
        self,
        gesture: Gesture,
        actions: list[asyncio.Task[str]],
        waiters: list[asyncio.Future[str]],
    ) -> None:
        result = "ignored"
        if actions:
            await asyncio.wait(actions)
            last = actions[-1]
            result = "error" if last.cancelled() or last.exception() else last.result()
        self.last_press = {"gesture": list(gesture.intents), "result": result}
        code, self._decided_code = self._decided_code, ""
        if result != "proof" and self.on_press_result is not None:
            try:
                self.on_press_result(result, code)
            except Exception:
                log.exception("panel: the press report failed")
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)

    async def _act(self, intent: Intent) -> str:
        try:
            if intent in ("accept", "silence") and await self._kitchen_mode():
                return await self._kitchen_press(intent == "accept")
            if intent == "accept":
                return await self._decide_accept(self.orders.default_delay)
            if intent == "accept_long":
                return await self._decide_accept(self.orders.long_press_delay)
            if intent == "cancel":
                return await self._decide_cancel()
            if intent in ("silence", "both"):
                return await self._silence(everything=intent == "both")
            if intent == "setup":
                return await self._setup()
            if intent == "proof":
                return self._proof()
            self.buzzer.answer("error")  # stuck
            return "ignored"
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("panel: %s failed", intent)
            self.buzzer.answer("error")
            return "error"

    async def _target(self) -> StoredOrder | None:
        """The oldest waiting order with no decision on its way."""
        waiting = await self.journal.waiting_orders()
        if not waiting:
            return None
        busy = {c.order_id for c in await self.journal.pending_commands() if c.kind in DECISIONS}
        busy |= self.tracker.decided
        return next((o for o in waiting if o.id not in busy), None)

    async def _decide_accept(self, delay: int) -> str:
        async with self._decide:
            order = await self._target()
            if order is None:
                log.info("panel: ACCEPT with no order waiting")
                self.buzzer.answer("refused")
                return "refused"
            self._decided_code = order.code
            try:
                command = await self.desk.accept(order.id, delay or None, source=SOURCE)
            except CommandRefused as exc:
                log.info("panel: accept of order %s refused: %s", order.id, exc.message)
                self.buzzer.answer("refused")
                return "refused"
        return await self._answer(await self._outcome(command.id), "accepted")

    async def _decide_cancel(self) -> str:
        async with self._decide:
            order = await self._target()
            if order is None:
                log.info("panel: CANCEL with no order waiting")
                self.buzzer.answer("refused")
                return "refused"
            self._decided_code = order.code
            try:
                comment = cancel_comment(self.orders.cancel_comment, self.language)
                command = await self.desk.cancel(order.id, comment, source=SOURCE)
            except CommandRefused as exc:
                log.info("panel: cancel of order %s refused: %s", order.id, exc.message)
                self.buzzer.answer("refused")
                return "refused"
        return await self._answer(await self._outcome(command.id), "cancelled")

    async def _kitchen_mode(self) -> bool:
        """A kitchen display is on and no order waits for a decision (new orders first)."""
        kitchen = self.kitchen
        return kitchen is not None and kitchen.display_on and await self._target() is None

    async def _kitchen_press(self, bump: bool) -> str:
        assert self.kitchen is not None
        if not bump:
            moved = await self.kitchen.move(1)
            self.buzzer.answer("confirm" if moved is not None else "refused")
            return "moved" if moved is not None else "refused"
        try:
            command = await self.kitchen.bump(source=SOURCE)
        except CommandRefused as exc:
            log.info("panel: bump refused: %s", exc.message)
            self.buzzer.answer("refused")
            return "refused"
        return await self._answer(await self._outcome(command.id), "bumped")

    async def _outcome(self, command_id: int) -> Outcome:
        """Sinqro's answer within ``command_wait`` (on the panel clock), else queued."""
        waiting = asyncio.ensure_future(self.desk.wait(command_id, self.config.command_wait + 60))
        waiting.set_name(f"panel-wait-{command_id}")
        timer = self.clock.timer(self.config.command_wait)
        try:
            both: list[asyncio.Future[Any]] = [waiting, timer]
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not waiting.done():
                waiting.cancel()
                await asyncio.wait({waiting})
        if waiting.cancelled():
            return Outcome(command_id, "queued")
        return waiting.result()

    async def _answer(self, outcome: Outcome, done: str) -> str:
        if outcome.state == "done":
            self.buzzer.answer("confirm")
            return done
        if outcome.state == "queued":
            self.buzzer.answer("queued")
            return "queued"
        log.info(
            "panel: command %d failed: %s %s", outcome.command_id, outcome.code, outcome.message
        )
        self.buzzer.answer("refused")
        return "refused"

    async def _silence(self, *, everything: bool) -> str:
        silenced = await self.desk.acknowledge(None, source=SOURCE)
        if silenced or everything:
            # Both buttons always confirm: it may be the start of the setup hold.
            self.buzzer.answer("confirm")
            return "silenced"
        self.buzzer.answer("refused")
        return "refused"

    async def _setup(self) -> str:
        if self.on_setup_request is None:
            self.buzzer.answer("refused")
            return "refused"
        await self.on_setup_request()
        self.buzzer.answer("confirm")
        return "setup"

    # -- virtual buttons and the web page ------------------------------------------------------

    async def virtual_press(self, button: VirtualButton, seconds: float) -> str:
        """Press ``accept``, ``cancel`` or ``both`` for ``seconds``, like a finger would.

        With the mock pin factory the mock pins are driven (so gpiozero sees real edges);
        otherwise the edges are injected. Returns what came of it, one of :data:`RESULTS`.
        """
        if button not in ("accept", "cancel", "both"):
            raise ValueError(f"unknown button {button!r}")
        if not self._running:
            raise PanelError("panel is not running")
        if not 0 <= seconds <= 60:
            raise ValueError("seconds must be between 0 and 60")
        # Shorter than the debounce would be filtered out, as on the real buttons.
        seconds = max(seconds, self.config.bounce_time * 2)
        names: list[ButtonName] = ["accept", "cancel"] if button == "both" else [button]
        loop = asyncio.get_running_loop()
        result: asyncio.Future[str] = loop.create_future()
        self._gesture_waiters.append(result)
        try:
            for name in names:
                self._drive(name, True)
            await self.clock.sleep(seconds)
        finally:
            for name in reversed(names):
                self._drive(name, False)
        try:
            # Bounded: a real button held at the same time keeps the gesture open.
            async with asyncio.timeout(self.config.command_wait + self.config.max_hold + 5):
                return await result
        except TimeoutError:
            return "ignored"
        finally:
            if result in self._gesture_waiters:
                self._gesture_waiters.remove(result)

    def _drive(self, name: ButtonName, pressed: bool) -> None:
        button = self._button(name)
        if button.drive(pressed):
            return
        button.virtual_down = pressed
        self._on_edge(name, pressed)

    def snapshot(self) -> dict[str, Any]:
        """What the web page shows: LED, buzzer, buttons and the last press."""
        return {
            "enabled": self.config.enabled,
            "running": self._running,
            "pin_factory": self.hardware.factory_name,
            "led": {"state": self.led.state, "on": self.hardware.led.lit},
            "buzzer": {
                "type": self.config.buzzer_type,
                "pattern": self.buzzer.playing,
                "on": self.hardware.buzzer.on,
                "frequency": self.hardware.buzzer.frequency,
            },
            "buttons": {name: self.buttons.stable[name] for name in BUTTONS},
            "ringing": sorted(self.tracker.ringing),
            "last_press": self.last_press,
        }


__all__ = ["RESULTS", "Panel", "PanelError", "SetupHook", "VirtualButton"]


def cancel_comment(configured: str, language: str) -> str:
    """The CANCEL button's comment: the configured one, or the default in the box's
    language when it was left at the default."""
    if configured == DEFAULT_CANCEL_COMMENT:
        return Locale(language).gettext(DEFAULT_CANCEL_COMMENT)
    return configured
