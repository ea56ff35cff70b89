"""What the web page needs from the rest of the daemon, handed over by the composition root.

The page never reaches into other packages by itself: everything it reads or changes comes
through :class:`WebServices`. Optional pieces (printer spooler, panel) are duck-typed
Protocols, so a box without them, a test or the demo can leave them out.

Callables may be plain functions or coroutines functions where noted; the server awaits
whatever is awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from edged.config import Config
from edged.flow.pairing import Pairing
from edged.flow.station import KitchenStation
from edged.journal.store import Command, Journal
from edged.sinqro.models import OrderAction, SellingPoint
from edged.state import BoxState

if TYPE_CHECKING:
    from edged.flow.desk import Outcome


class DeskLike(Protocol):
    """The order desk (:class:`edged.flow.desk.OrderDesk`): the one door for decisions."""

    async def accept(
        self, order_id: int, delay: int | None = None, *, source: str, key: str | None = None
    ) -> Command: ...

    async def cancel(
        self, order_id: int, comment: str, *, source: str, key: str | None = None
    ) -> Command: ...

    async def set_status(
        self, order_id: int, status: str, *, reason: str = "", source: str, key: str | None = None
    ) -> Command: ...

    async def acknowledge(self, order_id: int | None, *, source: str) -> list[int]: ...

    async def wait(self, command_id: int, timeout: float) -> Outcome: ...


class SpoolerLike(Protocol):
    """The printer spooler; each method may return a value or an awaitable."""

    def request_text(
        self, lines: list[str], *, source: str, qr: str = "", big: Sequence[int] = ()
    ) -> Any: ...

    def request_test_print(self, name: str, *, source: str) -> Any: ...

    def request_reprint(self, order_id: int, printer: str | None = None, *, source: str) -> Any: ...


class PanelLike(Protocol):
    """The panel; only the demo's virtual panel offers presses from the page."""

    def virtual_press(self, button: Literal["accept", "cancel", "both"], seconds: float) -> Any: ...


@dataclass(frozen=True)
class Metric:
    """One Prometheus sample. ``kind`` is ``counter``, ``gauge``, ``summary`` or
    ``histogram``; a counter's name should end in ``_total``. Samples sharing a name share
    one HELP/TYPE header. A summary or histogram is one family ``name`` with ``_sum`` and
    ``_count`` samples (and a histogram's ``_bucket`` ones, labelled ``le``): give each its
    ``suffix``."""

    name: str
    value: float
    help: str = ""
    kind: Literal["counter", "gauge", "summary", "histogram"] = "gauge"
    labels: Mapping[str, str] = field(default_factory=dict)
    suffix: Literal["", "_sum", "_count", "_bucket"] = ""


class Applied(Protocol):
    """What :meth:`edged.app.App.apply_settings` returns besides the config: per restarted
    part ``applied``, ``restarting`` or the error of the part that could not start."""

    @property
    def config(self) -> Config: ...

    @property
    def parts(self) -> dict[str, str]: ...

    @property
    def needs_restart(self) -> tuple[str, ...]: ...


class LiveSpooler:
    """Print requests go through the journal, so they reach whichever spooler runs now
    (a saved printer change restarts it) or the next one, like the CLI's."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def _request(self, kind: str, **kw: Any) -> None:
        from edged.printing.spooler import append_print_request

        await append_print_request(self.journal, kind, **kw)

    async def request_text(
        self, lines: list[str], *, source: str, qr: str = "", big: Sequence[int] = ()
    ) -> None:
        await self._request("text", lines=lines, source=source, qr=qr, big=big)

    async def request_test_print(self, name: str, *, source: str) -> None:
        await self._request("test", printer=name, source=source)

    async def request_reprint(
        self, order_id: int, printer: str | None = None, *, source: str
    ) -> None:
        await self._request("reprint", order_id=order_id, printer=printer, source=source)


class LivePanel:
    """The panel running now (a saved panel change restarts it)."""

    def __init__(self, current: Callable[[], PanelLike | None]) -> None:
        self._current = current

    async def virtual_press(
        self, button: Literal["accept", "cancel", "both"], seconds: float
    ) -> Any:
        panel = self._current()
        if panel is None:
            return "error"
        return await panel.virtual_press(button, seconds)


@dataclass
class WebServices:
    """Everything the page uses. Build it in the composition root.

    * ``pairing``: current :class:`Pairing` (never shown with its token);
    * ``login(username, password)``: Sinqro login (doc 000); keeps the new user token aside
      and returns the user's selling points; raises ``SinqroError`` (``LOGIN_ERROR``...);
    * ``choose_selling_point(id)``: pairs the box with that selling point (one of those
      ``login`` returned), using the token from ``login``;
    * ``logout()``: disconnects the box from Sinqro (doc 000 Logout) and forgets the pairing;
    * ``order_actions(order_id)``: Sinqro's current actions for an order (doc 003);
    * ``config()``: the config in force; ``apply_settings(changes)``: validate, save and
      apply a partial TOML-shaped change (raises ``ConfigError`` naming the key);
    * ``metrics()``: extra samples for ``/metrics`` (outbox, spooler, link latencies...);
    * ``demo``: the demo shows the setup code in the log; never set it on a real box;
    * ``mdns_name``: e.g. ``edged-1a2b.local``; ``None`` derives it from the host name;
    * ``kitchen``: the kitchen display's station, shared with the panel (``None``: the
      page makes its own).

    The daemon's assembly (:mod:`edged.assembly`) builds it from the parts it holds, with
    :class:`LiveSpooler` and :class:`LivePanel` so the page follows restarted parts.
    """

    box_name: str
    journal: Journal
    state: BoxState
    desk: DeskLike
    pairing: Callable[[], Pairing]
    login: Callable[[str, str], Awaitable[Sequence[SellingPoint]]]
    choose_selling_point: Callable[[int], Awaitable[object]]
    logout: Callable[[], Awaitable[None]]
    order_actions: Callable[[int], Awaitable[Sequence[OrderAction]]]
    config: Callable[[], Config]
    apply_settings: Callable[[dict[str, Any]], Awaitable[Config | Applied]]
    spooler: SpoolerLike | None = None
    panel: PanelLike | None = None
    metrics: Callable[[], Sequence[Metric]] | None = None
    demo: bool = False
    mdns_name: str | None = None
    kitchen: KitchenStation | None = None
