"""What a user met in the TUI in their first hour (issue 16, item 7), done as they did it, asserting what they
expected: the workflow chosen now runs on its own inputs (a form from its schema, checked before any payment),
a closed channel is never paid through again, filters match any part of a name or capability, `/` never types
into the filter nor raises a notification per keystroke, F1 fits the terminal, the budget reads as money spent,
answers read as text, candidates are a pick list with price, stake and reputation, and the runs are listed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import JsonValue
from support.tui import SIZE, compile_brief, wait_for
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Markdown, Select, Static, TextArea

from motet.chain import Chain
from motet.composer import CallPaid, RunLog, Workflow
from motet.demo import DOCUMENT, Document, Market, local_market, research_brief
from motet.runtimes.testing import deterministic_runtime
from motet.tui import MotetApp, make_app
from motet.tui._format import readable
from motet.tui.screens.agents import AgentsScreen
from motet.tui.screens.compose import ComposeScreen
from motet.tui.screens.help import HelpScreen
from motet.tui.screens.run import RunScreen
from motet.tui.screens.wallet import WalletScreen
from motet.tui.widgets.node_pane import NodePane

AMOUNT = re.compile(r"^[0-9][0-9,.]* (gwei|ETH)$")
"""Every amount shown names its unit: prices and spending in gwei, stakes and balances in ETH."""

RUN = 90.0
"""Seconds a run may take to settle here (a loaded machine included)."""

SENTIMENT_INPUTS = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": 120, "description": "What to classify."},
        "max_words": {"type": "integer", "description": "Words to read at most."},
    },
    "required": ["text"],
}


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Market]:
    """One chain and market for the module: each test's app has its own payer, so its own channels."""
    chain = Chain.embedded()
    async with local_market(chain, deterministic_runtime(), failing=True) as served:
        yield served


def two_workflows_app(market: Market) -> MotetApp:
    """The app with the research brief (input `document`) and a one-node sentiment workflow (input `text`)."""
    sentiment = Workflow("sentiment", inputs=SENTIMENT_INPUTS).add("sentiment", "classify_sentiment")
    return make_app(
        market.chain,
        market,
        workflows={"research-brief": research_brief(), "sentiment": sentiment},
        inputs={"document": DOCUMENT},
        goal_inputs=Document,
    )


def compose(app: MotetApp) -> ComposeScreen:
    screen = app.screen
    assert isinstance(screen, ComposeScreen)
    return screen


def run_screen(app: MotetApp) -> RunScreen:
    screen = app.screen
    assert isinstance(screen, RunScreen)
    return screen


def settled(app: MotetApp, runs: int) -> bool:
    screen = app.screen
    if isinstance(screen, RunScreen) and screen.state == "failed":
        raise AssertionError(str(screen.query_one("#run-status", Static).render()))
    return isinstance(screen, RunScreen) and screen.state == "settled" and len(screen.history) == runs


def ended(app: MotetApp, runs: int) -> bool:
    screen = app.screen
    return (
        isinstance(screen, RunScreen)
        and screen.state in ("settled", "failed")
        and len(screen.history) == runs
    )


