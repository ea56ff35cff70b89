"""Config schema of the ``[panel]`` table (owned by the panel package).

Pins are BCM numbers (``GPIO17`` is ``17``). See docs/panel.md for wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edged.configtools import opt

_PIN = opt(minimum=0, maximum=53, doc="BCM pin number")


@dataclass(frozen=True)
class PanelConfig:
    """Buzzer, LED and the ACCEPT / CANCEL buttons."""

    enabled: bool = field(
        default=True,
        metadata=opt(doc="Drive the GPIO pins; when false the panel logic still runs (web)"),
    )
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = field(
        default="auto", metadata=opt(doc="gpiozero pin factory; mock for the demo and tests")
    )
    accept_pin: int = field(default=5, metadata=_PIN)
    cancel_pin: int = field(default=6, metadata=_PIN)
    button_pull: Literal["up", "down", "off"] = field(
        default="up",
        metadata=opt(doc="Internal pull resistor on the button pins (off: external resistor)"),
    )
    button_active: Literal["auto", "low", "high"] = field(
        default="auto",
        metadata=opt(doc="Level of a pressed button; auto follows the pull (up: low)"),
    )
    buzzer_pin: int = field(default=18, metadata=_PIN)
    buzzer_type: Literal["active", "passive"] = field(
        default="active",
        metadata=opt(doc="active: on/off buzzer with its own oscillator; passive: PWM tones"),
    )
    buzzer_active_high: bool = True
    led_pin: int = field(default=23, metadata=_PIN)
    led_active_high: bool = True
    bounce_time: float = field(
        default=0.05, metadata=opt(minimum=0.005, maximum=0.5, doc="Debounce, seconds")
    )
    accept_hold: float = field(
        default=1.5,
        metadata=opt(minimum=0.5, maximum=10, doc="ACCEPT held this long is a long press"),
    )
    cancel_hold: float = field(
        default=2.0,
        metadata=opt(minimum=2.0, maximum=10, doc="CANCEL must be held this long to cancel"),
    )
    setup_hold: float = field(
        default=5.0,
        metadata=opt(minimum=3.0, maximum=30, doc="Both buttons held this long: setup ticket"),
    )
    max_hold: float = field(
        default=15.0,
        metadata=opt(minimum=5.0, maximum=120, doc="A longer press is taken as a stuck button"),
    )
    repeat_every: float = field(
        default=5.0,
        metadata=opt(minimum=2.0, maximum=600, doc="Gap between rings while an order waits"),
    )
    escalate_after: float = field(
        default=120.0,
        metadata=opt(minimum=5.0, maximum=3600, doc="Ring faster once an order waited this long"),
    )
    command_wait: float = field(
        default=3.0,
        metadata=opt(minimum=0.5, maximum=30, doc="How long a press waits for Sinqro's answer"),
    )

    def check(self) -> None:
        pins = {
            "accept_pin": self.accept_pin,
            "cancel_pin": self.cancel_pin,
            "buzzer_pin": self.buzzer_pin,
            "led_pin": self.led_pin,
        }
        seen: dict[int, str] = {}
        for name, pin in pins.items():
            if pin in seen:
                raise ValueError(f"{name}: GPIO{pin} is already used by {seen[pin]}")
            seen[pin] = name
        if self.button_pull == "up" and self.button_active == "high":
            raise ValueError("button_active: a pull-up button reads low when pressed")
        if self.button_pull == "down" and self.button_active == "low":
            raise ValueError("button_active: a pull-down button reads high when pressed")
        if self.button_pull == "off" and self.button_active == "auto":
            raise ValueError("button_active: say low or high when button_pull is off")
        for name in ("accept_hold", "cancel_hold", "setup_hold"):
            if getattr(self, name) >= self.max_hold:
                raise ValueError(f"{name}: must be shorter than max_hold ({self.max_hold} s)")
        if self.bounce_time * 4 > self.accept_hold:
            raise ValueError("bounce_time: too long for accept_hold")

    @property
    def pressed_is_high(self) -> bool:
        """Level of a pressed button."""
        if self.button_active == "auto":
            return self.button_pull == "down"
        return self.button_active == "high"
