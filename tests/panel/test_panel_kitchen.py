"""The panel's kitchen mode, on gpiozero's mock pins with a real journal and a fake clock:
while a kitchen display is on and no order waits for a decision, ACCEPT bumps the selected
tile through the outbox and CANCEL moves the selection; a new order or a display gone
dark gives the buttons back to their usual work."""

from __future__ import annotations

from test_panel import ACCEPT, CANCEL, Rig, RigFactory, factory, make_rig, order
from waiting import eventually

from edged.flow.station import DISPLAY_TIMEOUT, KitchenStation
from edged.journal.store import Command

__all__ = ["factory", "make_rig"]  # the fixtures


async def test_accept_bumps_cancel_moves_and_a_new_order_takes_the_buttons_back(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(default_delay=0)
    station = KitchenStation(rig.desk, rig.journal, now=rig.clock.monotonic)
    rig.panel.kitchen = station
    for order_id in (1, 2, 3):
        await rig.desk.ingest(order(order_id, "accepted"), "test")
    await rig.sync()
    station.seen()

    # ACCEPT: the oldest tile (selected by default) goes to preparation, as a command.
    await rig.press(ACCEPT, 0.3)
    [cmd] = await eventually(rig.commands, what="the bump")
    assert (cmd.kind, cmd.order_id, cmd.params["status"], cmd.source) == (
        "status",
        1,
        "preparation",
        "panel",
    )
    await rig.finish(cmd, status="preparation")
    assert await rig.result() == "bumped"

    # CANCEL (short) moves the selection to the next tile; ACCEPT bumps that one.
    await rig.press(CANCEL, 0.2)
    assert await rig.result() == "moved"
    assert station.selected == 2
    await rig.press(ACCEPT, 0.3)
    commands = await eventually(lambda: _more(rig, 1), what="the second bump")
    assert (commands[-1].order_id, commands[-1].params["status"]) == (2, "preparation")
    await rig.finish(commands[-1], status="preparation")
    assert await rig.result() == "bumped"

    # A new order waits: the buttons decide it first (an accept, not a bump).
    await rig.add(4)
    await rig.press(ACCEPT, 0.3)
    commands = await eventually(lambda: _more(rig, 2), what="the accept")
    assert (commands[-1].kind, commands[-1].order_id) == ("accept", 4)
    await rig.finish(commands[-1])
    assert await rig.result() == "accepted"


async def test_with_the_display_off_the_buttons_do_their_usual_work(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    station = KitchenStation(rig.desk, rig.journal, now=rig.clock.monotonic)
    rig.panel.kitchen = station
    await rig.desk.ingest(order(1, "accepted"), "test")
    await rig.sync()
    station.seen()
    await rig.clock.advance(DISPLAY_TIMEOUT + 1)
    assert not station.display_on
    await rig.press(ACCEPT, 0.3)
    assert await rig.result() == "refused"  # nothing waits for a decision
    assert await rig.commands() == []


async def _more(rig: Rig, than: int) -> list[Command] | None:
    commands = await rig.commands()
    return commands if len(commands) > than else None
