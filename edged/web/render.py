"""A very small HTML template helper: ``${name}`` placeholders, escaped unless marked safe.

Templates live in ``edged/web/templates`` as plain HTML. Every value is HTML-escaped when it
is substituted, so text from outside (order comments, printer names, error messages) cannot
inject markup; only :class:`Markup` built by our own code goes in as it is.
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable
from functools import cache
from importlib import resources


class Markup(str):
    """HTML that our own code built from escaped parts."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """Escape ``value`` for HTML text and attribute values (quotes included)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Markup | str], sep: str = "") -> Markup:
    """Join already-safe fragments; plain strings among them are escaped."""
    return Markup(sep.join(esc(p) for p in parts))


def tag(name: str, content: object = "", /, **attrs: object) -> Markup:
    """``<name attr="...">content</name>``; ``attr_=`` for Python keywords, ``True`` for flags.

    Attributes whose value is ``None`` or ``False`` are left out.
    """
    rendered = []
    for key, value in attrs.items():
        key = key.rstrip("_").replace("_", "-")
        if value is None or value is False:
            continue
        rendered.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    void = name in ("input", "br", "meta", "link", "img", "hr")
    inner = "" if void else f"{esc(content)}</{name}>"
    return Markup(f"<{name}{''.join(rendered)}>{inner}")


@cache
def _template(name: str) -> string.Template:
    text = resources.files("edged.web").joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)


def render(name: str, **values: object) -> Markup:
    """Fill template ``name``; a missing value is a bug and raises ``KeyError``."""
    return Markup(_template(name).substitute({k: esc(v) for k, v in values.items()}))
