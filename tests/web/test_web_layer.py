"""The web page's settings.toml is the edged user's file: only the keys the page edits apply
from it; paths, other tables and printer addresses outside /dev are ignored, logged and
listed as refused, and the rest of the config loads."""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_hostile_forms import WebBox, webbox  # noqa: F401 - the fixture, signed in

from edged.config import load_config, save_web_settings
from edged.configtools import ConfigError
from edged.printing.settings import PrinterConfig
from edged.web.forms import form_fields
from edged.web.setup import SECTIONS
from edged.weblayer import PATH_KEYS, PRINTER_KEYS, PRINTER_PATH_KEYS, WEB_KEYS

ROOT = Path(__file__).resolve().parents[2]


def box(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    """A main config with its state dir; returns (main file, settings.toml)."""
    state = tmp_path / "state"
    state.mkdir()
    main = tmp_path / "edged.toml"
    main.write_text(f'[sinqro]\nserver_token = "s3cret"\n[box]\nstate_dir = "{state}"\n{extra}')
    return main, state / "settings.toml"


def test_paths_and_other_tables_from_the_web_layer_are_ignored_and_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    main, web = box(tmp_path)
    web.write_text(
        '[journal]\npath = "/etc/shadow"\n'
        '[box]\nstate_dir = "/etc"\nlanguage = "es"\n'
        '[sinqro]\nbase_url = "http://evil.example"\n'
        "[orders]\nauto_accept = true\n"
        '[mqtt]\nca_file = "/root/.ssh/id_ed25519"\n'
    )
    with caplog.at_level(logging.ERROR, logger="edged.config"):
        config = load_config(main)
    # What the page may set applies; the rest is as the root-owned file says.
    assert config.box.language == "es"
    assert config.orders.auto_accept is True
    assert config.journal_path == tmp_path / "state" / "edged.sqlite3"
    assert config.box.state_dir == str(tmp_path / "state")
    assert config.sinqro.base_url == "https://api.sinqro.com/pos-app/v1"
    assert config.mqtt.ca_file == ""
    keys = [r.key for r in config.refused]
    assert keys == ["journal", "box.state_dir", "sinqro", "mqtt.ca_file"]
    assert all(str(r).startswith(f"{web}: ") for r in config.refused)
    assert all(str(r).endswith("; ignored") for r in config.refused)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for key in keys:
        assert f"{web}: {key}: " in logged


@pytest.mark.parametrize(
    ("uri", "applies"),
    [
        ("tcp://192.168.1.50:9100", True),
        ("usb://04b8:0202", True),
        ("serial:///dev/ttyUSB0?baudrate=19200", True),
        ("file:///dev/usb/lp0", True),
        ("virtual://tickets/kitchen", True),
        ("file:///etc/passwd", False),
        ("file:///dev/../etc/cron.d/x", False),
        ("serial:///tmp/fake-tty", False),
        ("virtual:///var/lib/edged", False),
        ("virtual://../../etc", False),
    ],
)
def test_printer_addresses_from_the_web_layer(tmp_path: Path, uri: str, applies: bool) -> None:
    main, web = box(tmp_path)
    web.write_text(f'[[printers]]\nname = "kitchen"\nuri = "{uri}"\n')
    config = load_config(main)
    if applies:
        assert [p.uri for p in config.printers] == [uri]
        assert config.refused == ()
    else:
        assert config.printers == []
        assert [r.key for r in config.refused] == ["printers[0].uri"]


def test_the_page_may_repeat_what_the_root_owned_files_say(tmp_path: Path) -> None:
    """The page saves the whole printer list and every field of a form back: values the
    root-owned files set (a file printer, a logo, a CA file) pass through unchanged."""
    main, web = box(
        tmp_path,
        '[[printers]]\nname = "k"\nuri = "file:///srv/tickets.bin"\nlogo = "/etc/edged/l.png"\n'
        '[mqtt]\nca_file = "/etc/edged/ca.pem"\n',
    )
    web.write_text(
        '[[printers]]\nname = "k"\nuri = "file:///srv/tickets.bin"\nlogo = "/etc/edged/l.png"\n'
        "copies = 2\n"
        '[mqtt]\nca_file = "/etc/edged/ca.pem"\ncert_file = ""\n'
    )
    config = load_config(main)
    assert config.refused == ()
    assert config.printers[0].copies == 2
    assert config.mqtt.ca_file == "/etc/edged/ca.pem"
    # Another printer may not borrow that address, nor a logo of its own choosing.
    web.write_text(
        '[[printers]]\nname = "k"\nuri = "file:///srv/tickets.bin"\nlogo = "/etc/shadow"\n'
    )
    config = load_config(main)
    assert [r.key for r in config.refused] == ["printers[0].logo"]
    assert config.printers[0].logo == "/etc/edged/l.png"
    web.write_text('[[printers]]\nname = "other"\nuri = "file:///srv/tickets.bin"\n')
    config = load_config(main)
    assert [p.name for p in config.printers] == ["k"]


def test_the_serial_bridge_port_must_be_a_device(tmp_path: Path) -> None:
    main, web = box(tmp_path)
    web.write_text('[serial]\nport = "/var/lib/edged/not-a-tty"\nbaudrate = 19200\n')
    config = load_config(main)
    assert config.serial.port == "/dev/ttyUSB0"
    assert config.serial.baudrate == 19200
    assert [r.key for r in config.refused] == ["serial.port"]
    web.write_text('[serial]\nport = "/dev/serial/by-id/usb-pos"\n')
    assert load_config(main).serial.port == "/dev/serial/by-id/usb-pos"


def test_saving_refuses_what_the_page_may_not_set_and_heals_the_file(tmp_path: Path) -> None:
    main, web = box(tmp_path)
    web.write_text('[journal]\npath = "/etc/shadow"\n[orders]\ndefault_delay = 5\n')
    config = load_config(main)
    with pytest.raises(ConfigError) as info:
        save_web_settings(config, {"journal": {"path": "/tmp/elsewhere"}})
    assert info.value.key == "journal"
    with pytest.raises(ConfigError) as info:
        save_web_settings(config, {"printers": [{"name": "a", "uri": "file:///etc/motd"}]})
    assert info.value.key == "printers[0].uri"
    assert "journal" in web.read_text()  # refused saves write nothing
    new = save_web_settings(config, {"orders": {"auto_accept": True}})
    assert new.refused == ()
    text = web.read_text()
    assert "journal" not in text and "default_delay = 5" in text
    assert load_config(main).orders.auto_accept is True


def test_saving_what_is_already_saved_writes_nothing(tmp_path: Path) -> None:
    main, web = box(tmp_path)
    config = save_web_settings(load_config(main), {"orders": {"default_delay": 3}})
    before = web.stat()
    os.utime(web, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    moved = web.stat()
    save_web_settings(config, {"orders": {"default_delay": 3}})
    after = web.stat()
    assert (after.st_ino, after.st_mtime_ns) == (moved.st_ino, moved.st_mtime_ns)


def test_check_config_lists_what_it_refused(tmp_path: Path) -> None:
    main, web = box(tmp_path)
    web.write_text('[journal]\npath = "/etc/shadow"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "edged.cli", "check-config", str(main)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert f"refused: {web}: journal: not a setting the web page may change" in done.stderr


def test_every_key_the_setup_page_writes_is_allowed() -> None:
    """The allow-list is explicit; this keeps it in step with the forms the page shows."""
    for section, cls in SECTIONS.items():
        for f in form_fields(cls, section):
            name = f.key.split(".", 1)[1]
            assert name in WEB_KEYS[section] | PATH_KEYS.get(section, frozenset()), f.key
    printer_fields = {f.name for f in dataclasses.fields(PrinterConfig) if f.init}
    assert printer_fields == PRINTER_KEYS | PRINTER_PATH_KEYS
    assert "language" in WEB_KEYS["box"]
    assert set(WEB_KEYS) == {"box", *SECTIONS}


async def test_the_setup_page_lists_what_it_refused_in_the_box_language(
    webbox: WebBox,  # noqa: F811 - the fixture imported above
) -> None:
    webbox.settings_file.parent.mkdir(parents=True, exist_ok=True)
    webbox.settings_file.write_text(
        '[box]\nlanguage = "es"\n[journal]\npath = "/etc/shadow"\n'
        '[[printers]]\nname = "kitchen"\nuri = "file:///etc/passwd"\n'
    )
    config = load_config(webbox.state_dir.parent / "edged.toml")
    webbox.server.services.config = lambda: config
    page = await webbox.client.get("/settings")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "No aplicado: estos ajustes guardados no los puede cambiar esta página" in text
    assert "<code>journal</code>: no es un ajuste que la página web pueda cambiar" in text
    assert "<code>printers[0].uri</code>: una dirección de impresora de la página web" in text
    # The printer in force is root's, not the one the file names.
    assert [p.uri for p in config.printers] == ["virtual://kitchen"]
