from support.tui import SIZE, brief_app, wait_for
from textual.widgets import DataTable

from motet.composer import Payer, Workflow
from motet.demo import Brief, Market
from motet.trust import Reputation
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


async def test_the_table_and_the_card_pane_show_each_agents_trust_record(market: Market) -> None:
    # A payer pays the reporter for one call, settles, and rates it 80: only payers can.
    chain = market.chain
    flow = Workflow("brief", inputs=Brief).add("report", "compose_report", agent=market.ids["reporter"])
    async with Payer(chain, chain.accounts[9]) as payer:
        report = await (await flow.compile(market.registry, payer=payer, budget=10**16)).run(
            {"summary": "s", "keywords": ["k"], "sentiment": "neutral"}
        )
        ((agent_id, receipt),) = payer.receipts(report.run_id).values()
        Reputation(chain, payer.account).give(agent_id, receipt, 80)

    app = brief_app(chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen) and len(names(app)) == 7)
        screen = app.screen
        assert isinstance(screen, AgentsScreen)
        table = screen.query_one("#agents", DataTable)
        reporter = str(market.ids["reporter"])
        assert [str(table.get_cell(reporter, key)) for key in ("slashes", "reputation", "disputes")] == [
            "0",
            "80/100 (1)",
            "0/0",
        ]
        extractor = str(market.ids["extractor"])
        assert str(table.get_cell(extractor, "reputation")) == "-"  # nobody rated it
        table.move_cursor(row=table.get_row_index(reporter))
        await pilot.pause()
        assert screen.trust_text.startswith("stake 0.6 ETH · no disputes · ★ 80 from ")
