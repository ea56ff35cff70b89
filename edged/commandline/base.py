"""What the commands share: exit codes, the config file, the box's words, output.

Exit codes (``sysexits.h`` where one fits; ``edged --help`` and README list them):

==  ======================================================================================
0   done
1   failed (a ticket could not be queued, ...)
2   usage: the command line is wrong (argparse's own code; also an unknown printer name)
3   refused: the box or Sinqro said no (unknown order, already decided, ...)
69  unavailable (``EX_UNAVAILABLE``): no journal yet, or the daemon does not answer
78  bad configuration (``EX_CONFIG``): the unit does not restart on it
==  ======================================================================================
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from edged.config import Config, load_config
from edged.i18n import Locale

DEFAULT_CONFIG = "/etc/edged/edged.toml"
DEFAULT_RELAY_CONFIG = "/etc/edged/relay.toml"
EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_REFUSED = 3
EX_UNAVAILABLE = 69  # os.EX_UNAVAILABLE, which Windows and some builds lack
EX_CONFIG = 78  # sysexits.h: the unit does not restart on it (RestartPreventExitStatus)
EXIT_CODES = (
    "exit codes: 0 done, 1 failed, 2 usage error, 3 refused (by the box or Sinqro), "
    "69 unavailable (no journal yet, or the daemon does not answer), 78 bad configuration"
)


def config_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or os.environ.get("EDGED_CONFIG") or DEFAULT_CONFIG)


def read_env_file(path: Path) -> None:
    """Take ``KEY=VALUE`` lines from the unit's EnvironmentFile, for CLI use on a box.

    Only keys not already in the environment are set, as systemd does for the daemon.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def load(args: argparse.Namespace) -> Config:
    path = Path(config_path(args))
    read_env_file(path.with_name("edged.env"))
    return load_config(path)


def language(args: argparse.Namespace, config: Config | None = None) -> str:
    """``--language`` when given (what the person just asked for), else the box's."""
    chosen = getattr(args, "language", None)
    if chosen:
        return str(chosen)
    return config.box.language if config is not None else "en"


def say(text: str) -> None:
    """An answer on stdout. A reader that went away (``| head``) ends the command quietly:
    see :func:`edged.cli.main`."""
    print(text, flush=True)


def complain(text: str) -> None:
    """A refusal or problem on stderr."""
    print(text, file=sys.stderr, flush=True)


def dump_json(value: Any) -> None:
    """``--json``: one document, UTF-8 as it is (codes and names with accents)."""
    import json

    say(json.dumps(value, indent=2, ensure_ascii=False))


def cli_locale(args: argparse.Namespace, config: Config, timezone: str = "") -> Locale:
    """The words (``--language`` or the box's) and the selling point's time zone."""
    return Locale(language(args, config), timezone or config.box.timezone)
