"""Where the box's page can be reached, as text and as a QR code (footer and setup ticket)."""

from __future__ import annotations

from markupsafe import Markup

from edged.web.netinfo import local_addresses, mdns_name, url_host


def page_urls(
    *, tls: bool, port: int, mdns: str | None = None, bound: str = "0.0.0.0"
) -> list[str]:
    """The page's addresses: the mDNS name first, then each LAN address (blocking: call on
    a thread, it asks the kernel for the box's addresses). A page bound to one address
    (``web.host``, e.g. 127.0.0.1 in the demo) answers only there."""
    scheme = "https" if tls else "http"
    suffix = "" if (port, tls) in ((80, False), (443, True)) else f":{port}"
    if bound not in ("", "0.0.0.0", "::"):
        return [f"{scheme}://{url_host(bound)}{suffix}/"]
    hosts = [mdns] if mdns else []
    hosts += [url_host(a) for a in local_addresses()]
    return [f"{scheme}://{host}{suffix}/" for host in hosts]


def default_mdns() -> str | None:
    return mdns_name()


def qr_svg(text: str) -> Markup:
    """``text`` as an inline SVG QR code (no image request, allowed by the page's CSP)."""
    # qrcode brings Pillow (~8 MiB): only when a page shows a QR, never at the daemon's start.
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    svg = image.to_string(encoding="unicode")
    return Markup(svg.replace("<svg ", '<svg role="img" class="qr" ', 1))
