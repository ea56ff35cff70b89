"""The config installed as /etc/edged/edged.toml loads, with the token from the env file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config import load_config
from edged.configtools import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config" / "edged.toml"


def test_default_config_loads_with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGED_SERVER_TOKEN", "srv-token")
    config = load_config(CONFIG, with_web_settings=False)
    assert config.sinqro.server_token == "srv-token"
    assert config.box.state_dir == "/var/lib/edged"
    assert config.journal_path.parent == Path("/var/lib/edged")
    assert config.web.port == 8080  # the port avahi announces
    assert config.printers == []


def test_default_config_names_the_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGED_SERVER_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, with_web_settings=False)
    assert err.value.key == "sinqro.server_token"
    assert "EDGED_SERVER_TOKEN" in str(err.value)


def test_dropin_readme_is_not_a_dropin() -> None:
    dropins = CONFIG.with_name("edged.toml.d")
    assert (dropins / "README").is_file()
    assert list(dropins.glob("*.toml")) == []
