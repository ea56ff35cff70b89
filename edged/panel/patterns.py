"""Buzzer and LED patterns, as data.

Buzzer
======

A :class:`BuzzerPattern` is a tuple of steps ``(frequency_hz, seconds)``; frequency 0 is a
rest. An active buzzer (its own oscillator) only switches on and off, so it has its own
table with rhythms that tell the patterns apart without pitch; a passive buzzer plays the
frequencies as PWM tones. ``repeat_after`` is the silence before an alert plays again
(``None``: play once).

=============  ====================================  =====================================
pattern        when                                   sound
=============  ====================================  =====================================
new_order      an order arrives (once)                three rising beeps
waiting        an order still waits (repeats)         two beeps every ``repeat_every`` s
escalated      it waited ``escalate_after`` s         five fast beeps, every 1.5 s
confirm        a press was done by Sinqro             one short high chirp
queued         offline: the decision is queued        two short chirps, falling
refused        nothing to do, or Sinqro said no       two long low buzzes
error          stuck button, failing setup hook       one long low buzz
tick           a hold reached its threshold           a tiny click (release now)
=============  ====================================  =====================================

LED
===

The LED shows the most important of these states (priority 1 wins). Each is a cycle of
``(on, seconds)`` steps; a single step with ``None`` seconds holds steady.

========  ================  ==================================  =============================
priority  state             when                                LED
========  ================  ==================================  =============================
1         orders_waiting    an order waits for a decision       fast blink (0.2 s on/off)
2         journal_problem   journal rebuilt, or writes fail     two long blinks every 3 s
3         printer_problem   a printer is offline/out of paper   double blink every 1.5 s
4         part_failed       a part of the box failed            triple blink every 2 s
5         not_paired        not paired, or token revoked        short flash every 2 s
6         offline           no link to Sinqro (commands queue)  slow blink (1 s on/off)
7         starting          the daemon is starting              medium blink (0.5 s on/off)
8         online            online, nothing waiting             steady on
========  ================  ==================================  =============================

``link = polling`` (websocket down, REST polling works) counts as online. An acknowledged
order still blinks the LED until it is decided: acknowledging only silences the buzzer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# -- buzzer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuzzerPattern:
    """A named rhythm: ``steps`` of ``(frequency_hz, seconds)``, 0 Hz being a rest."""

    name: str
    steps: tuple[tuple[float, float], ...]
    repeat_after: float | None = None

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.steps)


def _p(
    name: str, steps: tuple[tuple[float, float], ...], repeat_after: float | None = None
) -> BuzzerPattern:
    return BuzzerPattern(name, steps, repeat_after)


ON = 1.0  # any non-zero frequency switches an active buzzer on

ALERTS = ("new_order", "waiting", "escalated")
ANSWERS = ("confirm", "queued", "refused", "error", "tick")

ACTIVE_PATTERNS: Mapping[str, BuzzerPattern] = {
    p.name: p
    for p in (
        _p("new_order", ((ON, 0.25), (0, 0.15), (ON, 0.25), (0, 0.15), (ON, 0.5))),
        _p("waiting", ((ON, 0.2), (0, 0.2), (ON, 0.2)), repeat_after=5.0),
        _p(
            "escalated",
            ((ON, 0.12), (0, 0.08)) * 4 + ((ON, 0.4),),
            repeat_after=1.5,
        ),
        _p("confirm", ((ON, 0.08),)),
        _p("queued", ((ON, 0.06), (0, 0.1), (ON, 0.06))),
        _p("refused", ((ON, 0.4), (0, 0.15), (ON, 0.4))),
        _p("error", ((ON, 1.0),)),
        _p("tick", ((ON, 0.02),)),
    )
}

PASSIVE_PATTERNS: Mapping[str, BuzzerPattern] = {
    p.name: p
    for p in (
        _p("new_order", ((1047, 0.2), (0, 0.05), (1319, 0.2), (0, 0.05), (1568, 0.45))),
        _p("waiting", ((1319, 0.2), (0, 0.1), (1047, 0.3)), repeat_after=5.0),
        _p(
            "escalated",
            ((1760, 0.12), (1319, 0.12)) * 4 + ((1760, 0.3),),
            repeat_after=1.5,
        ),
        _p("confirm", ((2093, 0.08),)),
        _p("queued", ((1568, 0.07), (0, 0.05), (1047, 0.1))),
        _p("refused", ((330, 0.3), (0, 0.1), (262, 0.4))),
        _p("error", ((220, 1.0),)),
        _p("tick", ((3000, 0.02),)),
    )
}


def buzzer_table(kind: str, repeat_every: float | None = None) -> dict[str, BuzzerPattern]:
    """The patterns for an ``active`` or ``passive`` buzzer.

    ``repeat_every`` overrides the gap of the ``waiting`` alert (config ``repeat_every``).
    """
    base = dict(PASSIVE_PATTERNS if kind == "passive" else ACTIVE_PATTERNS)
    if repeat_every is not None:
        waiting = base["waiting"]
        base["waiting"] = BuzzerPattern(waiting.name, waiting.steps, repeat_every)
    return base


# -- LED ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedPattern:
    """A named LED state: a cycle of ``(on, seconds)``; ``None`` seconds holds forever."""

    name: str
    priority: int
    steps: tuple[tuple[bool, float | None], ...]
    meaning: str
    look: str


LED_PATTERNS: Mapping[str, LedPattern] = {
    p.name: p
    for p in (
        LedPattern(
            "orders_waiting",
            1,
            ((True, 0.2), (False, 0.2)),
            "an order waits for a decision",
            "fast blink",
        ),
        LedPattern(
            "journal_problem",
            2,
            ((True, 0.6), (False, 0.3), (True, 0.6), (False, 1.5)),
            "the journal was damaged and rebuilt (until dismissed on the page), or its"
            " writes fail (disk full, I/O error)",
            "two long blinks",
        ),
        LedPattern(
            "printer_problem",
            3,
            ((True, 0.15), (False, 0.15), (True, 0.15), (False, 1.05)),
            "a printer is offline, out of paper or open",
            "double blink",
        ),
        LedPattern(
            "part_failed",
            4,
            ((True, 0.15), (False, 0.15), (True, 0.15), (False, 0.15), (True, 0.15), (False, 1.25)),
            "a part of the box failed and is being restarted (see the page)",
            "triple blink",
        ),
        LedPattern(
            "not_paired",
            5,
            ((True, 0.1), (False, 1.9)),
            "the box is not paired (or its token was revoked)",
            "short flash",
        ),
        LedPattern(
            "offline",
            6,
            ((True, 1.0), (False, 1.0)),
            "no link to Sinqro; decisions are queued",
            "slow blink",
        ),
        LedPattern(
            "starting", 7, ((True, 0.5), (False, 0.5)), "the daemon is starting", "medium blink"
        ),
        LedPattern("online", 8, ((True, None),), "online, nothing waiting", "steady on"),
    )
}

PRINTER_PROBLEMS = frozenset({"offline", "paper_out", "cover_open"})


def led_state(state: Mapping[str, Any]) -> str:
    """The LED state for a :class:`~edged.state.BoxState` snapshot (highest priority wins)."""
    if int(state.get("waiting_orders") or 0) > 0:
        return "orders_waiting"
    if state.get("journal") in ("recovered", "failing"):
        return "journal_problem"
    for key, value in state.items():
        problem = isinstance(value, Mapping) and value.get("state") in PRINTER_PROBLEMS
        if key.startswith("printer.") and problem:
            return "printer_problem"
    for key, value in state.items():
        if (
            key.startswith("part.")
            and isinstance(value, Mapping)
            and value.get("state") == "failed"
        ):
            return "part_failed"
    link = state.get("link")
    if link in ("not_paired", "unauthorized"):
        return "not_paired"
    if link == "offline":
        return "offline"
    if link == "starting":
        return "starting"
    return "online"


def led_table_markdown() -> str:
    """The LED table as Markdown (docs and README)."""
    lines = ["| priority | state | when | LED |", "|---|---|---|---|"]
    for p in sorted(LED_PATTERNS.values(), key=lambda p: p.priority):
        lines.append(f"| {p.priority} | `{p.name}` | {p.meaning} | {_describe_led(p)} |")
    return "\n".join(lines)


def _describe_led(p: LedPattern) -> str:
    if len(p.steps) == 1:
        return p.look
    timing = ", ".join(f"{'on' if on else 'off'} {seconds:g} s" for on, seconds in p.steps)
    return f"{p.look} ({timing})"
