"""A fake Sinqro cloud, faithful to the integration documents, for tests and the demo.

``Simulator`` (async context manager) and ``serve`` live in :mod:`edged.simulator.server`;
``python -m edged.simulator --port N`` runs one in its own process.
"""
