from support.tui import SIZE, brief_app, wait_for
from textual.widgets import DataTable

from motet.demo import Market
from motet.tui import MotetApp
from motet.tui.screens.agents import AgentsScreen


def names(app: MotetApp) -> list[str]:
    table = app.screen.query_one("#agents", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def test_lists_every_agent_and_filters_by_capability_and_price(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen) and len(names(app)) == 7)
        assert set(names(app)) == set(market.ids)

        await pilot.press("slash", *"summarize")
        await wait_for(pilot, lambda: len(names(app)) == 2)
        assert sorted(names(app)) == ["flaky-summarizer", "summarizer"]

        await pilot.press("tab", *"30")  # max price 30 gwei: the summarizer (40) drops out
        await wait_for(pilot, lambda: names(app) == ["flaky-summarizer"])


async def test_the_detail_pane_shows_the_highlighted_agents_card(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen) and len(names(app)) == 7)
        await pilot.press("down")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AgentsScreen)
        card = screen.card_json
        assert '"name": "summarizer"' in card
        assert '"summarize"' in card and "inputSchema" in card
