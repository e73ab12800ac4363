"""SVG snapshots of each screen at 120×40 (`pytest tests/tui --snapshot-update` re-creates them; docs/tui/
holds copies). The app serves its own market with the deterministic runtime; loopback ports and latencies
vary from run to run, so they are masked before the screenshot."""

from __future__ import annotations

import re

from rich.syntax import Syntax
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea
from tui_helpers import SIZE, wait_for

from motet.chain import Chain
from motet.tui import MotetApp
from motet.tui.deterministic import deterministic_runtime
from motet.tui.screens.agents import AgentsScreen

PORT = re.compile(r"127\.0\.0\.1:\d+")


def make_app() -> MotetApp:
    return MotetApp(Chain.embedded(), runtime=deterministic_runtime())


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
    screen.query_one("#card-text", Static).update(Syntax(screen.card_json, "json", theme="ansi_dark"))


async def compiled(pilot: Pilot[None]) -> None:
    await ready(pilot)
    await pilot.press("f3")
    for widget in pilot.app.screen.query("Input, TextArea").results():
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False
    await pilot.press("c")
    await wait_for(pilot, lambda: getattr(pilot.app, "compiled", None) is not None)
    await pilot.pause(0.2)


async def settled(pilot: Pilot[None]) -> None:
    await compiled(pilot)
    await pilot.press("r")
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "state", "") == "settled")
    table = pilot.app.screen.query_one("#calls", DataTable)
    for row_key in list(table.rows):
        table.update_cell(row_key, "latency", "0.01 s")
    pilot.app.clear_notifications()  # toasts time out: keep them out of the picture
    await pilot.pause(0.2)


def test_agents_screen(snap_compare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        mask_ports(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_compose_screen(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=compiled)


def test_run_screen_after_settlement(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settled)


def test_wallet_screen_after_a_run(snap_compare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("f5")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await compiled(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
