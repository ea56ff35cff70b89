"""Pattern data, the LED state table and the controllable clock (no GPIO, no journal)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edged.clock import FakeClock, RealClock, wait_first
from edged.panel.patterns import (
    ACTIVE_PATTERNS,
    ALERTS,
    ANSWERS,
    LED_PATTERNS,
    PASSIVE_PATTERNS,
    buzzer_table,
    led_state,
    led_table_markdown,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "panel.md"


def test_both_buzzer_tables_have_every_pattern() -> None:
    for table in (ACTIVE_PATTERNS, PASSIVE_PATTERNS):
        assert set(table) == set(ALERTS) | set(ANSWERS)
        for pattern in table.values():
            assert pattern.steps and all(seconds > 0 for _, seconds in pattern.steps)
            assert pattern.steps[0][0] > 0, "a pattern starts with sound (latency)"
            assert pattern.steps[-1][0] > 0, "trailing silence belongs in repeat_after"
    # Escalated is faster and longer than waiting.
    for table in (ACTIVE_PATTERNS, PASSIVE_PATTERNS):
        esc, wait = table["escalated"], table["waiting"]
        assert esc.repeat_after is not None and wait.repeat_after is not None
        assert esc.repeat_after < wait.repeat_after
        assert esc.duration > wait.duration
    # Answers are short so they never hide an alert for long.
    assert all(ACTIVE_PATTERNS[name].duration <= 1.0 for name in ANSWERS)


def test_passive_patterns_tell_answers_apart_by_pitch() -> None:
    first = {name: PASSIVE_PATTERNS[name].steps[0][0] for name in ("confirm", "refused", "error")}
    assert first["confirm"] > 1000 > first["refused"] and first["error"] < 1000


def test_repeat_every_overrides_only_waiting() -> None:
    table = buzzer_table("active", 12.0)
    assert table["waiting"].repeat_after == 12.0
    assert table["escalated"] == ACTIVE_PATTERNS["escalated"]
    assert buzzer_table("passive")["new_order"] == PASSIVE_PATTERNS["new_order"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"link": "starting"}, "starting"),
        ({"link": "online"}, "online"),
        ({"link": "polling"}, "online"),
        ({"link": "offline", "queued_commands": 2}, "offline"),
        ({"link": "not_paired"}, "not_paired"),
        ({"link": "unauthorized"}, "not_paired"),
        ({"link": "offline", "printer.k": {"state": "paper_out"}}, "printer_problem"),
        ({"link": "online", "printer.k": {"state": "unknown"}}, "online"),
        ({"link": "not_paired", "printer.k": {"state": "offline"}}, "printer_problem"),
        (
            {"link": "offline", "printer.k": {"state": "cover_open"}, "waiting_orders": 1},
            "orders_waiting",
        ),
    ],
)
def test_led_state_priorities(values: dict[str, object], expected: str) -> None:
    assert led_state(values) == expected


def test_led_table_is_documented() -> None:
    priorities = sorted(p.priority for p in LED_PATTERNS.values())
    assert priorities == list(range(1, len(LED_PATTERNS) + 1))
    table = led_table_markdown()
    text = DOCS.read_text(encoding="utf-8")
    assert table in text, "docs/panel.md must carry the LED table as generated"


# -- the clock ----------------------------------------------------------------------------------


async def test_fake_clock_fires_timers_in_order_and_lets_sleepers_chain() -> None:
    clock = FakeClock(start=0.0)
    seen: list[tuple[str, float]] = []

    async def ticker(name: str, every: float, times: int) -> None:
        for _ in range(times):
            await clock.sleep(every)
            seen.append((name, clock.monotonic()))

    a = asyncio.create_task(ticker("a", 0.3, 4))
    b = asyncio.create_task(ticker("b", 0.5, 2))
    await clock.advance(1.0)
    assert [name for name, _ in seen] == ["a", "b", "a", "a", "b"]
    assert [t for _, t in seen] == pytest.approx([0.3, 0.5, 0.6, 0.9, 1.0])
    assert clock.monotonic() == 1.0
    await clock.advance(0.25)
    assert seen[-1][0] == "a" and seen[-1][1] == pytest.approx(1.2)
    await asyncio.gather(a, b)
    assert clock.pending == 0


async def test_fake_clock_cancelled_timer_never_fires() -> None:
    clock = FakeClock()
    timer = clock.timer(1.0)
    timer.cancel()
    assert clock.next_deadline() is None
    await clock.advance(2.0)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_wait_first() -> None:
    clock = FakeClock()
    loop = asyncio.get_running_loop()
    wake: asyncio.Future[None] = loop.create_future()
    waiter = asyncio.create_task(wait_first(clock, wake, 5.0))
    await clock.advance(1.0)
    assert not waiter.done()
    wake.set_result(None)
    assert await waiter is True
    assert clock.pending == 0, "the timer is cleaned up"
    other: asyncio.Future[None] = loop.create_future()
    waiter = asyncio.create_task(wait_first(clock, other, 2.0))
    await clock.advance(2.0)
    assert await waiter is False


async def test_real_clock_timer_and_sleep() -> None:
    clock = RealClock()
    before = clock.monotonic()
    await clock.timer(0.01)
    await clock.sleep(0.0)
    assert clock.monotonic() >= before
    timer = clock.timer(10.0)
    timer.cancel()  # no handle is left behind to fire later
