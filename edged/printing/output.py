"""The bytes of one ticket for one printer: its command set, and text or a picture.

``render = "text"`` prints with the printer's own font (fast, crisp, one code page);
``"raster"`` draws every ticket as a picture (any script); ``"auto"`` draws only the
tickets whose text the code page cannot print. A printer without fonts (Star TSP100
family) always gets pictures.
"""

from __future__ import annotations

from edged.printing import escpos, raster, star
from edged.printing.escpos import EncoderSettings, printable
from edged.printing.model import Text, Ticket


def needs_picture(ticket: Ticket, codec: str) -> bool:
    """True when some text of ``ticket`` cannot be printed in ``codec``."""
    return any(isinstance(e, Text) and not printable(e.text, codec) for e in ticket.elements)


def as_picture(ticket: Ticket, settings: EncoderSettings) -> bool:
    """Whether this printer prints this ticket as a picture."""
    if settings.profile.raster_only or settings.render == "raster":
        return True
    return settings.render == "auto" and needs_picture(ticket, settings.code_page.codec)


def ticket_bytes(ticket: Ticket, settings: EncoderSettings, copies: int = 1) -> bytes:
    """Everything the printer is sent to print ``ticket`` ``copies`` times."""
    picture = as_picture(ticket, settings)
    cut = settings.cut and settings.profile.cut
    if settings.command_set == "star":
        if settings.profile.raster_only:
            image = raster.render(ticket, settings.raster_dots)
            return star.graphic_document(image, cut=cut, copies=copies)
        if picture:
            image = raster.render(ticket, settings.raster_dots)
            return star.starprnt_raster(image, cut=cut, copies=copies)
        return star.starprnt_text(
            ticket,
            code_page=settings.code_page.number,
            codec=settings.code_page.codec,
            dots=settings.raster_dots,
            cut=cut,
            copies=copies,
        )
    if picture:
        return escpos.encode_picture(raster.render(ticket, settings.raster_dots), settings, copies)
    return escpos.encode(ticket, settings, copies)
