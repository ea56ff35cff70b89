"""What each setup field is called on the page, with one line of help, in the box's
language. Fields listed here are the ones an owner needs; every other key of a section is
folded under "Advanced" with its config key as label (for vendors and support)."""

from __future__ import annotations

from edged.i18n import N_

# (section, field) -> (label, one-line help). "printers" covers every printer.
FIELD_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("printers", "name"): (N_("Name"), N_("A short name, e.g. kitchen or counter.")),
    ("printers", "uri"): (
        N_("Address"),
        N_("Network printers: its IP address, e.g. 192.168.1.50. USB: /dev/usb/lp0."),
    ),
    ("printers", "paper_width"): (N_("Paper width (mm)"), N_("Most counters use 80 mm rolls.")),
    ("printers", "layout"): (
        N_("Ticket"),
        N_("Full: prices and payment. Kitchen: big type, no prices."),
    ),
    ("printers", "copies"): (N_("Copies"), N_("How many tickets per order.")),
    ("printers", "order_types"): (
        N_("Prints these orders"),
        N_("Untick the kinds of order this printer should leave out."),
    ),
    ("orders", "auto_accept"): (
        N_("Accept every order by itself"),
        N_("Only when nobody needs to check orders before they are accepted."),
    ),
    ("orders", "auto_accept_delay"): (
        N_("Minutes added when accepting by itself"),
        N_("0: the time the customer asked for."),
    ),
    ("orders", "default_delay"): (
        N_("Minutes added by a short ACCEPT press"),
        N_("0: the time the customer asked for."),
    ),
    ("orders", "long_press_delay"): (
        N_("Minutes added by a long ACCEPT press"),
        N_("Hold ACCEPT for 2 seconds to accept with this delay."),
    ),
    ("orders", "cancel_comment"): (
        N_("Reason sent by the CANCEL button"),
        N_("The customer reads it."),
    ),
    ("panel", "enabled"): (N_("Buttons, buzzer and light"), N_("Off: the box stays silent.")),
    ("mqtt", "enabled"): (N_("Connect to the POS over MQTT"), N_("Ask your POS vendor.")),
    ("mqtt", "url"): (N_("Broker address"), N_("e.g. mqtt://192.168.1.20:1883")),
    ("mqtt", "username"): (N_("User"), ""),
    ("mqtt", "password"): (N_("Password"), ""),
    ("serial", "enabled"): (
        N_("Connect to the POS over a serial cable"),
        N_("Ask your POS vendor."),
    ),
    ("serial", "port"): (N_("Serial port"), N_("e.g. /dev/ttyUSB0")),
    ("serial", "baudrate"): (N_("Speed (baud)"), N_("The same as on the POS.")),
}

# Words for the values of choice fields.
CHOICE_TEXT: dict[str, str] = {
    "full": N_("Full"),
    "kitchen": N_("Kitchen"),
    "delivery": N_("Delivery"),
    "collection": N_("Takeaway"),
    "reservation": N_("Reservation"),
    "insitu": N_("Pre-order"),
    "inside": N_("Table order"),
    "other": N_("Other kinds of order"),
}
