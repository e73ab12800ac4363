"""Helpers for the TUI tests (functions, not fixtures: they take the running pilot or build the app)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from textual.pilot import Pilot

from motet.chain import Chain
from motet.demo import DOCUMENT, Document, local_market, research_brief
from motet.runtimes.testing import deterministic_runtime
from motet.tui import Market, MotetApp, make_app

SIZE = (120, 40)


def brief_app(chain: Chain, market: Market | None = None) -> MotetApp:
    """The TUI as `motet tui` builds it: the research brief on the demo's document, goals planned from a
    `Document`. On `market`, or, without one, on a local market of deterministic agents the app serves."""
    return make_app(
        chain,
        market or functools.partial(local_market, chain, deterministic_runtime()),
        workflows={"research-brief": research_brief()},
        inputs={"document": DOCUMENT},
        goal_inputs=Document,
    )


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
    await wait_for(pilot, lambda: app.session.compiled is not None)
