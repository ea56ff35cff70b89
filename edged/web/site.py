"""What every area of the page shares, built once per server.

The areas (:mod:`~edged.web.access`, :mod:`~edged.web.pairing`, :mod:`~edged.web.setup`,
:mod:`~edged.web.board_api`, :mod:`~edged.web.live`, :mod:`~edged.web.health`) take a
:class:`Site` and the few areas they work with, given by :mod:`~edged.web.server`, which
builds them all; none of them reaches the server itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edged.i18n import Locale
from edged.web.guard import Guard
from edged.web.pages import Pages
from edged.web.reach import default_mdns, page_urls, qr_svg
from edged.web.security import AttemptLimiter, Credentials
from edged.web.services import WebServices
from edged.web.sessions import FILE_NAME as SESSIONS_FILE
from edged.web.sessions import Sessions
from edged.web.settings import WebConfig
from edged.web.status import Status


class Site:
    """The daemon's services, the box's language, sign-in (credentials, attempt limiters,
    sessions and the guard), rendering, the status, and where the page is served.

    ``port`` is the bound port once the server listens (0 before); ``tls`` whether it
    serves HTTPS.
    """

    def __init__(
        self,
        config: WebConfig,
        services: WebServices,
        *,
        limiter: AttemptLimiter | None = None,
        code_limiter: AttemptLimiter | None = None,
        scrypt_n: int | None = None,
    ) -> None:
        self.config = config
        self.services = services
        # Passwords and setup codes are throttled apart: guessing one never blocks the other.
        self.limiter = limiter or AttemptLimiter()
        self.code_limiter = code_limiter or AttemptLimiter()
        self.credentials = (
            Credentials(services.journal, scrypt_n=scrypt_n)
            if scrypt_n
            else Credentials(services.journal)
        )
        # Signed-in sessions are kept beside the journal (and credentials.json).
        self.sessions = Sessions(
            idle=config.session_idle_minutes * 60.0,
            lifetime=config.session_max_hours * 3600.0,
            path=Path(services.journal.path).parent / SESSIONS_FILE,
        )
        self.tls = bool(config.tls_cert and config.tls_key)
        self.port = 0
        self.urls: list[str] = []
        self.status = Status(services, self.locale)
        self.guard = Guard(self.sessions, self.locale, lambda: self.tls)
        self.pages = Pages(services, self.guard, self.status, self.footer)

    def locale(self) -> Locale:
        """The box's language and the selling point's time zone, as configured now."""
        config = self.services.config()
        timezone = self.services.pairing().timezone or config.box.timezone
        return Locale(config.box.language, timezone)

    # -- where the page is -----------------------------------------------------------------

    def mdns(self) -> str | None:
        """The box's ``.local`` name, if it has one."""
        return self.services.mdns_name or default_mdns()

    async def refresh_urls(self) -> list[str]:
        """The page's addresses now (the box may have moved networks since start)."""
        self.urls = await asyncio.to_thread(
            page_urls,
            tls=self.tls,
            port=self.port or self.config.port,
            mdns=self.mdns(),
            bound=self.config.host,
        )
        return self.urls

    def footer(self) -> dict[str, Any]:
        """The footer's address as text and QR code (the first reachable address)."""
        url = self.urls[0] if self.urls else ""
        return {"url": url, "qr": qr_svg(url) if url else ""}
