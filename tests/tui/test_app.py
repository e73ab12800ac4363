from support.tui import SIZE, brief_app, wait_for
from textual.widgets import Markdown

from motet.demo import Market
from motet.tui.screens.agents import AgentsScreen
from motet.tui.screens.help import HelpScreen
from motet.tui.screens.wallet import WalletScreen


async def test_the_palette_offers_every_screen_and_the_current_screens_actions(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, WalletScreen))
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Agents", "Compose", "Run", "Wallet", "Help", "Theme"} <= titles
        assert {"Wallet: Open", "Wallet: Top up", "Wallet: Close", "Wallet: Settle"} <= titles


async def test_f1_shows_the_keys_of_the_screen_below(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen))
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one(Markdown).source
        assert "Agents" in text and "Refresh" in text
        await pilot.press("escape")
        assert isinstance(app.screen, AgentsScreen)


async def test_ctrl_t_changes_the_theme_through_the_palette(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AgentsScreen))
        before = app.theme
        await pilot.press("ctrl+t")
        await pilot.pause(0.2)
        await pilot.press("down", "enter")
        await pilot.pause(0.2)
        assert app.theme != before
