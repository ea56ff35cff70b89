"""The demo's terminal panel: the LED and buzzer live, and keys for the two buttons.

On a terminal, one status line is redrawn in place (the LED blinks in it) and single keys
press the buttons (they drive the mock pins, so gpiozero sees real edges):

====  =========================================
key   press
====  =========================================
a     ACCEPT, short (default delay)
A     ACCEPT, long (``orders.long_press_delay``)
c     CANCEL, short: silence the buzzer
C     CANCEL, long: cancel the oldest waiting order
b     both buttons: acknowledge all
B     both held: setup ticket
?     this help
====  =========================================

Without a terminal (a headless demo, stdin from /dev/null, output to a log) it reads no
keys and prints one line each time the LED state or the buzzer pattern changes.

The status line shares the terminal with the demo's event lines and with log warnings: all
of them go through one :class:`Terminal`, which prints every line above the status line
(never glued onto it) and draws the status line again below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from edged.i18n import N_, Locale
from edged.panel.controller import Panel, VirtualButton
from edged.state import BoxState

log = logging.getLogger(__name__)

HELP = N_("keys: a/A accept short/long, c silence, C cancel (long), b both, B setup hold, ? help")

# What the demo terminal says for the panel's internal names (LED states, buzzer patterns,
# buttons, press results), in the box's language: staff and owners try the demo too.
WORDS: dict[str, str] = {
    # LED states (edged.panel.patterns.LED_PATTERNS)
    "orders_waiting": N_("order waiting"),
    "journal_problem": N_("storage problem"),
    "printer_problem": N_("printer problem"),
    "part_failed": N_("part failed"),
    "not_paired": N_("not paired"),
    "offline": N_("offline"),
    "starting": N_("starting"),
    "online": N_("online"),
    # buzzer patterns (edged.panel.patterns.ACTIVE_PATTERNS)
    "new_order": N_("new order"),
    "waiting": N_("waiting"),
    "escalated": N_("waiting too long"),
    "confirm": N_("confirmed"),
    "tick": N_("tick"),
    "quiet": N_("quiet"),
    # buttons
    "accept": N_("ACCEPT"),
    "cancel": N_("CANCEL"),
    "both": N_("both buttons"),
    # press results (edged.panel.controller.RESULTS); "queued", "refused", "error" also
    # name buzzer patterns
    "accepted": N_("accepted"),
    "cancelled": N_("cancelled"),
    "queued": N_("queued"),
    "refused": N_("refused"),
    "silenced": N_("silenced"),
    "setup": N_("setup ticket"),
    "ignored": N_("ignored"),
    "error": N_("error"),
}


def word(name: object, locale: Locale) -> str:
    """``name`` in words in ``locale``'s language; an unknown name as it is."""
    text = WORDS.get(str(name))
    return locale.gettext(text) if text else str(name)


REDRAW = 0.1  # seconds between redraws on a terminal: enough to see a 0.2 s blink


class Terminal:
    """One terminal for whole lines and, when it is live, one status line below them."""

    CLEAR = "\r\x1b[2K"  # back to the line's start, erase it

    def __init__(self, stdout: TextIO, *, live: bool | None = None) -> None:
        self.stdout = stdout
        self.live = _isatty(stdout) if live is None else live
        self.status = ""

    def line(self, text: str) -> None:
        """A whole line (an event, a press, a log record), above the status line."""
        if self.live and self.status:
            _write(self.stdout, f"{self.CLEAR}{text}\n{self.status}")
        else:
            _write(self.stdout, text + "\n")

    def show(self, status: str) -> None:
        """Replace the status line (only on a live terminal)."""
        if self.live and status != self.status:
            self.status = status
            _write(self.stdout, self.CLEAR + status)

    def close(self) -> None:
        """Leave the status line where it is and move below it."""
        if self.live and self.status:
            _write(self.stdout, "\n")
        self.status = ""


