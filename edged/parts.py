"""Parts of the daemon with one lifecycle, and the supervisor that runs them.

A *part* (Sinqro link, outbox sender, printer spooler, panel, MQTT bridge, serial bridge,
web page) is described by a :class:`PartSpec`: its name, the config sections it is built
from, and a ``build(config)`` that returns something with ``async def run()`` (or None when
the config leaves the part off). ``run`` works until it is cancelled and cleans up in its
``finally``; that cancellation is the part's stop. Queued work lives in the journal, so a
stopped part loses nothing: the next instance resumes from the same cursors and queues.

The :class:`Supervisor` (one, in the composition root) builds and runs every part:

* a part that raises is shown ``failed`` (state key ``part.NAME``, which the page, the LED,
  ``/health`` and the MQTT bridge read) and restarted with backoff; the other parts never
  notice;
* :meth:`Supervisor.apply` takes a new config and restarts only the parts whose sections
  changed, and reports per part what happened (``applied``, or the error of the part that
  could not start);
* only the supervisor itself failing (a bug here) ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from edged.config import Config
from edged.state import BoxState, part_key

log = logging.getLogger(__name__)

# Restart backoff after a crash: doubles from the first to the last, reset by a long run.
RESTART_FIRST = 0.5
RESTART_MAX = 60.0
STABLE_AFTER = 60.0
# How long apply() watches a restarted part for an immediate failure before reporting.
START_GRACE = 0.5

PartState = Literal["starting", "running", "failed", "disabled", "stopped"]
P = TypeVar("P")


class Runnable(Protocol):
    """What a part's ``build`` returns: it runs until cancelled.

    The part owns its wiring: it subscribes to the journal and the box state in ``run``
    (or ``start``) and unsubscribes in its ``finally``, so a stopped instance leaves no
    listener behind. An instance that also has ``async def start()`` is started first: the
    part counts as running (and the daemon as ready) only once ``start`` returned, e.g. the
    web page is listening (a ``start`` that fails cleans up after itself). Its ``run`` then
    serves until cancelled.
    """

    async def run(self) -> None: ...


@dataclass(frozen=True)
class PartSpec:
    """How to make one part.

    ``sections`` are the :class:`~edged.config.Config` attributes the part is built from:
    a saved change to any of them restarts it. ``build`` returns None when the config
    leaves the part off. ``restart_detached``: the restart must not be awaited by whoever
    asked for it (the web page restarting itself from inside a request).
    """

    name: str
    sections: tuple[str, ...]
    build: Callable[[Config], Runnable | None]
    restart_detached: bool = False


@dataclass
class _Slot:
    spec: PartSpec
    task: asyncio.Task[None] | None = None
    instance: Runnable | None = None
    state: PartState = "stopped"
    error: str = ""
    restarts: int = 0
    since: float = field(default_factory=time.time)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    retry_now: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Runs every part; restarts crashed ones with backoff and changed ones on apply()."""

    def __init__(
        self,
        config: Config,
        state: BoxState,
        specs: Iterable[PartSpec],
        *,
        start_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        # Called with the part's name before each build: tests inject start faults here.
        self.start_hook = start_hook
        self._slots = {spec.name: _Slot(spec) for spec in specs}
        self._tg: asyncio.TaskGroup | None = None
        self._started = asyncio.Event()

    # -- reading -----------------------------------------------------------------------------

    def health(self) -> dict[str, dict[str, Any]]:
        """Per part: ``state``, ``error`` (empty unless failed), ``restarts``, ``since``."""
        return {name: self._health(slot) for name, slot in self._slots.items()}

    def failed(self) -> list[str]:
        return [name for name, slot in self._slots.items() if slot.state == "failed"]

    def instance(self, name: str) -> Runnable | None:
        """The instance of part ``name`` built last (None while it is off or being built)."""
        slot = self._slots.get(name)
        return slot.instance if slot is not None else None

    def part(self, name: str, kind: type[P]) -> P | None:
        """:meth:`instance`, typed: the instance of ``name`` when it is a ``kind``."""
        instance = self.instance(name)
        return instance if isinstance(instance, kind) else None

    @staticmethod
    def _health(slot: _Slot) -> dict[str, Any]:
        return {
            "state": slot.state,
            "error": slot.error,
            "restarts": slot.restarts,
            "since": slot.since,
        }

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start every part and keep them running until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for slot in self._slots.values():
                self._launch(slot)
            await asyncio.Event().wait()

    async def started(self) -> None:
        """Wait until every part has started once (running, disabled or failed)."""
        await self._started.wait()

    def _launch(self, slot: _Slot) -> None:
        assert self._tg is not None
        slot.task = self._tg.create_task(self._keep(slot), name=f"part-{slot.spec.name}")

    def _set(self, slot: _Slot, state: PartState, error: str = "") -> None:
        if state != slot.state or error != slot.error:
            slot.since = time.time()
        slot.state = state
        slot.error = error
        self.state.set(part_key(slot.spec.name), self._health(slot))
        slot.changed.set()
        if all(s.state not in ("starting", "stopped") for s in self._slots.values()):
            self._started.set()

    async def _keep(self, slot: _Slot) -> None:
        """Build and run one part forever, restarting it with backoff when it fails."""
        name = slot.spec.name
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            self._set(slot, "starting")
            slot.instance = None
            began = loop.time()
            try:
                if self.start_hook is not None:
                    self.start_hook(name)
                instance = slot.spec.build(self.config)
            except Exception as exc:
                log.error("part %s could not start: %s", name, exc, exc_info=exc)
                error = f"could not start: {_describe(exc)}"
            else:
                if instance is None:
                    self._set(slot, "disabled")
                    await asyncio.Event().wait()
                    return  # not reached: a disabled part waits until it is restarted
                slot.instance = instance
                try:
                    start = getattr(instance, "start", None)
                    if start is not None:
                        await start()
                    self._set(slot, "running")
                    await instance.run()
                    error = "stopped by itself"
                    log.error("part %s ended on its own; restarting it", name)
                except Exception as exc:
                    log.error("part %s failed: %s", name, exc, exc_info=exc)
                    error = _describe(exc)
            if loop.time() - began >= STABLE_AFTER:
                failures = 0
            delay = min(RESTART_MAX, RESTART_FIRST * 2**failures)
            failures += 1
            slot.restarts += 1
            self._set(slot, "failed", error)
            slot.retry_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await slot.retry_now.wait()

    # -- changing ----------------------------------------------------------------------------

    def changed_parts(self, old: Config, new: Config) -> list[str]:
        """Names of the parts whose config sections differ between ``old`` and ``new``."""
        return [
            name
            for name, slot in self._slots.items()
            if any(getattr(old, s) != getattr(new, s) for s in slot.spec.sections)
        ]

    async def apply(self, new: Config) -> dict[str, str]:
        """Use ``new`` from now on; restart the parts whose sections changed.

        Returns ``{part: "applied" | "restarting" | error}`` for each restarted part (an
        unchanged part is not listed). Queued work is in the journal: nothing is lost.
        """
        old, self.config = self.config, new
        report: dict[str, str] = {}
        for name in self.changed_parts(old, new):
            slot = self._slots[name]
            if slot.spec.restart_detached:
                asyncio.get_running_loop().create_task(self._restart(slot), name=f"restart-{name}")
                report[name] = "restarting"
                continue
            report[name] = await self._restart(slot)
        if report:
            log.info("settings applied: %s", ", ".join(f"{k}: {v}" for k, v in report.items()))
        return report

    async def _restart(self, slot: _Slot) -> str:
        name = slot.spec.name
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task
        if self._tg is None:
            return "saved; applies at start"
        log.info("part %s: restarting with the new settings", name)
        slot.changed.clear()
        self._launch(slot)
        # Wait for the new instance to be built, then give it a moment to fail at once.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_GRACE
        while slot.state in ("starting", "stopped") or loop.time() < deadline:
            if slot.state == "failed":
                break
            slot.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - loop.time()) or START_GRACE):
                    await slot.changed.wait()
        if slot.state == "failed":
            return slot.error or "failed"
        return "applied"

    def retry_failed(self) -> None:
        """Try failed parts again now, without waiting for their backoff."""
        for slot in self._slots.values():
            slot.retry_now.set()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
