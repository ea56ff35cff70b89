"""The command line's commands beside the daemon: orders, decisions, status, reprints.

:mod:`edged.cli` is the entry point (``edged.cli:main``, ``python -m edged.cli``): it
parses the command line and sets up logging; the commands that read the journal and
answer people live here, in the box's language and the selling point's time zone.
"""
