"""What an alert says, in the box's language and the selling point's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Language = Literal["en", "es"]

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "order_waiting.open.title": "Order {code} is waiting",
        "order_waiting.open": "Order {code} ({type}) has waited for a decision since {since}.",
        "order_waiting.resolved.title": "Order {code} answered",
        "order_waiting.resolved": "Order {code} is now {status} (waited {minutes} min).",
        "link_down.open.title": "No link to Sinqro",
        "link_down.open": "No link to Sinqro since {since} ({detail}). New orders do not arrive.",
        "link_down.resolved.title": "Sinqro link back",
        "link_down.resolved": "The link to Sinqro is back ({link}) after {minutes} min.",
        "printer_down.open.title": "Printer {printer}: {problem}",
        "printer_down.open": "Printer {printer} is {problem} since {since}. {detail}",
        "printer_down.resolved.title": "Printer {printer} back",
        "printer_down.resolved": "Printer {printer} is online again after {minutes} min.",
        "decision_stuck.open.title": "Decisions not reaching Sinqro",
        "decision_stuck.open": "{count} decision(s) waiting to reach Sinqro since {since}. "
        "{detail}",
        "decision_stuck.resolved.title": "Decisions reach Sinqro again",
        "decision_stuck.resolved": "Every decision reached Sinqro (after {minutes} min).",
        "decision_refused.open.title": "Sinqro refused a decision on order {code}",
        "decision_refused.open": "{kind} of order {code} was refused: {detail}",
        "decision_refused.resolved.title": "Order {code} settled",
        "decision_refused.resolved": "Order {code} moved on ({status}).",
        "offline": "offline",
        "paper_out": "out of paper",
        "cover_open": "open (cover)",
        "unauthorized": "token refused",
    },
    "es": {
        "order_waiting.open.title": "Pedido {code} en espera",
        "order_waiting.open": "El pedido {code} ({type}) espera una decisión desde las {since}.",
        "order_waiting.resolved.title": "Pedido {code} respondido",
        "order_waiting.resolved": "El pedido {code} está ahora {status} (esperó {minutes} min).",
        "link_down.open.title": "Sin conexión con Sinqro",
        "link_down.open": "Sin conexión con Sinqro desde las {since} ({detail}). "
        "No llegan pedidos nuevos.",
        "link_down.resolved.title": "Conexión con Sinqro recuperada",
        "link_down.resolved": "La conexión con Sinqro volvió ({link}) tras {minutes} min.",
        "printer_down.open.title": "Impresora {printer}: {problem}",
        "printer_down.open": "La impresora {printer} está {problem} desde las {since}. {detail}",
        "printer_down.resolved.title": "Impresora {printer} recuperada",
        "printer_down.resolved": "La impresora {printer} vuelve a funcionar tras {minutes} min.",
        "decision_stuck.open.title": "Las decisiones no llegan a Sinqro",
        "decision_stuck.open": "{count} decisión(es) pendiente(s) de llegar a Sinqro desde las "
        "{since}. {detail}",
        "decision_stuck.resolved.title": "Las decisiones llegan de nuevo a Sinqro",
        "decision_stuck.resolved": "Todas las decisiones llegaron a Sinqro (tras {minutes} min).",
        "decision_refused.open.title": "Sinqro rechazó una decisión del pedido {code}",
        "decision_refused.open": "{kind} del pedido {code} rechazado: {detail}",
        "decision_refused.resolved.title": "Pedido {code} resuelto",
        "decision_refused.resolved": "El pedido {code} siguió adelante ({status}).",
        "offline": "apagada o desconectada",
        "paper_out": "sin papel",
        "cover_open": "con la tapa abierta",
        "unauthorized": "token rechazado",
    },
}


def zone(name: str) -> ZoneInfo | Any:
    """The selling point's zone; UTC when it is unknown."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_iso(when: float, timezone: str) -> str:
    """ISO 8601 with the selling point's offset (machines read this)."""
    return datetime.fromtimestamp(when, zone(timezone)).isoformat(timespec="seconds")


def local_clock(when: float, timezone: str, now: float) -> str:
    """``13:05``, or ``24/05 13:05`` when not today (people read this)."""
    tz = zone(timezone)
    at = datetime.fromtimestamp(when, tz)
    if at.date() == datetime.fromtimestamp(now, tz).date():
        return at.strftime("%H:%M")
    return at.strftime("%d/%m %H:%M")


def word(language: Language, key: str, default: str) -> str:
    """A state word (``paper_out`` -> ``out of paper``), or ``default``."""
    return TEXTS[language].get(key, default)


def render(language: Language, rule: str, state: str, values: dict[str, Any]) -> tuple[str, str]:
    """``(title, message)`` for one alert."""
    texts = TEXTS[language]
    title = texts[f"{rule}.{state}.title"].format(**values)
    message = texts[f"{rule}.{state}"].format(**values)
    return title, " ".join(message.split())
