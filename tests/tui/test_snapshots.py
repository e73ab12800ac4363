"""SVG snapshots of each screen at 120×40 (`pytest tests/tui --snapshot-update` re-creates them; docs/tui/
holds copies). The app serves its own market with the deterministic runtime; loopback ports and latencies
vary from run to run, and the settlement's transaction hash changes with any byte of the contracts or the
vouchers, so they are masked before the screenshot."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from support.tui import SIZE, brief_app, wait_for
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log, Static, TextArea

from motet.chain import Chain
from motet.tui import MotetApp
from motet.tui.screens.agents import AgentsScreen

SnapCompare = Callable[..., bool]
"""pytest-textual-snapshot's `snap_compare` fixture: app, terminal size, what to do before the picture."""

PORT = re.compile(r"127\.0\.0\.1:\d+")
TX_HASH = re.compile(r"0x[0-9a-f]{64}|0x[0-9a-f]{8}…[0-9a-f]{4}")


def make_app() -> MotetApp:
    return brief_app(Chain.embedded())


async def ready(pilot: Pilot[None]) -> None:
    """Wait for the market, and keep cursors from blinking."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AgentsScreen), seconds=60)
    for widget in pilot.app.query("Input, TextArea").results():
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False
    await pilot.pause(0.2)


def mask_ports(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, AgentsScreen)
    table = screen.query_one("#agents", DataTable)
    for row_key in list(table.rows):
        value = str(table.get_cell(row_key, "endpoint"))
        table.update_cell(row_key, "endpoint", PORT.sub("127.0.0.1:PORT", value))
    screen.card_json = PORT.sub("127.0.0.1:PORT", screen.card_json)
    screen.query_one("#card-text", Static).update(
        Group(Text(screen.trust_text + "\n"), Syntax(screen.card_json, "json", theme="ansi_dark"))
    )


def mask_tx_hashes(pilot: Pilot[None]) -> None:
    def hidden(found: re.Match[str]) -> str:
        return "0x" + re.sub("[0-9a-f]", "x", found.group()[2:])

    status = pilot.app.screen.query_one("#run-status", Static)
    assert isinstance(status.content, str) and TX_HASH.search(status.content)
    status.update(TX_HASH.sub(hidden, status.content))
    log = pilot.app.screen.query_one("#events", Log)
    lines = [TX_HASH.sub(hidden, line) for line in log.lines]
    log.clear()
    log.write_lines(lines)


async def compiled(pilot: Pilot[None]) -> None:
    await ready(pilot)
    await pilot.press("f3")
    for widget in pilot.app.screen.query("Input, TextArea").results():
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False
    await pilot.press("c")
    app = pilot.app
    assert isinstance(app, MotetApp)
    await wait_for(pilot, lambda: app.session.compiled is not None)
    await pilot.pause(0.2)


async def settled(pilot: Pilot[None]) -> None:
    await compiled(pilot)
    await pilot.press("r")
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "state", "") == "settled")
    table = pilot.app.screen.query_one("#calls", DataTable)
    for row_key in list(table.rows):
        table.update_cell(row_key, "latency", "0.01 s")
    history = pilot.app.screen.query_one("#history", DataTable)
    for row_key in list(history.rows):  # a run's id is random, its start the wall clock's
        history.update_cell(row_key, "run", "0x…run")
        history.update_cell(row_key, "started", "12:00:00")
    mask_tx_hashes(pilot)
    pilot.app.clear_notifications()  # toasts time out: keep them out of the picture
    await pilot.pause(0.2)


def test_agents_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        mask_ports(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_compose_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=compiled)


def test_run_screen_after_settlement(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settled)


def test_wallet_screen_after_a_run(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("f5")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await compiled(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