async def choose(pilot: Pilot[None], name: str) -> ComposeScreen:
    """On the compose screen, open the workflow list and pick `name` with the keys, as a person does."""
    app = pilot.app
    assert isinstance(app, MotetApp)
    await pilot.press("f3")
    screen = compose(app)
    names = list(app.session.workflows)
    now = names.index(str(screen.query_one("#workflow", Select).value))
    screen.query_one("#workflow").focus()
    steps = names.index(name) - now
    await pilot.press("enter", *(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_for(pilot, lambda: compose(app).form_key == name)
    return compose(app)


async def run_sentiment(pilot: Pilot[None], runs: int) -> RunScreen:
    """Choose the sentiment workflow, type its text, press r and wait for the settlement."""
    app = pilot.app
    assert isinstance(app, MotetApp)
    screen = await choose(pilot, "sentiment")
    screen.form().query_one("#field-text", Input).value = "What a lovely library."
    await pilot.press("r")
    await wait_for(pilot, lambda: settled(app, runs), seconds=RUN)
    return run_screen(app)


def cells(table: DataTable[object], column: str) -> list[str]:
    return [str(table.get_cell(row, column)) for row in table.rows]


@pytest.mark.slow
async def test_r_runs_the_workflow_chosen_now_on_the_inputs_of_its_form(shared: Market) -> None:
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        await compile_brief(pilot)  # the brief compiled first, as the user did
        screen = compose(app)
        assert screen.query_one("#budget", Input).value == "1000gwei"  # the budget names its unit
        assert list(screen.form().properties) == ["document"]
        assert str(screen.form().query_one("#field-document", TextArea).text) == DOCUMENT

        # Choose the other workflow: its form replaces the brief's, one field per input, required marked.
        await choose(pilot, "sentiment")
        assert list(compose(app).form().properties) == ["text", "max_words"]
        form = compose(app).form()
        labels = [str(label.render()) for label in form.query(".form-label")]
        assert labels[0].startswith("text * · string — What to classify.")
        assert labels[1].startswith("max_words (optional) · integer")
        assert form.query_one("#field-max_words", Input).type == "integer"

        # r with the required field empty: said in the form, nothing runs, nothing is paid.
        await pilot.press("r")
        await wait_for(pilot, lambda: "text" in str(compose(app).form().query_one("#form-errors").render()))
        assert form.query_one("#field-text").has_class("-invalid")
        assert app.session.payer.spent("") == 0 and not isinstance(app.screen, RunScreen)

        form.query_one("#field-text", Input).value = "What a lovely library."
        form.query_one("#field-max_words", Input).value = "12"
        await pilot.press("r")  # compiles the chosen workflow (it changed since c) and runs it
        await wait_for(pilot, lambda: settled(app, 1), seconds=RUN)
        screen_run = run_screen(app)
        compiled, inputs = screen_run._last or (None, None)
        assert compiled is not None and compiled.workflow.name == "sentiment"
        assert inputs == {"text": "What a lovely library.", "max_words": 12}
        assert screen_run.report is not None and [
            e.node for e in screen_run.report.events if isinstance(e, CallPaid)
        ] == ["sentiment"]

        # Back to the brief: its own inputs come back, and r runs the brief on them.
        await choose(pilot, "research-brief")
        assert compose(app).form().values() == {"document": DOCUMENT}
        await pilot.press("r")
        await wait_for(pilot, lambda: ended(app, 2), seconds=RUN)
        compiled, inputs = run_screen(app)._last or (None, None)
        assert compiled is not None and compiled.workflow.name == "research-brief"
        assert inputs == {"document": DOCUMENT}
        history = run_screen(app).query_one("#history", DataTable)
        assert cells(history, "workflow") == ["research-brief", "sentiment"]  # newest first
        assert cells(history, "status")[1] == "settled" and cells(history, "spent")[1] == "10 gwei"


@pytest.mark.slow
async def test_a_run_after_closing_a_channel_pays_through_a_new_one(shared: Market) -> None:
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        first = (await run_sentiment(pilot, 1)).report
        assert first is not None
        used = {e.channel for e in first.events if isinstance(e, CallPaid)}

        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, WalletScreen))
        wallet = app.screen
        assert isinstance(wallet, WalletScreen)
        (channel,) = used  # close the channel the run paid through
        row = [s.channel_id for s in wallet.channels].index(channel)
        wallet.query_one("#channels", DataTable).move_cursor(row=row)
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: _closing(wallet, channel))

        await pilot.press("f4", "r")  # the same run again
        await wait_for(pilot, lambda: settled(app, 2), seconds=RUN)
        second = run_screen(app).report
        assert second is not None and second.settlement is not None
        again = {e.channel for e in second.events if isinstance(e, CallPaid)}
        assert len(again) == 1 and channel not in again
        assert second.settlement.paid == 10 * 10**9  # the voucher on the new channel redeemed


def _closing(wallet: WalletScreen, channel_id: int) -> bool:
    return any(s.channel_id == channel_id and s.closing for s in wallet.channels)


