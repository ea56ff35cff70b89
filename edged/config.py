"""The daemon's configuration: one TOML file, drop-ins, and the web page's saved settings.

Load order (later wins, tables merge key by key):

1. the main file, e.g. ``/etc/edged/edged.toml``;
2. drop-ins ``/etc/edged/edged.toml.d/*.toml`` in name order (vendor and fleet overrides);
3. ``settings.toml`` in the state directory, written atomically by the web setup page. It
   belongs to the daemon's user, so only the keys the page edits apply from it
   (:mod:`edged.weblayer`); any other key is ignored with a logged error and listed in
   :attr:`Config.refused`.

Every key is checked by :func:`edged.configtools.build`; see ``config/edged.example.toml``
for the documented list.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from edged.bridges.settings import MqttConfig, SerialConfig
from edged.configtools import ConfigError, build, dump_toml, merge, opt
from edged.decoding import ascii_int
from edged.fleet.identity import MACHINE_ID_FILE, SERIAL_FILE, valid_box_id
from edged.fleet.settings import AlertsConfig, FleetConfig
from edged.flow.settings import OrdersConfig
from edged.i18n import Language
from edged.panel.settings import PanelConfig
from edged.printing.settings import PrinterConfig, check_printers
from edged.sinqro.settings import SinqroConfig
from edged.web.settings import WebConfig
from edged.weblayer import Refusal, WebLayer, screen

log = logging.getLogger(__name__)

WEB_SETTINGS_FILE = "settings.toml"
# One line of an 80 mm ticket in normal type (two on 58 mm): the name heads every ticket.
BOX_NAME_MAX = 48


@dataclass(frozen=True)
class BoxConfig:
    """The box itself."""

    name: str = field(default="edged", metadata=opt(doc="Name shown on tickets and the page"))
    state_dir: str = field(
        default="/var/lib/edged", metadata=opt(doc="Journal and saved settings live here")
    )
    language: Language = field(
        default="en", metadata=opt(doc="Language of the page, tickets and command line")
    )
    timezone: str = field(
        default="",
        metadata=opt(
            doc="Time zone for times shown before Sinqro tells the selling point's; "
            "empty: the system's"
        ),
    )
    currency: str = field(
        default="€",
        metadata=opt(
            doc="Currency sign on tickets when neither the order nor its selling point "
            "names one ('' for none)"
        ),
    )
    id: str = field(
        default="",
        metadata=opt(doc="Box id for MQTT, fleet and host name; empty: from the board serial"),
    )
    serial_file: str = field(
        default=SERIAL_FILE, metadata=opt(doc="Board serial number, the first source of the id")
    )
    machine_id_file: str = field(
        default=MACHINE_ID_FILE, metadata=opt(doc="Used (hashed) when there is no serial number")
    )

    def check(self) -> None:
        if "\x00" in self.state_dir:
            raise ValueError("state_dir: must not contain a NUL character")
        if not 1 <= len(self.name) <= BOX_NAME_MAX or not self.name.isprintable():
            raise ValueError(
                f"name: 1 to {BOX_NAME_MAX} printable characters (it heads every ticket)"
            )
        if len(self.currency) > 8 or any(not ch.isprintable() for ch in self.currency):
            raise ValueError("currency: up to 8 printable characters, e.g. '€' or 'EUR'")
        if self.id and not valid_box_id(self.id):
            raise ValueError("id: 1 to 63 lower-case letters, digits and '-'")


@dataclass(frozen=True)
class JournalConfig:
    """The SQLite journal."""

    path: str = field(default="edged.sqlite3", metadata=opt(doc="Relative to box.state_dir"))
    retention_days: int = field(default=30, metadata=opt(minimum=1, maximum=3650))

    def check(self) -> None:
        if "\x00" in self.path:
            raise ValueError("path: must not contain a NUL character")


@dataclass(frozen=True)
class LoggingConfig:
    """Logging (stderr; under systemd it lands in the journal)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    sinqro: SinqroConfig
    box: BoxConfig = field(default_factory=BoxConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    printers: list[PrinterConfig] = field(default_factory=list)
    panel: PanelConfig = field(default_factory=PanelConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    web: WebConfig = field(default_factory=WebConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # Where this config came from; not a config key.
    source: str = field(default="", init=False, compare=False)
    # Keys of the web page's settings.toml that were ignored (edged.weblayer); set per
    # instance by from_layers(). Not a field: no config key, not in check-config --show.
    refused: ClassVar[tuple[Refusal, ...]] = ()

    def check(self) -> None:
        # Names are unique without regard to case: the page, Home Assistant and people
        # reading a ticket do not tell "Bar" from "bar".
        seen: dict[str, str] = {}
        for printer in self.printers:
            other = seen.get(printer.name.casefold())
            if other is None:
                seen[printer.name.casefold()] = printer.name
                continue
            if other == printer.name:
                raise ValueError(f"printers: duplicate printer name {printer.name!r}")
            raise ValueError(
                f"printers: {other!r} and {printer.name!r} differ only in case; "
                "give printers names that differ in more than case"
            )
        check_printers(self.printers)

    @property
    def state_dir(self) -> Path:
        return Path(self.box.state_dir)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / self.journal.path


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; syntax errors become :class:`ConfigError` naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except ValueError as exc:
        # TOMLDecodeError, and the plain ValueError of an integer past Python's 4,300-digit
        # int-string limit.
        raise ConfigError(str(path), "", f"not valid TOML: {str(exc)[:200]}") from None
    except RecursionError:
        # tomllib recurses per nested array or inline table: "a = [[[[..." ends here.
        raise ConfigError(str(path), "", "not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None


def layers(path: Path, *, with_web_settings: bool = True) -> list[tuple[Path, dict[str, Any]]]:
    """The parsed files that make up the config, in load order.

    The web page's layer comes screened (:func:`edged.weblayer.screen`): what it may not
    set is left out and logged, and the layer (a :class:`~edged.weblayer.WebLayer`) lists it.
    """
    out = [(path, read_toml(path))]
    dropin_dir = path.with_name(path.name + ".d")
    if dropin_dir.is_dir():
        out += [(p, read_toml(p)) for p in sorted(dropin_dir.glob("*.toml"))]
    if with_web_settings:
        merged: dict[str, Any] = {}
        for _, doc in out:
            merged = merge(merged, doc)
        box = merged.get("box")
        # A malformed [box] is reported by from_layers(); here only find settings.toml.
        box = box if isinstance(box, dict) else {}
        raw = box.get("state_dir", BoxConfig.state_dir)
        # A state_dir that is no string is reported by from_layers() too.
        state_dir = Path(raw if isinstance(raw, str) else BoxConfig.state_dir)
        if not state_dir.is_absolute():
            state_dir = path.parent / state_dir
        web = state_dir / WEB_SETTINGS_FILE
        try:
            found = web.is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL in it
            raise ConfigError(str(path), "box.state_dir", f"cannot be used: {exc}") from None
        if found:
            kept, refused = screen(read_toml(web), merged, str(web))
            for refusal in refused:
                log.error("bad configuration: %s", refusal)
            out.append((web, WebLayer(kept, refused)))
    return out


def _has_key(doc: dict[str, Any], dotted: str) -> bool:
    node: Any = doc
    for part in dotted.replace("]", "").replace("[", ".").split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and (index := ascii_int(part)) is not None:
            if index >= len(node):
                return False
            node = node[index]
        else:
            return False
    return True


def _culprit(stack: list[tuple[Path, dict[str, Any]]], exc: ConfigError) -> ConfigError:
    """``exc`` naming the last layer that holds its key (the main file when none does)."""
    main = str(stack[0][0])
    culprit = next((str(p) for p, doc in reversed(stack) if _has_key(doc, exc.key)), main)
    return ConfigError(culprit, exc.key, exc.problem)


def config_errors(path: str | os.PathLike[str]) -> list[ConfigError]:
    """Every problem of the configuration rooted at ``path`` (empty: it loads), each naming
    the file that holds its key: ``edged check-config`` lists them all at once."""
    try:
        stack = layers(Path(path))
    except ConfigError as exc:  # a file that does not parse: nothing more to check
        return [exc]
    merged: dict[str, Any] = {}
    for _, doc in stack:
        merged = merge(merged, doc)
    errors: list[ConfigError] = []
    with contextlib.suppress(ConfigError):  # raised once they are all in ``errors``
        build(Config, merged, file=str(stack[0][0]), errors=errors)
    return [_culprit(stack, exc) for exc in errors]


def from_layers(stack: list[tuple[Path, dict[str, Any]]]) -> Config:
    """Validate merged layers; an error names the file that holds the offending key."""
    merged: dict[str, Any] = {}
    for _, doc in stack:
        merged = merge(merged, doc)
    main = str(stack[0][0])
    try:
        config = build(Config, merged, file=main)
    except ConfigError as exc:
        raise _culprit(stack, exc) from None
    # A relative state_dir is relative to the main file, so a config works from any cwd.
    state_dir = Path(config.box.state_dir)
    if not state_dir.is_absolute():
        state_dir = (stack[0][0].parent / state_dir).resolve()
        object.__setattr__(config.box, "state_dir", str(state_dir))
    object.__setattr__(config, "source", main)
    refused = [r for _, doc in stack if isinstance(doc, WebLayer) for r in doc.refused]
    object.__setattr__(config, "refused", tuple(refused))
    return config


def load_config(path: str | os.PathLike[str], *, with_web_settings: bool = True) -> Config:
    """Load and validate the configuration rooted at ``path``."""
    return from_layers(layers(Path(path), with_web_settings=with_web_settings))


def load_box_config(path: str | os.PathLike[str], *, with_web_settings: bool = True) -> BoxConfig:
    """Only the ``[box]`` table of the configuration rooted at ``path`` (defaults when the
    file does not exist): for tools that run before the rest is complete or readable, such
    as naming the host at first boot or the Wi-Fi onboarding page's language."""
    path = Path(path)
    if not path.exists():
        return BoxConfig()
    merged: dict[str, Any] = {}
    for _, doc in layers(path, with_web_settings=with_web_settings):
        merged = merge(merged, doc)
    table = merged.get("box", {})
    return build(BoxConfig, table if isinstance(table, dict) else {}, file=str(path), where="box")


def save_web_settings(config: Config, changes: dict[str, Any]) -> Config:
    """Validate ``changes`` on top of the current config and save them atomically.

    ``changes`` is a partial TOML-shaped document (e.g. ``{"orders": {"auto_accept": True}}``).
    It is merged into the state directory's ``settings.toml``; the whole result is validated
    before anything is written, so a bad value leaves the file as it was.
    Only what the page may set is accepted (:mod:`edged.weblayer`); keys of the file that
    it may not set are dropped from it. Nothing is written when nothing changes.
    Returns the new config. Raises :class:`ConfigError` naming the key on a bad value.
    """
    path = config.state_dir / WEB_SETTINGS_FILE
    stack = layers(Path(config.source), with_web_settings=False)
    root: dict[str, Any] = {}
    for _, doc in stack:
        root = merge(root, doc)
    _, refused = screen(changes, root, str(path))
    if refused:
        first = refused[0]
        raise ConfigError(first.file, first.key, first.reason)
    raw = read_toml(path) if path.is_file() else {}
    current, dropped = screen(raw, root, str(path))
    for refusal in dropped:
        log.error("web: removing from the saved settings: %s", refusal)
    updated = merge(current, changes)
    new = from_layers([*stack, (path, WebLayer(updated, []))])
    if updated == raw:
        return new
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("# Written by the edged web page; edit with the page or delete to reset.\n")
        fh.write(dump_toml(updated))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return new