class LineStream:
    """A file-like object for a log handler: each complete line goes to a
    :class:`Terminal` (so a warning never lands in the middle of the status line)."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self.terminal.line(line)
        return len(text)

    def flush(self) -> None:
        pass


def _panel_locale(panel: Panel) -> Locale:
    return Locale(getattr(panel, "language", "en"))


def key_press(panel: Panel, key: str) -> tuple[VirtualButton, float] | None:
    """The press a key stands for (button, seconds), or None."""
    c = panel.config
    margin = 0.2
    presses: dict[str, tuple[VirtualButton, float]] = {
        "a": ("accept", 0.2),
        "A": ("accept", c.accept_hold + margin),
        "c": ("cancel", 0.2),
        "C": ("cancel", c.cancel_hold + margin),
        "b": ("both", 0.3),
        "B": ("both", c.setup_hold + margin),
    }
    return presses.get(key)


def status_line(snapshot: dict[str, Any], *, color: bool, locale: Locale | None = None) -> str:
    """One line: LED lamp and state, buzzer, buttons, last result."""
    locale = locale or Locale()
    _ = locale.gettext
    led = snapshot["led"]
    buzzer = snapshot["buzzer"]
    lamp = "●" if led["on"] else "○"
    if color and led["on"]:
        lamp = f"\x1b[1;32m{lamp}\x1b[0m"
    note = "♪" if buzzer["on"] else " "
    pressed = [word(name, locale) for name, down in snapshot["buttons"].items() if down]
    last = snapshot.get("last_press") or {}
    parts = [
        f"{_('LED')} {lamp} {word(led['state'], locale):<16}",
        f"{_('buzzer')} {note} {word(buzzer['pattern'] or 'quiet', locale):<16}",
        f"{_('buttons')} {'+'.join(pressed) or '-':<13}",
    ]
    if last:
        parts.append(_("last: {result}").format(result=word(last.get("result"), locale)))
    return " | ".join(parts)


async def run_terminal_panel(
    panel: Panel,
    state: BoxState,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    terminal: Terminal | None = None,
) -> None:
    """Show the panel and take key presses until cancelled. Never fails on a non-TTY.

    ``terminal``: the one shared with the demo's event lines (default: one on ``stdout``).
    """
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    terminal = terminal if terminal is not None else Terminal(stdout)
    if _isatty(stdin) and terminal.live:
        await _interactive(panel, stdin, terminal)
    else:
        await _headless(panel, state, terminal)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


async def _headless(panel: Panel, state: BoxState, terminal: Terminal) -> None:
    """Print a line when the LED state or buzzer pattern changes."""
    locale = _panel_locale(panel)
    _ = locale.gettext
    changed = asyncio.Event()

    def on_change(key: str, value: Any) -> None:
        if key in ("panel.led", "panel.buzzer"):
            changed.set()

    state.watch(on_change)
    last = ""
    while True:
        await changed.wait()
        changed.clear()
        line = _("  PANEL   LED {led}, buzzer {buzzer}").format(
            led=word(state.get("panel.led", "-"), locale),
            buzzer=word(state.get("panel.buzzer", "-"), locale),
        )
        if line != last:
            last = line
            terminal.line(line)


def _write(stdout: TextIO, text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed or broken terminal
        stdout.write(text)
        stdout.flush()


async def _interactive(panel: Panel, stdin: TextIO, terminal: Terminal) -> None:
    import termios
    import tty

    loop = asyncio.get_running_loop()
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    keys: asyncio.Queue[str] = asyncio.Queue(maxsize=16)

    def readable() -> None:
        try:
            data = os.read(fd, 32).decode("utf-8", "replace")
        except OSError:
            data = ""
        if not data:  # EOF: stop reading, keep showing
            loop.remove_reader(fd)
            return
        for ch in data:
            with contextlib.suppress(asyncio.QueueFull):  # a key mashed faster than presses
                keys.put_nowait(ch)

    tty.setcbreak(fd)
    loop.add_reader(fd, readable)
    terminal.line(_panel_locale(panel).gettext(HELP))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_redraw(panel, terminal), name="terminal-panel-redraw")
            tg.create_task(_presses(panel, keys, terminal.line), name="terminal-keys")
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        terminal.close()


async def _redraw(panel: Panel, terminal: Terminal) -> None:
    while True:
        terminal.show(status_line(panel.snapshot(), color=True, locale=_panel_locale(panel)))
        await asyncio.sleep(REDRAW)


async def _presses(panel: Panel, keys: asyncio.Queue[str], say: Callable[[str], None]) -> None:
    """One press at a time, in key order."""
    while True:
        key = await keys.get()
        _ = _panel_locale(panel).gettext
        if key in ("?", "h"):
            say(_(HELP))
            continue
        press = key_press(panel, key)
        if press is None:
            continue
        button, seconds = press
        try:
            result = await panel.virtual_press(button, seconds)
        except Exception as exc:  # the demo keeps going whatever a press did
            log.warning("terminal panel: press failed: %s", exc)
            continue
        say(
            _("  PRESS    {button} {seconds} s -> {result}").format(
                button=word(button, _panel_locale(panel)),
                seconds=_panel_locale(panel).number(seconds, 1),
                result=word(result, _panel_locale(panel)),
            )
        )