async def test_filters_match_any_part_and_slash_neither_types_nor_notifies(shared: Market) -> None:
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen) and _names(app) != [])
        await pilot.press("slash", *"SUMM")
        await wait_for(pilot, lambda: _names(app) == ["summarizer", "flaky-summarizer"])
        await pilot.press("slash")  # already in the filter: `/` is not typed
        assert app.screen.query_one("#capability", Input).value == "SUMM"
        app.screen.query_one("#capability", Input).value = "sentiment"  # part of classify_sentiment
        await wait_for(pilot, lambda: _names(app) == ["mood"])

        price = app.screen.query_one("#max-price", Input)
        price.focus()
        await pilot.press(*"abc")  # not an amount: said once beside the field, no notification per key
        await pilot.pause()
        problem = app.screen.query_one("#filter-problem", Static)
        assert problem.display and str(problem.render()).startswith("max price: ")
        assert price.has_class("-invalid")
        assert not app._notifications
        await pilot.press("slash")
        assert app.screen.focused is app.screen.query_one("#capability", Input)
        assert price.value == "abc"


def _names(app: MotetApp) -> list[str]:
    table = app.screen.query_one("#agents", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def test_f1_on_the_wallet_fits_the_terminal_at_120x40_and_80x24(shared: Market) -> None:
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, WalletScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "Revoke" in app.screen.query_one(Markdown).source
        for size in (SIZE, (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.2)
            box = app.screen.query_one("#help", VerticalScroll)
            region = box.region
            assert region.x >= 0 and region.y >= 0
            assert region.right <= size[0] and region.bottom <= size[1]  # the whole box on the screen
            assert box.max_scroll_x == 0  # nothing cut at the right
            box.scroll_end(animate=False)
            await pilot.pause(0.2)
            assert box.scroll_y == box.max_scroll_y  # what does not fit scrolls into view


async def test_answers_read_as_text_amounts_name_units_and_candidates_are_a_pick_list(shared: Market) -> None:
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        await compile_brief(pilot)
        screen = compose(app)
        nodes = screen.query_one("#nodes", DataTable)
        nodes.move_cursor(row=nodes.get_row_index("summarize"))
        await pilot.pause()
        candidates = screen.query_one("#candidates", DataTable)
        assert cells(candidates, "agent") == ["flaky-summarizer (#7)", "summarizer (#2)"]
        assert cells(candidates, "price") == ["25 gwei", "40 gwei"]
        assert cells(candidates, "stake") == ["0.7000 ETH", "0.2000 ETH"]
        assert cells(candidates, "reputation") == ["-", "-"]  # nobody rated them yet
        candidates.focus()
        await pilot.press("down", "enter")  # pick the summarizer
        await pilot.pause()
        assert app.session.compiled is not None
        assert app.session.compiled.candidates["summarize"][0].agent == "summarizer"
        assert nodes.get_row("summarize")[2] == "summarizer (#2)"
        for column in ("price",):
            assert all(AMOUNT.match(cell) for cell in cells(nodes, column))

        run = await run_sentiment(pilot, 1)
        pane = run.query_one("#pane-sentiment", NodePane)
        assert pane.streamed.startswith('{"')  # the model's JSON as it streamed…
        assert pane.text.startswith("sentiment: ") and '"' not in pane.text  # …then in words
        meter = str(run.query_one("#spent", Static).render())
        assert meter.startswith("budget ") and "spent 10 gwei of 1,000 gwei · 990 gwei left" in meter
        calls = run.query_one("#calls", DataTable)
        assert cells(calls, "price") == ["10 gwei"] and cells(calls, "voucher")[0].startswith("0x")
        history = run.query_one("#history", DataTable)
        assert all(AMOUNT.match(cell) for column in ("spent", "settled") for cell in cells(history, column))


async def test_the_run_screen_lists_the_runs_kept_in_motets_home(shared: Market, motet_home: Path) -> None:
    log = RunLog(motet_home / f"calls-{shared.chain.accounts[0].address.lower()}-1.sqlite")
    log.record_run("0123456789abcdef", "kept-flow", {}, {"text": "t"}, 10**12, source="motet run")
    log.run_status("0123456789abcdef", "settled")
    log.close()
    app = two_workflows_app(shared)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        history = run_screen(app).query_one("#history", DataTable)
        assert cells(history, "workflow") == ["kept-flow"]
        assert cells(history, "status") == ["settled (kept)"] and cells(history, "spent") == ["0 gwei"]


async def test_answers_read_as_text() -> None:  # async: the module's tests share one event loop
    answer: JsonValue = {
        "summary": "Line one.\nLine two.",
        "keywords": ["library", "rooms"],
        "facts": {"open": True},
    }
    assert (
        readable(answer) == "summary: Line one.\n  Line two.\nkeywords: library, rooms\nfacts:\n  open: yes"
    )
