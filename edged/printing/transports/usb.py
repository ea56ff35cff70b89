"""A USB printer through the kernel's usblp driver, found by vendor and product id."""

from __future__ import annotations

from pathlib import Path

from edged.printing.transports.file import FileTransport


class UsbTransport(FileTransport):
    """A USB printer through the kernel's usblp driver (``/dev/usb/lpN``), found by
    vendor and product id in sysfs, so no user-space USB library is needed."""

    SYSFS = Path("/sys/class/usbmisc")

    def describe(self) -> str:
        return f"usb {self.uri.vendor_id:04x}:{self.uri.product_id:04x}"

    def missing(self) -> str:
        return (
            f"no USB printer {self.uri.vendor_id:04x}:{self.uri.product_id:04x} "
            "(plugged in? usblp driver loaded?)"
        )

    def path(self) -> str:
        want = (f"{self.uri.vendor_id:04x}", f"{self.uri.product_id:04x}")
        try:
            entries = sorted(self.SYSFS.glob("lp*"))
        except OSError:
            return ""
        for entry in entries:
            # lpN/device is the USB interface; its parent directory is the USB device.
            device = (entry / "device").resolve().parent
            try:
                ids = (
                    (device / "idVendor").read_text().strip().lower(),
                    (device / "idProduct").read_text().strip().lower(),
                )
            except OSError:
                continue
            if ids == want:
                return f"/dev/usb/{entry.name}"
        return ""
