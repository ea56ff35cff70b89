"""``edged failure-led``: the loud log line and the LED's failure pattern (gpiozero mock pins)."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from edged import failure

REPO = Path(__file__).resolve().parents[2]


def test_blink_plays_the_failure_pattern_and_ends_dark() -> None:
    factory = MockFactory()
    led = LED(23, pin_factory=factory)
    pin = factory.pin(23)
    slept: list[float] = []
    periods = failure.blink(
        led, until=lambda: len(slept) >= 2 * len(failure.FAILURE_PATTERN), sleep=slept.append
    )
    assert periods == 2
    states = [s.state for s in pin.states][1:]  # the first is the pin's initial state
    flashes = [on for on, _ in failure.FAILURE_PATTERN]
    # Each step sets the pin; gpiozero records only changes of level.
    changes = [flashes[0]] + [b for a, b in itertools.pairwise(flashes) if a != b]
    assert [bool(s) for s in states[: len(changes)]] == changes
    assert sum(1 for s in states if s) == 2 * flashes.count(True)
    assert slept[: len(failure.FAILURE_PATTERN)] == [t for _, t in failure.FAILURE_PATTERN]
    assert not pin.state  # left off
    led.close()


def test_active_low_led_and_pin_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(
        '[sinqro]\nserver_token = "t"\n[panel]\nled_pin = 17\nled_active_high = false\n'
        'pin_factory = "mock"\n'
    )
    panel = failure.panel_settings(config)
    assert (panel.led_pin, panel.led_active_high) == (17, False)
    factory = MockFactory()
    led = failure._led(panel, factory)
    led.on()
    assert factory.pin(17).state == 0  # active low: on is a low pin
    led.close()


def test_run_blinks_for_the_retry_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "edged.toml"
    config.write_text('[sinqro]\nserver_token = "t"\n[panel]\npin_factory = "mock"\n')
    factory = MockFactory()
    with caplog.at_level(logging.INFO):
        assert failure.run(config, 0.5, pin_factory=factory) == 0
    pin = factory.pin(23)
    assert any(s.state for s in pin.states)  # it flashed
    assert not pin.state
    crit = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert crit and "NOT being taken" in crit[0].getMessage()


def test_only_the_panel_section_matters(tmp_path: Path) -> None:
    # No token (this unit gets no secrets) and a bad key elsewhere: the LED pin still counts.
    config = tmp_path / "edged.toml"
    config.write_text("[sinqro]\nnot_a_key = 1\n[panel]\nled_pin = 24\n")
    dropins = tmp_path / "edged.toml.d"
    dropins.mkdir()
    (dropins / "50-provision.toml").write_text("[panel]\nled_pin = 25\n")
    assert failure.panel_settings(config).led_pin == 25


def test_a_bad_panel_section_still_blinks_the_default_pin(tmp_path: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text("[panel]\nled_pin = 99\n")
    assert failure.panel_settings(config).led_pin == 23
    config.write_text("not toml [")
    assert failure.panel_settings(config).led_pin == 23


def test_announce_says_what_systemd_reported() -> None:
    line = failure.announce(
        {
            "MONITOR_UNIT": "edged.service",
            "MONITOR_SERVICE_RESULT": "start-limit-hit",
            "MONITOR_EXIT_CODE": "exited",
            "MONITOR_EXIT_STATUS": "1",
        }
    )
    assert "edged.service FAILED (start-limit-hit, last exit: exited 1)" in line


def test_alarm_only_when_the_unit_stays_down() -> None:
    def states(*seq: tuple[str, str]) -> Callable[[str], tuple[str, str]]:
        it = iter(seq)
        return lambda unit: next(it)

    slept: list[float] = []
    # A crash a restart cures (systemd >= 254 calls OnFailure= for it too): no alarm.
    cured = states(("failed", "auto-restart"), ("activating", "start"), ("active", "running"))
    assert not failure.down_for_good("edged.service", state=cured, sleep=slept.append)
    # The start limit was hit, or exit 78: failed with no restart to come.
    for_good = states(("activating", "auto-restart-queued"), ("failed", "failed"))
    assert failure.down_for_good("edged.service", state=for_good, sleep=slept.append)
    # Still restarting when patience runs out: the next failure asks again.
    looping = lambda unit: ("activating", "start")  # noqa: E731
    assert not failure.down_for_good("edged.service", state=looping, sleep=slept.append, patience=3)


def test_unit_state_reads_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = tmp_path / "systemctl"
    stand_in.write_text("#!/bin/sh\necho ActiveState=failed\necho SubState=failed\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert failure.unit_state("edged.service") == ("failed", "failed")
