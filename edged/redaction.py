"""No secret in any log, at any level.

:class:`Redactor` is a ``logging.Filter`` that edged puts on every log handler it sets up
(``edged.cli.setup_logging``). Before a record is written it masks, in the message and in
a traceback's text:

* every secret it was told about (:func:`remember`, :func:`remember_config`): the values of
  config fields marked ``secret`` (tokens, passwords, webhook URLs, the relay's secret in
  its paths) and the pairing's user token;
* what looks like a secret anywhere: a Telegram bot token in a URL (``/bot<token>/``), the
  value of an ``Authorization`` header or of a Sinqro token header, ``Bearer`` credentials,
  ``token=``/``secret=``/``password=`` query and form values, JSON ``"token": "..."``
  members, and the password of a URL (``mqtt://user:pass@host``).

A library that logs a URL (httpx) or its request headers cannot print a token through it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Shorter values are too likely to be ordinary words; patterns still catch them in place.
MIN_SECRET = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram's bot API: https://api.telegram.org/bot123456:AAE-x_y/sendMessage
    (re.compile(r"(/bot)[0-9]+:[A-Za-z0-9_-]+"), r"\1" + MASK),
    # user:password@ in a URL
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(@)", re.I), r"\1" + MASK + r"\2"),
    # Header lines and header dumps: "Authorization: Bearer x", "x-api-user-access-token: x",
    # ('authorization', 'Bearer x') in a repr.
    (
        re.compile(
            r"((?:proxy-)?authorization|cookie|set-cookie|x-[a-z0-9-]*(?:token|secret|key)"
            r"|x-api-[a-z0-9-]*)(\s*[:=]\s*|['\"]\s*[:=,]\s*(?:b?['\"])?)"
            r"(?:(?:bearer|basic|token)\s+)?"
            r"[^\s'\",;]+",
            re.I,
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"\b(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1" + MASK),
    # Query strings and forms: ?token=x&secret=y
    (
        re.compile(
            r"((?:^|[?&;\s])(?:(?:access_|api_|auth_|user_|server_)?"
            r"(?:token|secret|password|passwd|pwd|sig|signature)|(?:api_|access_)key)=)"
            r"[^&\s'\"#]+",
            re.I,
        ),
        r"\1" + MASK,
    ),
    # JSON members: "token": "x", "password": "y"
    (
        re.compile(r"(['\"][a-z_]*(?:token|secret|password|passwd)['\"]\s*:\s*['\"])[^'\"]*", re.I),
        r"\1" + MASK,
    ),
)


class Redactor(logging.Filter):
    """Masks secrets in every record it sees (see the module docstring). Never drops one."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def remember(self, *secrets: str) -> None:
        """Mask these values from now on (empty and very short ones are ignored)."""
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET}
        with self._lock:
            self._secrets = self._secrets | fresh

    def redact(self, text: str) -> str:
        """``text`` with every known and every recognisable secret masked."""
        # Longest first: a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it itself
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
REDACTOR = Redactor()


def remember(*secrets: str) -> None:
    """Tell the process's redactor about secrets (tokens not from a config file)."""
    REDACTOR.remember(*secrets)


def remember_config(config: Any) -> None:
    """Remember every value of a config dataclass (nested, in lists too) whose field is
    marked ``secret`` (``edged.configtools.opt(secret=True)``)."""
    REDACTOR.remember(*secrets_of(config))


def secrets_of(config: Any) -> list[str]:
    """The values of the fields marked ``secret`` in a config dataclass tree."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if f.metadata.get("secret") and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)

    walk(config)
    return found


def install(handlers: Iterable[logging.Handler]) -> None:
    """Put the redactor on these handlers (each record is masked before it is written)."""
    for handler in handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
