"""edged: the restaurant order box daemon."""

__version__ = "0.1.0"
