"""The box's voice when the daemon cannot stay up: ``edged failure-led``.

systemd starts ``edged-failure.service`` (``OnFailure=`` of ``edged.service``) once the
daemon has crashed often enough to hit the unit's start limit, or refused its config. This
command then logs one loud line (priority CRIT in the journal, with what systemd says about
the failure) and blinks the panel LED in the failure pattern, a triple flash every two
seconds that no other state uses, for ``--retry-after`` seconds. When it ends normally the
unit starts ``edged.service`` again: a restaurant box must come back on its own.

The LED is driven through gpiozero with the panel's own settings (pin, polarity, pin
factory). When the config cannot be read (a bad config is one reason to be here) the
defaults are used.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edged.configtools import ConfigError, build, merge
from edged.panel.settings import PanelConfig

log = logging.getLogger(__name__)

#: (LED on?, seconds) steps of one period: three short flashes, then dark.
FAILURE_PATTERN: tuple[tuple[bool, float], ...] = (
    (True, 0.15),
    (False, 0.15),
    (True, 0.15),
    (False, 0.15),
    (True, 0.15),
    (False, 1.25),
)

#: What systemd tells an OnFailure= unit about the unit that failed (systemd >= 251).
MONITOR_VARIABLES = ("MONITOR_UNIT", "MONITOR_SERVICE_RESULT", "MONITOR_EXIT_CODE")


def panel_settings(config_path: Path) -> PanelConfig:
    """The ``[panel]`` section of the box's config (every layer: file, drop-ins, the web
    page's settings), or the defaults when it cannot be read. Only that section is checked:
    this unit gets no secrets, and the rest of the config may be why edged failed."""
    from edged.config import layers

    try:
        merged: dict[str, Any] = {}
        for _, doc in layers(config_path):
            merged = merge(merged, doc)
        panel = merged.get("panel", {})
        return build(
            PanelConfig,
            panel if isinstance(panel, dict) else {},
            file=str(config_path),
            where="panel",
        )
    except (ConfigError, OSError) as exc:
        log.error("failure LED: cannot read %s (%s); using the default LED pin", config_path, exc)
        return PanelConfig()


def unit_state(unit: str) -> tuple[str, str]:
    """(ActiveState, SubState) of ``unit``, as systemd reports them."""
    out = subprocess.run(
        ["systemctl", "show", unit, "-p", "ActiveState", "-p", "SubState"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    props = dict(line.partition("=")[::2] for line in out.splitlines())
    return props.get("ActiveState", ""), props.get("SubState", "")


def down_for_good(
    unit: str,
    *,
    state: Callable[[str], tuple[str, str]] = unit_state,
    sleep: Callable[[float], Any] = time.sleep,
    patience: float = 60.0,
) -> bool:
    """True when ``unit`` has stopped and systemd will not restart it by itself.

    systemd 254 and later run ``OnFailure=`` on every crash, also one a restart cures; the
    alarm waits while a restart is pending or running and answers once the unit settled:
    running (False) or failed without a restart to come (True). Still restarting after
    ``patience`` seconds: False (the next failure asks again).
    """
    waited = 0.0
    while True:
        active, sub = state(unit)
        if active in ("active", "reloading"):
            return False
        if active in ("failed", "inactive") and not sub.startswith("auto-restart"):
            return True
        if waited >= patience:
            return False
        sleep(1.0)
        waited += 1.0


def announce(environ: dict[str, str] | None = None) -> str:
    """Log the failure loudly and return the line logged."""
    env = os.environ if environ is None else environ
    unit = env.get("MONITOR_UNIT", "edged.service")
    result = env.get("MONITOR_SERVICE_RESULT", "unknown")
    code = env.get("MONITOR_EXIT_CODE", "")
    status = env.get("MONITOR_EXIT_STATUS", "")
    how = f"{code} {status}".strip() or "unknown"
    line = (
        f"{unit} FAILED ({result}, last exit: {how}): orders are NOT being taken. "
        f"See: journalctl -u {unit} -b"
    )
    log.critical("%s", line)
    return line


def blink(
    led: Any,
    *,
    until: Callable[[], bool],
    sleep: Callable[[float], Any] = time.sleep,
) -> int:
    """Play :data:`FAILURE_PATTERN` on ``led`` (a gpiozero LED) until ``until()`` is true.

    Returns the number of periods played; leaves the LED off.
    """
    periods = 0
    try:
        while not until():
            for on, seconds in FAILURE_PATTERN:
                led.on() if on else led.off()
                sleep(seconds)
            periods += 1
    finally:
        led.off()
    return periods


def run(config_path: Path, retry_after: float, *, pin_factory: Any = None) -> int:
    """Announce, blink for ``retry_after`` seconds (0: until stopped), return 0."""
    announce()
    panel = panel_settings(config_path)
    deadline = time.monotonic() + retry_after if retry_after > 0 else None
    stop = threading.Event()

    def until() -> bool:
        return stop.is_set() or (deadline is not None and time.monotonic() >= deadline)

    led = None
    if panel.enabled:
        try:
            led = _led(panel, pin_factory)
        except Exception as exc:  # no GPIO on this machine: still log and wait
            log.error("failure LED: cannot drive GPIO%d: %s", panel.led_pin, exc)
    if led is None:
        while not until():
            stop.wait(1.0)
        return 0
    try:
        blink(led, until=until, sleep=stop.wait)
    finally:
        led.close()
    log.warning("failure LED: %.0f s passed; edged is started again", retry_after)
    return 0


def _led(panel: PanelConfig, pin_factory: Any) -> Any:
    from gpiozero import LED

    from edged.panel.gpio import make_pin_factory

    factory = pin_factory if pin_factory is not None else make_pin_factory(panel.pin_factory)
    return LED(panel.led_pin, active_high=panel.led_active_high, pin_factory=factory)
