"""``edged check-config FILE``: every problem of a config at once, each with its file and
line (``FILE:LINE: KEY: problem``, as compilers write it), before anything starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edged.commandline.base import EX_CONFIG, EX_OK, complain, read_env_file, say
from edged.config import config_errors, load_box_config, load_config
from edged.configtools import ConfigError, key_line, to_plain
from edged.i18n import Locale


def line_of(error: ConfigError) -> int | None:
    """The line of the file that holds the error's key (or its table), if written there."""
    if not error.key:
        return None
    try:
        return key_line(Path(error.file).read_text(encoding="utf-8"), error.key)
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def located(error: ConfigError, line: int | None) -> str:
    """``FILE:LINE: KEY: problem`` (no line when the key is not written in the file)."""
    where = f"{error.file}:{line}" if line else error.file
    return f"{where}: {error.key}: {error.problem}" if error.key else f"{where}: {error.problem}"


def _language(args: argparse.Namespace) -> str:
    """``--language``, else the file's ``box.language`` when that much can be read."""
    if args.language:
        return str(args.language)
    try:
        return load_box_config(args.file).language
    except ConfigError:
        return "en"


def cmd_check_config(args: argparse.Namespace) -> int:
    locale = Locale(_language(args))
    read_env_file(Path(args.file).with_name("edged.env"))
    errors = config_errors(args.file)
    if errors:
        # In the order of the files, as an editor shows them.
        found = [(error, line_of(error)) for error in errors]
        found.sort(key=lambda item: (item[0].file, item[1] is None, item[1] or 0))
        for error, line in found:
            complain(located(error, line))
        complain(locale.gettext("problems found: {count}").format(count=len(errors)))
        return EX_CONFIG
    config = load_config(args.file)
    say(locale.gettext("{file}: OK").format(file=config.source))
    if args.show:
        say(json.dumps(to_plain(config), indent=2, ensure_ascii=False))
    return EX_OK
