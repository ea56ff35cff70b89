"""What each setup field is called on the page, with one line of help, in the box's
language, and which fields are folded under "Advanced (for your vendor)".

Every field of every section the setup page shows has its words here (a test fails when a
config key lands without them), so a box never shows a raw key or an English docstring in
place of a label. Advanced fields also show their config key, small, for support to match
the config file; their words are still for people (a vendor or a technician on site).
"""

from __future__ import annotations

from edged.i18n import N_
from edged.i18n.words import STATUS_WORDS
from edged.printing.settings import SLIP_STATUSES
from edged.weblayer import PAGE_KEYS

Key = tuple[str, str]  # (section, field); "printers" covers every printer

# (section, field) -> (label, one-line help). Units are said in the label.
FIELD_TEXT: dict[Key, tuple[str, str]] = {
    # -- printers ---------------------------------------------------------------------------
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
    ("printers", "profile"): (
        N_("Printer model"),
        N_("The model's name, e.g. TM-T20III, POS-5890 or (Star) TSP100. The default suits most."),
    ),
    ("printers", "command_set"): (
        N_("Printer commands"),
        N_("ESC/POS for almost every printer; Star for Star printers in their own mode."),
    ),
    ("printers", "render"): (
        N_("Print tickets as"),
        N_("Text is fast and crisp; a picture prints any alphabet but takes longer."),
    ),
    ("printers", "code_page"): (
        N_("Character table (code page)"),
        N_("CP858, CP1252 or ISO_8859-15. Empty: the best one the model has."),
    ),
    ("printers", "columns"): (
        N_("Characters per line"),
        N_("0: worked out from the paper width and the model."),
    ),
    ("printers", "print_on"): (
        N_("Print the ticket"),
        N_("As soon as the order arrives, or only once someone accepts it."),
    ),
    ("printers", "cancel_slip"): (
        N_("Slip when an order is cancelled"),
        N_("Only for orders this printer already printed, so the kitchen stops."),
    ),
    ("printers", "status_slips"): (
        N_("Slip when an order reaches"),
        N_("A short slip for a printed order whenever it reaches a ticked status."),
    ),
    ("printers", "update_slip"): (
        N_("Slip when the time changes"),
        N_("A slip with the new time when accepting with extra minutes moves a printed order."),
    ),
    ("printers", "qr_tracking"): (
        N_("Tracking QR code"),
        N_("Prints the delivery tracking link as a QR code when the order has one."),
    ),
    ("printers", "logo"): (
        N_("Logo image"),
        N_("A PNG file on the box, printed at the top of each ticket. Empty: no logo."),
    ),
    ("printers", "cut"): (N_("Cut the paper"), N_("After each ticket, on printers with a cutter.")),
    ("printers", "backup"): (
        N_("Backup printer"),
        N_("Name of the printer that takes this one's tickets while it is down. Empty: none."),
    ),
    ("printers", "failover_after"): (
        N_("Use the backup after (seconds)"),
        N_("How long this printer may be down before its tickets go to the backup."),
    ),
    ("printers", "timeout"): (
        N_("Printer answer time (seconds)"),
        N_("A printer silent for longer counts as not answering."),
    ),
    ("printers", "retry_max"): (
        N_("Longest wait between retries (seconds)"),
        N_("While the printer is off or out of paper, it is tried again at most this far apart."),
    ),
    ("printers", "health_interval"): (
        N_("Check the printer every (seconds)"),
        N_("While it is idle, so a problem shows before the next order. 0: never."),
    ),
    # -- orders -----------------------------------------------------------------------------
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
        # The hold itself is the panel's setting: a number here would go stale.
        N_("How long the hold is: Panel, Long ACCEPT press."),
    ),
    ("orders", "cancel_comment"): (
        N_("Reason sent by the CANCEL button"),
        N_("The customer reads it."),
    ),
    ("orders", "retry_max"): (
        N_("Longest wait between retries to Sinqro (seconds)"),
        N_("A decision Sinqro cannot take yet is sent again, at most this far apart."),
    ),
    # -- panel ------------------------------------------------------------------------------
    ("panel", "enabled"): (N_("Buttons, buzzer and light"), N_("Off: the box stays silent.")),
    ("panel", "pin_factory"): (
        N_("Pin driver"),
        N_("Automatic suits every Raspberry Pi. Simulated: no buttons or buzzer attached."),
    ),
    ("panel", "accept_pin"): (N_("ACCEPT button pin"), N_("GPIO number (BCM), e.g. 5 for GPIO5.")),
    ("panel", "cancel_pin"): (N_("CANCEL button pin"), N_("GPIO number (BCM).")),
    ("panel", "button_pull"): (
        N_("Button resistor"),
        N_("The Pi's own resistor on the button pins, or none when the wiring has one."),
    ),
    ("panel", "button_active"): (
        N_("A pressed button reads"),
        N_("Automatic follows the resistor: with pull-up, pressed reads low."),
    ),
    ("panel", "buzzer_pin"): (N_("Buzzer pin"), N_("GPIO number (BCM).")),
    ("panel", "buzzer_type"): (
        N_("Buzzer kind"),
        N_("Active buzzers sound by themselves when powered; passive ones play the box's tones."),
    ),
    ("panel", "buzzer_active_high"): (
        N_("Buzzer sounds on a high pin"),
        N_("Untick when the buzzer is wired to sound on a low pin."),
    ),
    ("panel", "led_pin"): (N_("Light pin"), N_("GPIO number (BCM).")),
    ("panel", "led_active_high"): (
        N_("Light shines on a high pin"),
        N_("Untick when the light is wired to shine on a low pin."),
    ),
    ("panel", "bounce_time"): (
        N_("Button debounce (seconds)"),
        N_("Contact flicker shorter than this is not a press."),
    ),
    ("panel", "accept_hold"): (
        N_("Long ACCEPT press (seconds)"),
        N_("ACCEPT held this long accepts with the long-press minutes."),
    ),
    ("panel", "cancel_hold"): (
        N_("CANCEL hold (seconds)"),
        N_("CANCEL cancels only when held this long; a short press silences the alert."),
    ),
    ("panel", "setup_hold"): (
        N_("Hold both buttons for the setup ticket (seconds)"),
        N_("ACCEPT and CANCEL held together this long print the setup ticket."),
    ),
    ("panel", "max_hold"): (
        N_("Stuck button after (seconds)"),
        N_("A press longer than this is taken as a stuck button and ignored."),
    ),
    ("panel", "repeat_every"): (
        N_("Ring again every (seconds)"),
        N_("While an order waits, the buzzer rings again after this pause."),
    ),
    ("panel", "escalate_after"): (
        N_("Ring faster after (seconds)"),
        N_("An order waiting this long rings faster and longer."),
    ),
    ("panel", "command_wait"): (
        N_("Wait for Sinqro after a press (seconds)"),
        N_("If Sinqro has not answered by then, the box chirps and sends it later."),
    ),
    # -- MQTT bridge ------------------------------------------------------------------------
    ("mqtt", "enabled"): (N_("Connect to the POS over MQTT"), N_("Ask your POS vendor.")),
    ("mqtt", "url"): (N_("Broker address"), N_("e.g. mqtt://192.168.1.20:1883")),
    ("mqtt", "failover_urls"): (
        N_("Other broker addresses"),
        N_("More nodes of the same broker, tried in turn when one fails; separate with commas."),
    ),
    ("mqtt", "username"): (N_("User"), N_("Empty when the broker needs no sign-in.")),
    ("mqtt", "password"): (N_("Password"), N_("Leave empty to keep the saved one.")),
    ("mqtt", "client_id"): (
        N_("Client name"),
        N_("The name the box gives the broker. Empty: edged- and the box id."),
    ),
    ("mqtt", "box_id"): (
        N_("Box name in the topics"),
        N_("One topic level naming this box. Empty: the box id."),
    ),
    ("mqtt", "topic_prefix"): (
        N_("Topic prefix"),
        N_("First level(s) of every topic, before the box name."),
    ),
    ("mqtt", "protocol"): (
        N_("MQTT version"),
        N_("The version spoken to the broker; terminals may use either."),
    ),
    ("mqtt", "ca_file"): (
        N_("Certificate authority file (TLS)"),
        N_("PEM file that vouches for the broker. Empty: the system's authorities."),
    ),
    ("mqtt", "cert_file"): (
        N_("Box certificate file (TLS)"),
        N_("PEM file, for brokers that check the box's certificate. Goes with the key file."),
    ),
    ("mqtt", "key_file"): (
        N_("Box key file (TLS)"),
        N_("PEM file with the key of the box certificate."),
    ),
    ("mqtt", "tls_insecure"): (
        N_("Skip the broker name check"),
        N_("For tests only: anyone could pose as the broker."),
    ),
    ("mqtt", "keepalive"): (
        N_("Keepalive (seconds)"),
        N_("How often the box tells the broker it is still there."),
    ),
    ("mqtt", "reconnect_min"): (
        N_("First wait before reconnecting (seconds)"),
        N_("After the broker is lost; each later wait is longer."),
    ),
    ("mqtt", "reconnect_max"): (
        N_("Longest wait before reconnecting (seconds)"),
        N_("The waits grow up to this while the broker stays away."),
    ),
    ("mqtt", "publish_timeout"): (
        N_("Broker confirmation time (seconds)"),
        N_("How long to wait for the broker to confirm a message."),
    ),
    ("mqtt", "full_payload"): (
        N_("Send the whole order"),
        N_("New-order messages carry Sinqro's full order besides the summary."),
    ),
    ("mqtt", "max_command_bytes"): (
        N_("Largest command (bytes)"),
        N_("Longer commands from a terminal are refused."),
    ),
    ("mqtt", "max_catalog_bytes"): (
        N_("Largest catalog (bytes)"),
        N_("Longer catalog updates from a terminal are refused."),
    ),
    ("mqtt", "max_pending_commands"): (
        N_("Commands waiting at most"),
        N_("In a burst, more are answered BUSY (send again) instead of being lost."),
    ),
    ("mqtt", "homeassistant"): (
        N_("Home Assistant"),
        N_("Shows the box's sensors and buttons in Home Assistant (MQTT discovery)."),
    ),
    ("mqtt", "homeassistant_prefix"): (
        N_("Home Assistant topic prefix"),
        N_("The discovery prefix set in Home Assistant, normally homeassistant."),
    ),
    ("mqtt", "homeassistant_products"): (
        N_("Products with a switch in Home Assistant"),
        N_("Product ids or POS references, separated with commas: each gets an on-sale switch."),
    ),
    # -- serial bridge ----------------------------------------------------------------------
    ("serial", "enabled"): (
        N_("Connect to the POS over a serial cable"),
        N_("Ask your POS vendor."),
    ),
    ("serial", "port"): (N_("Serial port"), N_("e.g. /dev/ttyUSB0")),
    ("serial", "baudrate"): (N_("Speed (baud)"), N_("The same as on the POS.")),
    ("serial", "bytesize"): (N_("Data bits"), N_("The same as on the POS, usually 8.")),
    ("serial", "parity"): (N_("Parity"), N_("The same as on the POS, usually none.")),
    ("serial", "stopbits"): (N_("Stop bits"), N_("The same as on the POS, usually 1.")),
    ("serial", "rtscts"): (
        N_("Hardware flow control (RTS/CTS)"),
        N_("Only when the POS and the cable use it."),
    ),
    ("serial", "ack_timeout"): (
        N_("Wait for a receipt (seconds)"),
        N_("A message the POS has not confirmed by then is sent again."),
    ),
    ("serial", "max_retries"): (
        N_("Resends before reopening the port"),
        N_("Then the port is closed and opened again."),
    ),
    ("serial", "reconnect_min"): (
        N_("First wait before reopening (seconds)"),
        N_("After the port fails; each later wait is longer."),
    ),
    ("serial", "reconnect_max"): (
        N_("Longest wait before reopening (seconds)"),
        N_("The waits grow up to this while the port stays unusable."),
    ),
    ("serial", "max_frame_bytes"): (
        N_("Largest frame (bytes)"),
        N_("Longer frames from the POS are refused."),
    ),
    ("serial", "max_command_bytes"): (
        N_("Largest command (bytes)"),
        N_("At most the largest frame."),
    ),
    ("serial", "full_payload"): (
        N_("Send the whole order"),
        N_("New-order messages carry Sinqro's full order besides the summary."),
    ),
}

