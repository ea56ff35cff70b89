"""What this edged is: version, the commit it was built from, and the Python running it
(``edged_build_info`` in /metrics, the fleet's ``info``)."""

from __future__ import annotations

import functools
import platform
from importlib import resources

from edged import __version__

# Written next to the package by the image and bundle builds (``git rev-parse`` of the tree
# the wheel was built from); a checkout or a plain ``pip install`` has none.
COMMIT_FILE = "COMMIT"


@functools.cache
def commit() -> str:
    """The short commit id the wheel was built from, or ``unknown``."""
    try:
        text = resources.files("edged").joinpath(COMMIT_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return "unknown"
    text = text.strip()
    return text if text and len(text) <= 40 and text.isalnum() else "unknown"


def build_info() -> dict[str, str]:
    return {"version": __version__, "commit": commit(), "python": platform.python_version()}
