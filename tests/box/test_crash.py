"""Crash test: the real daemon SIGKILLed at random moments, at least 30 times, mid-burst.

See tests/support/crash_harness.py for the set-up. Invariants checked afterwards:

* every order the simulator created is in the journal;
* every order ticket printed at least once on each printer that takes it (the TCP stand-in
  and the virtual printer), unless the journal shows it skipped because the order was
  already final when its turn came; any second copy carries the REPRINT banner;
* every accept or cancel reached Sinqro exactly once, with no second (or refused) POST for
  an order already decided, although decisions came through the CLI, MQTT and serial, some
  twice through two channels;
* every journal event of a published kind reached the MQTT and the serial terminal
  (repeats allowed, gaps not);
* the SQLite file passes ``PRAGMA integrity_check`` after every kill and at the end.

Not an invariant, by design: a command the broker acknowledged (or the serial line ACKed)
dies with the daemon if it was killed before storing it; inbound commands are at-most-once
per delivery (docs/bridge-protocol.md). The terminals repeat unanswered commands with the
same id, as the protocol asks a POS to, and the box applies each id once.

The seed is printed; rerun a failure with ``scripts/crash-run --seed S``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from crash_harness import CrashRun, Settings


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_random_sigkills_keep_every_promise(tmp_path: Path) -> None:
    seed = int(os.environ.get("EDGED_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash seed {seed}")
    run = CrashRun(tmp_path, Settings(kills=30, seed=seed, orders_per_round=3))
    try:
        run.setup()
        run.run()
        report = run.check()
    finally:
        run.close()
    print(report.summary())
    assert report.kills >= 30
    assert not report.failures, f"seed {seed}:\n{report.summary()}"