# The fields an owner sets up with; every other field the page carries
# (:data:`edged.weblayer.PAGE_KEYS`) is folded under "Advanced (for your vendor)", so a new
# setting stays out of an owner's way until it is listed here.
BASIC: frozenset[Key] = frozenset(
    [
        *(
            ("printers", name)
            for name in ("name", "uri", "paper_width", "layout", "copies", "order_types")
        ),
        *(
            ("orders", name)
            for name in (
                "auto_accept",
                "auto_accept_delay",
                "default_delay",
                "long_press_delay",
                "cancel_comment",
            )
        ),
        ("panel", "enabled"),
        *(("mqtt", name) for name in ("enabled", "url", "username", "password")),
        *(("serial", name) for name in ("enabled", "port", "baudrate")),
    ]
)
ADVANCED: frozenset[Key] = PAGE_KEYS - BASIC

# Fields whose default is a catalog message (the CANCEL button's comment): the page shows it
# in the box's language, and keeps it as the default when saved unchanged, so it goes on
# following the language.
IN_BOX_LANGUAGE: frozenset[Key] = frozenset([("orders", "cancel_comment")])

_ORDER_TYPE_TEXT = {
    "delivery": N_("Delivery"),
    "collection": N_("Takeaway"),
    "reservation": N_("Reservation"),
    "insitu": N_("Pre-order"),
    "inside": N_("Table order"),
    "other": N_("Other kinds of order"),
}
_AUTOMATIC = N_("Automatic")

