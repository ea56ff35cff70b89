"""HTML pages: one Jinja environment per language over ``templates/``, autoescaped, with the
language's gettext installed (``{% trans %}`` and ``_()`` in templates).

Every page extends ``base.html``; areas hand :meth:`Pages.render` a template name and the
values it shows. Text from outside (order comments, printer names, errors) is escaped by
Jinja's autoescape; nothing is pasted in as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from edged import __version__
from edged.i18n import LANGUAGES, NATIVE_NAMES, Locale, translations
from edged.web.guard import Guard
from edged.web.http import dumps
from edged.web.services import WebServices
from edged.web.status import Status


@cache
def environment(language: str) -> jinja2.Environment:
    """The templates with ``language``'s catalog installed."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("edged.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


@cache
def script_catalog(language: str) -> str:
    """The page scripts' strings in ``language`` as JSON, for ``<script id="i18n">``."""
    from edged.i18n.extract import script_messages

    static = Path(str(resources.files("edged.web").joinpath("static")))
    t = translations(language)
    texts = {
        m.text: t.gettext(m.text)
        for path in sorted(static.glob("*.js"))
        for m in script_messages(path, static)
    }
    return dumps(texts)


class Pages:
    """Renders full pages for one server (its box name, footer address and status line):
    ``footer`` gives the page's address as text and QR code (see :meth:`Site.footer`)."""

    def __init__(
        self,
        services: WebServices,
        guard: Guard,
        status: Status,
        footer: Callable[[], dict[str, Any]],
    ) -> None:
        self.services = services
        self.guard = guard
        self.status = status
        self.footer = footer

    def locale(self) -> Locale:
        return self.status.locale()

    def render(
        self,
        request: web.Request,
        template: str,
        title: str,
        *,
        status: int = 200,
        nav: bool = True,
        scripts: tuple[str, ...] = (),
        **values: Any,
    ) -> web.Response:
        """``template`` inside ``base.html``; creates the browser's session if it has none."""
        response = web.Response(status=status, content_type="text/html", charset="utf-8")
        session = self.guard.ensure_session(request, response)
        locale = self.locale()
        response.text = (
            environment(locale.language)
            .get_template(template)
            .render(
                title=title,
                box_name=self.services.config().box.name,
                version=__version__,
                language=locale.language,
                languages=[(code, NATIVE_NAMES[code]) for code in LANGUAGES],
                csrf=session.csrf,
                signed_in=session.authenticated,
                nav=nav and session.authenticated,
                # Staff (the staff PIN) run the board only: no links to the rest.
                staff=session.role == "staff",
                path=request.path,
                status=self.status.status_line() if session.authenticated else None,
                # ok | recovered | failing: the banner in base.html (edged.journal.recovery)
                journal_state=self.services.state.get("journal", "ok"),
                journal_recovered=self.services.state.get("journal.recovered") or {},
                journal_unstored=self.services.state.get("journal.unstored") or [],
                footer=self.footer(),
                # Keys of the saved settings the box ignores (edged.weblayer): settings.html
                refused=self.services.config().refused,
                scripts=scripts,
                i18n_json=script_catalog(locale.language),
                **values,
            )
        )
        return response
