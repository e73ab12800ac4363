from textual.widgets import DataTable
from tui_helpers import SIZE, wait_for

from motet.market import Market
from motet.tui import MotetApp
from motet.tui.screens.dialogs import AmountScreen, ConfirmScreen
from motet.tui.screens.wallet import WalletScreen


def wallet(app: MotetApp) -> WalletScreen:
    screen = app.screen
    assert isinstance(screen, WalletScreen)
    return screen


async def test_open_close_and_settle_a_channel_each_confirmed(market: Market) -> None:
    app = MotetApp(market.chain, market=market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        assert wallet(app).channels == []

        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, AmountScreen))
        app.screen.query_one("#amount").focus()
        await pilot.press("enter")  # the default: 100 gwei to the first agent
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, WalletScreen) and len(wallet(app).channels) == 1)
        (opened,) = wallet(app).channels
        assert opened.deposit == 100 * 10**9 and opened.payer == app.account.address
        assert wallet(app).query_one("#channels", DataTable).get_row("1")[-1] == "open"

        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # changed our mind: nothing happens
        await pilot.pause()
        assert not wallet(app).channels[0].closing

        await pilot.press("c", "y")
        await wait_for(pilot, lambda: wallet(app).channels[0].closing)

        await pilot.press("s", "y")  # too early: the challenge period is running
        await pilot.pause()
        assert not wallet(app).channels[0].settled

        app.chain.advance_time(app.payer.channels.contract.functions.CHALLENGE_PERIOD().call() + 1)
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: wallet(app).channels[0].settled)
        assert wallet(app).query_one("#channels", DataTable).get_row("1")[-1] == "settled"


async def test_channels_of_a_run_with_nothing_left_to_redeem(market: Market) -> None:
    app = MotetApp(market.chain, market=market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3", "c")
        await wait_for(pilot, lambda: app.compiled is not None)
        await pilot.press("r")
        await wait_for(pilot, lambda: getattr(app.screen, "state", "") == "settled")
        await pilot.press("f5")
        screen = wallet(app)
        # one channel per agent tried, the failed one included (it was opened, never paid)
        assert len(screen.channels) == 6
        assert sum(c.redeemed for c in screen.channels) == 75 * 10**9
        assert "none" in str(screen.query_one("#pending").render())
