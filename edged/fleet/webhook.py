"""Alerts as HTTP POSTs: edged's own JSON, an ntfy message or a Telegram bot message.

A 2xx answer is delivered. 408, 425, 429 and 5xx, a timeout or a connection error are
tried again later (``Retry-After`` is honoured); any other answer is a configuration
problem and the alert is dropped with an error in the log. The URL may hold a token (a
Telegram bot's does): logs name only its host.

``timeout`` bounds the whole request (connect, send, every byte of the answer): httpx's own
timeout is per read, so a server trickling one byte a second would otherwise hold a send
open for as long as it likes.

Each webhook is rate-limited (``burst``, then one message per ``every`` seconds); alerts
that wait meanwhile arrive grouped in one message (:mod:`edged.fleet.courier`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from edged import __version__
from edged.fleet.courier import DeliveryError, RateLimit
from edged.fleet.settings import WebhookConfig

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})


def body(config: WebhookConfig, alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON body for this webhook's format."""
    if config.format == "ntfy":
        carried = alert.get("alerts") or [alert]  # a grouped message carries many
        opened = any(a.get("state") == "open" for a in carried)
        return {
            "topic": config.topic,
            "title": alert["title"],
            "message": alert["message"],
            "priority": 4 if opened else 3,
            "tags": ["warning"] if opened else ["white_check_mark"],
        }
    if config.format == "telegram":
        return {
            "chat_id": config.chat_id,
            "text": f"{alert['title']}\n{alert['message']}",
            "disable_web_page_preview": True,
        }
    return alert


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class WebhookSink:
    """One ``[[alerts.webhooks]]`` endpoint."""

    def __init__(self, config: WebhookConfig, index: int, *, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        host = urlsplit(config.url).hostname or "webhook"
        self.name = f"webhook-{index}"
        self.where = f"{host} ({config.format})"
        # People read these: a burst, then a steady rate, the rest grouped (courier.py).
        self.limit = RateLimit(burst=config.burst, every=config.every)

    async def deliver(self, alert: dict[str, Any]) -> None:
        headers = {"User-Agent": f"edged/{__version__}"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self.client.post(
                    self.config.url,
                    json=body(self.config, alert),
                    headers=headers,
                    timeout=self.config.timeout,
                )
        except TimeoutError:
            raise DeliveryError(
                f"{self.where}: no whole answer within {self.config.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            # str(exc) of a connect error can carry the URL: name the host only.
            raise DeliveryError(f"{self.where}: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            log.debug("alerts: %s took %s", self.where, alert["id"])
            return
        retry = status in RETRY_STATUSES or status >= 500
        raise DeliveryError(
            f"{self.where} answered HTTP {status}", retry=retry, retry_after=_retry_after(response)
        )
