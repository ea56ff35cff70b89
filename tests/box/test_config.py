"""Strict configuration: every mistake stops start-up with file, key and expectation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from edged.config import Config, load_config, save_web_settings
from edged.configtools import ConfigError, dump_toml, to_plain

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "edged.example.toml"

MINIMAL = '[sinqro]\nserver_token = "s3cret"\n'


def write(tmp_path: Path, text: str, name: str = "edged.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_minimal_config_loads_with_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.sinqro.base_url == "https://api.sinqro.com/pos-app/v1"
    assert config.sinqro.poll_interval == 60.0
    assert config.sinqro.status_refresh_interval == 60.0
    assert config.orders.auto_accept is False
    assert config.printers == []


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (MINIMAL + "bogus = 1\n", "sinqro.bogus", "unknown key"),
        (MINIMAL + "[orders]\nauto_acept = true\n", "orders.auto_acept", "unknown key"),
        (MINIMAL + 'poll_interval = "fast"\n', "sinqro.poll_interval", "expected a number"),
        (MINIMAL + "poll_interval = 0\n", "sinqro.poll_interval", "at least"),
        (MINIMAL + "selling_point_id = 1.5\n", "sinqro.selling_point_id", "expected an integer"),
        (MINIMAL + "[orders]\nauto_accept = 1\n", "orders.auto_accept", "true or false"),
        (MINIMAL + '[orders]\ncancel_comment = "  "\n', "orders.cancel_comment", "requires"),
        (MINIMAL + 'base_url = "ftp://x"\n', "sinqro.base_url", "http"),
        ('[box]\nname = "x"\n', "sinqro", "missing required"),
        ("[sinqro]\n", "sinqro.server_token", "missing required"),
        (MINIMAL + '[box]\nlanguage = "fr"\n', "box.language", "one of"),
        (
            MINIMAL + '[[printers]]\nname = "a"\nuri = "virtual://x"\npaper_width = 70\n',
            "printers[0].paper_width",
            "one of 58, 80",
        ),
        (
            MINIMAL + '[[printers]]\nname = "Bar"\nuri = "virtual://x"\n'
            '[[printers]]\nname = "bar"\nuri = "virtual://y"\n',
            "printers",
            "'Bar' and 'bar' differ only in case",
        ),
        (
            MINIMAL + '[[printers]]\nname = "bar"\nuri = "virtual://x"\n'
            '[[printers]]\nname = "bar"\nuri = "virtual://y"\n',
            "printers",
            "duplicate printer name 'bar'",
        ),
        (
            MINIMAL + '[[printers]]\nname = "' + "p" * 33 + '"\nuri = "virtual://x"\n',
            "printers[0].name",
            "at most 32",
        ),
        (MINIMAL + '[box]\nname = "' + "n" * 49 + '"\n', "box.name", "1 to 48"),
    ],
)
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    err = error_of(path)
    assert err.file == str(path)
    assert err.key == key
    assert words in err.problem
    assert str(err).startswith(f"{path}: {key}: ")


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[sinqro\n")
    err = error_of(path)
    assert err.file == str(path)
    assert "not valid TOML" in err.problem


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.toml")
    assert "file not found" in str(err)


def test_secret_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGED_SERVER_TOKEN", "from-env")
    monkeypatch.setenv("EDGED_USER_TOKEN", "user-env")
    config = load_config(write(tmp_path, "[sinqro]\n"))
    assert config.sinqro.server_token == "from-env"
    assert config.sinqro.user_token == "user-env"
    # Secrets are never shown back.
    assert to_plain(config)["sinqro"]["server_token"] == "***"


def test_secrets_may_come_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LoadCredential=EDGED_SERVER_TOKEN:FILE puts the token in $CREDENTIALS_DIRECTORY; it
    wins over the environment file, and what is not there still comes from the environment."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "EDGED_SERVER_TOKEN").write_text("from-credential\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("EDGED_SERVER_TOKEN", "from-env")
    monkeypatch.setenv("EDGED_USER_TOKEN", "user-env")
    config = load_config(write(tmp_path, "[sinqro]\n"))
    assert config.sinqro.server_token == "from-credential"
    assert config.sinqro.user_token == "user-env"
    (credentials / "EDGED_USER_TOKEN").mkdir()  # unreadable as a file: said, not ignored
    err = error_of(tmp_path / "edged.toml")
    assert err.key == "EDGED_USER_TOKEN" and "unreadable credential" in err.problem


def test_dropins_override_and_errors_name_the_dropin(tmp_path: Path) -> None:
    main = write(tmp_path, MINIMAL + "[orders]\ndefault_delay = 5\n")
    dropins = tmp_path / "edged.toml.d"
    dropins.mkdir()
    (dropins / "10-fleet.toml").write_text("[orders]\ndefault_delay = 10\n")
    assert load_config(main).orders.default_delay == 10
    bad = dropins / "20-bad.toml"
    bad.write_text("[orders]\ndefault_delay = -1\n")
    err = error_of(main)
    assert err.file == str(bad)
    assert err.key == "orders.default_delay"


def test_relative_state_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[box]\nstate_dir = "state"\n'))
    assert config.state_dir == (tmp_path / "state").resolve()


def test_web_settings_are_validated_by_the_same_code_and_saved_atomically(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, MINIMAL + f'[box]\nstate_dir = "{tmp_path / "state"}"\n')
    config = load_config(path)
    new = save_web_settings(config, {"orders": {"auto_accept": True, "default_delay": 10}})
    assert new.orders.auto_accept is True
    assert load_config(path).orders.default_delay == 10
    saved = (tmp_path / "state" / "settings.toml").read_text()
    with pytest.raises(ConfigError) as info:
        save_web_settings(new, {"orders": {"default_delay": "soon"}})
    assert info.value.key == "orders.default_delay"
    # The bad value never reached the file.
    assert (tmp_path / "state" / "settings.toml").read_text() == saved
    assert not list((tmp_path / "state").glob("*.tmp"))


def test_dump_toml_round_trips(tmp_path: Path) -> None:
    doc: dict[str, Any] = {
        "box": {"name": 'Bar "Ñandú" \\ 1', "language": "es"},
        "sinqro": {"server_token": "x", "poll_interval": 30.0},
        "printers": [{"name": "a", "uri": "virtual://x", "order_types": ["delivery"]}],
    }
    assert tomllib.loads(dump_toml(doc)) == doc


def _keys(cls: Any, prefix: str) -> set[str]:
    out: set[str] = set()
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        inner = get_args(tp)[0] if get_origin(tp) is list else tp
        if dataclasses.is_dataclass(inner):
            out |= _keys(inner, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def test_example_config_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    # Every key appears in the example, set or commented out, with a comment above it.
    for dotted in sorted(_keys(Config, "")):
        name = dotted.rsplit(".", 1)[-1]
        assert f"\n{name} = " in text or f"\n# {name} = " in text, f"{dotted} not documented"
    copy = write(tmp_path, text.replace('state_dir = "/var/lib/edged"', 'state_dir = "st"'))
    config = load_config(copy)
    assert config.sinqro.server_token


def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL)
    bad = write(tmp_path, MINIMAL + "bogus = true\n", "bad.toml")
    ok = subprocess.run(
        [sys.executable, "-m", "edged.cli", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    no = subprocess.run(
        [sys.executable, "-m", "edged.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert no.returncode == 78  # EX_CONFIG: systemd will not restart-loop on it
    line = MINIMAL.count("\n") + 1  # the line the typo was appended on
    assert f"{bad}:{line}: sinqro.bogus: unknown key" in no.stderr
    assert "Traceback" not in no.stderr


def test_every_config_error_is_collected_once(tmp_path: Path) -> None:
    from edged.config import config_errors

    path = write(
        tmp_path,
        MINIMAL
        + "poll_interval = 0\n"
        + '[box]\nlanguage = "fr"\nbogus = 1\n'
        + '[orders]\ncancel_comment = "  "\n'  # a rule across the table's fields
        + '[[printers]]\nname = "a"\nuri = "nope://x"\n'
        + '[[printers]]\nname = "b"\n',
    )
    found = sorted((e.key, e.problem.split(" (")[0]) for e in config_errors(path))
    assert [key for key, _ in found] == [
        "box.bogus",
        "box.language",
        "orders.cancel_comment",
        "printers[0].uri",
        "printers[1].uri",
        "sinqro.poll_interval",
    ]
    # The first of them is what loading raises.
    with pytest.raises(ConfigError):
        load_config(path)
    assert config_errors(write(tmp_path, MINIMAL, "good.toml")) == []
    broken = config_errors(write(tmp_path, "[sinqro\n", "broken.toml"))
    assert len(broken) == 1 and "not valid TOML" in broken[0].problem


def test_key_lines_follow_tables_arrays_and_strings() -> None:
    from edged.configtools import key_line

    text = (
        "# a comment\n"
        "[box]\n"  # 2
        'name = """\n'  # 3
        "fake = 1\n"
        '"""\n'
        "'quoted key' = 1\n"  # 6
        "[[printers]]\n"  # 7
        'name = "a"\n'  # 8
        "[[printers]]\n"  # 9
        'name = "b"\n'
        "mqtt.host = 'x'  # dotted\n"  # 11
        "panel = { pins = 1 }\n"  # 12
    )
    assert key_line(text, "box.name") == 3
    assert key_line(text, "box.fake") == 2  # inside a string: only its table
    assert key_line(text, "box.quoted key") == 6
    assert key_line(text, "printers[0].name") == 8
    assert key_line(text, "printers[1].uri") == 9  # missing: its table
    assert key_line(text, "printers[1].mqtt.host") == 11
    assert key_line(text, "printers[1].panel.pins") == 12
    assert key_line(text, "web.port") is None
