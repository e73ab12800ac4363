"""Helpers for the TUI tests (a module, not fixtures: they take the running pilot)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from motet.tui import MotetApp

SIZE = (120, 40)


async def wait_for(pilot: Pilot[None], done: Callable[[], bool], *, seconds: float = 30.0) -> None:
    """Let the app work until `done()` holds; fail after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the app did not get there in {seconds} s")


async def compile_brief(pilot: Pilot[None]) -> None:
    """Go to the compose screen and compile the research brief."""
    app = pilot.app
    assert isinstance(app, MotetApp)
    await pilot.press("f3")
    await pilot.press("c")
    await wait_for(pilot, lambda: app.compiled is not None)