# Words for the values of choice fields, per field. Values that are plain numbers (58, 80;
# 7, 8 data bits; MQTT 5, 3.1.1) read the same in every language and are shown as they are.
CHOICE_TEXT: dict[Key, dict[str, str]] = {
    ("printers", "layout"): {"full": N_("Full"), "kitchen": N_("Kitchen")},
    ("printers", "order_types"): _ORDER_TYPE_TEXT,
    ("printers", "command_set"): {
        "escpos": N_("ESC/POS (most printers)"),
        "star": N_("Star (Star printers' own mode)"),
    },
    ("printers", "render"): {
        "text": N_("Text"),
        "raster": N_("Picture"),
        "auto": N_("Picture only when text cannot print it"),
    },
    ("printers", "print_on"): {
        "new": N_("When the order arrives"),
        "accepted": N_("Once it is accepted"),
    },
    ("printers", "status_slips"): {status: STATUS_WORDS[status] for status in SLIP_STATUSES},
    ("panel", "pin_factory"): {
        "auto": _AUTOMATIC,
        "lgpio": N_("lgpio (Raspberry Pi 5, newer systems)"),
        "rpigpio": N_("RPi.GPIO (older systems)"),
        "mock": N_("Simulated (nothing attached)"),
    },
    ("panel", "button_pull"): {
        "up": N_("Pull-up"),
        "down": N_("Pull-down"),
        "off": N_("None (the wiring has one)"),
    },
    ("panel", "button_active"): {"auto": _AUTOMATIC, "low": N_("Low"), "high": N_("High")},
    ("panel", "buzzer_type"): {
        "active": N_("Active (sounds when powered)"),
        "passive": N_("Passive (plays tones)"),
    },
    ("serial", "parity"): {"none": N_("None"), "even": N_("Even"), "odd": N_("Odd")},
}
