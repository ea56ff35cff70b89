"""The GPIO side of the panel, through gpiozero.

Only this module touches gpiozero. It picks the pin factory, builds the devices from
:class:`PanelConfig` and offers three small outputs/inputs to the controller:

* :class:`BuzzerOutput` (``tone(hz)`` / ``off()``; an active buzzer ignores the pitch),
* :class:`LedOutput` (``set(on)``),
* :class:`ButtonInput` (edge callbacks, which gpiozero fires on its own threads).

Debounce and hold times are *not* left to gpiozero: RPi.GPIO's edge bounce can swallow a
release edge (a button that stays "pressed"), and gpiozero's hold timer runs on wall time
in a thread. The controller debounces and measures holds itself, on its :class:`Clock`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edged.panel.settings import PanelConfig

if TYPE_CHECKING:
    from edged.panel.buttons import ButtonName

log = logging.getLogger(__name__)


class PanelError(RuntimeError):
    """The panel cannot start (no GPIO library, pin busy...) or cannot do what was asked."""


def make_pin_factory(kind: str) -> Any:
    """A gpiozero pin factory for ``auto`` | ``lgpio`` | ``rpigpio`` | ``mock``.

    ``mock`` reuses ``Device.pin_factory`` when it already is a MockFactory (tests set it),
    else makes one with PWM-capable pins so a passive buzzer works in the demo.
    """
    from gpiozero import Device

    if kind == "auto":
        if importlib.util.find_spec("lgpio") is not None:
            kind = "lgpio"
        elif importlib.util.find_spec("RPi") is not None:
            kind = "rpigpio"
        else:
            raise PanelError(
                "panel: no GPIO library found (install lgpio, or RPi.GPIO on older boards: "
                'pip install "edged[rpi]"); set panel.pin_factory = "mock" to run without '
                "GPIO, or panel.enabled = false"
            )
    try:
        if kind == "mock":
            from gpiozero.pins.mock import MockFactory, MockPWMPin

            current = Device.pin_factory
            if isinstance(current, MockFactory):
                return current
            return MockFactory(pin_class=MockPWMPin)
        if kind == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if kind == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
    except PanelError:
        raise
    except Exception as exc:  # gpiozero raises many kinds here (no chip, no permission...)
        raise PanelError(f"panel: cannot open the {kind} pin factory: {exc}") from exc
    raise PanelError(f"panel: unknown pin factory {kind!r}")


def is_mock(factory: Any) -> bool:
    from gpiozero.pins.mock import MockFactory

    return isinstance(factory, MockFactory)


class BuzzerOutput:
    """An active (on/off) or passive (PWM tone) buzzer; ``None`` device means no hardware."""

    def __init__(self, device: Any, passive: bool) -> None:
        self.device = device
        self.passive = passive
        self.frequency = 0.0

    @property
    def on(self) -> bool:
        return self.frequency > 0

    def tone(self, hz: float) -> None:
        """Sound at ``hz`` (0: silence)."""
        if hz <= 0:
            self.off()
            return
        if self.device is not None:
            if self.passive:
                if self.device.frequency != hz:
                    self.device.frequency = hz
                self.device.value = 0.5
            else:
                self.device.on()
        self.frequency = hz

    def off(self) -> None:
        if self.device is not None:
            if self.passive:
                self.device.value = 0
            else:
                self.device.off()
        self.frequency = 0.0

    def close(self) -> None:
        if self.device is not None:
            try:
                self.off()
            finally:
                self.device.close()


class LedOutput:
    """One LED; ``None`` device means no hardware."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.lit = False

    def set(self, on: bool) -> None:
        if self.device is not None:
            if on:
                self.device.on()
            else:
                self.device.off()
        self.lit = on

    def close(self) -> None:
        if self.device is not None:
            try:
                self.device.off()
            finally:
                self.device.close()


class ButtonInput:
    """A button; ``on_edge(pressed)`` runs on a gpiozero thread (or the caller's)."""

    def __init__(self, name: ButtonName, device: Any, pressed_is_high: bool) -> None:
        self.name = name
        self.device = device
        self.pressed_is_high = pressed_is_high
        # Presses made by the web page or the demo on a box with real buttons.
        self.virtual_down = False

    def watch(self, on_edge: Callable[[bool], None]) -> None:
        if self.device is None:
            return
        self.device.when_activated = lambda: on_edge(True)
        self.device.when_deactivated = lambda: on_edge(False)

    @property
    def pressed(self) -> bool:
        """The level now (debounce happens in the controller)."""
        real = bool(self.device.is_active) if self.device is not None else False
        return real or self.virtual_down

    def drive(self, pressed: bool) -> bool:
        """Move a mock pin as a finger would. False when the pin is not a mock pin."""
        pin = getattr(self.device, "pin", None)
        if pin is None or not hasattr(pin, "drive_high"):
            return False
        if pressed == self.pressed_is_high:
            pin.drive_high()
        else:
            pin.drive_low()
        return True

    def close(self) -> None:
        if self.device is not None:
            self.device.when_activated = None
            self.device.when_deactivated = None
            self.device.close()


class Hardware:
    """The four devices, built from config (or none of them when the panel is disabled)."""

    def __init__(self, config: PanelConfig) -> None:
        self.config = config
        self.factory: Any = None
        self.factory_name = "none"
        self.buzzer = BuzzerOutput(None, config.buzzer_type == "passive")
        self.led = LedOutput(None)
        self.accept = ButtonInput("accept", None, config.pressed_is_high)
        self.cancel = ButtonInput("cancel", None, config.pressed_is_high)

    def open(self) -> None:
        """Claim the pins. Raises :class:`PanelError` with a message for the operator."""
        if not self.config.enabled:
            log.info("panel: GPIO disabled; buttons only from the web page")
            return
        from gpiozero import LED, Buzzer, PWMOutputDevice
        from gpiozero import Button as GpioButton

        c = self.config
        self.factory = make_pin_factory(c.pin_factory)
        self.factory_name = type(self.factory).__name__
        pull_up: bool | None = {"up": True, "down": False, "off": None}[c.button_pull]
        active_state = c.pressed_is_high if pull_up is None else None
        opened: list[Any] = []
        try:
            for button, pin in ((self.accept, c.accept_pin), (self.cancel, c.cancel_pin)):
                button.device = GpioButton(
                    pin,
                    pull_up=pull_up,
                    active_state=active_state,
                    bounce_time=None,
                    hold_time=c.accept_hold,
                    pin_factory=self.factory,
                )
                opened.append(button.device)
            if c.buzzer_type == "passive":
                self.buzzer.device = PWMOutputDevice(
                    c.buzzer_pin,
                    active_high=c.buzzer_active_high,
                    initial_value=0,
                    frequency=2000,
                    pin_factory=self.factory,
                )
            else:
                self.buzzer.device = Buzzer(
                    c.buzzer_pin,
                    active_high=c.buzzer_active_high,
                    initial_value=False,
                    pin_factory=self.factory,
                )
            opened.append(self.buzzer.device)
            self.led.device = LED(
                c.led_pin,
                active_high=c.led_active_high,
                initial_value=False,
                pin_factory=self.factory,
            )
            opened.append(self.led.device)
        except Exception as exc:
            for device in opened:
                device.close()
            self.accept.device = self.cancel.device = None
            self.buzzer.device = self.led.device = None
            hint = ""
            if c.buzzer_type == "passive" and "PWM" in type(exc).__name__:
                hint = " (a passive buzzer needs a PWM-capable pin)"
            raise PanelError(f"panel: cannot claim the GPIO pins: {exc}{hint}") from exc
        log.info(
            "panel: %s; ACCEPT GPIO%d, CANCEL GPIO%d, %s buzzer GPIO%d, LED GPIO%d",
            self.factory_name,
            c.accept_pin,
            c.cancel_pin,
            c.buzzer_type,
            c.buzzer_pin,
            c.led_pin,
        )

    def close(self) -> None:
        """Release the pins; the buzzer and LED end off."""
        parts: list[BuzzerOutput | LedOutput | ButtonInput] = [
            self.buzzer,
            self.led,
            self.accept,
            self.cancel,
        ]
        for part in parts:
            try:
                part.close()
            except Exception:
                log.exception("panel: closing a GPIO device failed")
            part.device = None
