from eth_account.signers.local import LocalAccount
from support.tui import SIZE, brief_app, wait_for
from textual.widgets import DataTable, Static

from motet.chain import Chain
from motet.demo import Market
from motet.payments import Delegation, DelegationClient, sign_typed
from motet.tui import MotetApp
from motet.tui._format import short
from motet.tui.screens.dialogs import AmountScreen, ConfirmScreen
from motet.tui.screens.wallet import WalletScreen


def wallet(app: MotetApp) -> WalletScreen:
    screen = app.screen
    assert isinstance(screen, WalletScreen)
    return screen


async def test_open_close_and_settle_a_channel_each_confirmed(market: Market) -> None:
    app = brief_app(market.chain, market)
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
        assert opened.deposit == 100 * 10**9 and opened.payer == app.session.account.address
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

        app.session.chain.advance_time(
            app.session.payer.channels.contract.functions.CHALLENGE_PERIOD().call() + 1
        )
        await pilot.press("s", "y")
        await wait_for(pilot, lambda: wallet(app).channels[0].settled)
        assert wallet(app).query_one("#channels", DataTable).get_row("1")[-1] == "settled"


async def test_channels_of_a_run_with_nothing_left_to_redeem(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3", "c")
        await wait_for(pilot, lambda: app.session.compiled is not None)
        await pilot.press("r")
        await wait_for(pilot, lambda: getattr(app.screen, "state", "") == "settled")
        await pilot.press("f5")
        screen = wallet(app)
        # one channel per agent tried, the failed one included (it was opened, never paid)
        assert len(screen.channels) == 6
        assert sum(c.redeemed for c in screen.channels) == 75 * 10**9
        assert "none" in str(screen.query_one("#pending").render())


def register(chain: Chain, delegator: LocalAccount, session_key: str, *, cap: int, nonce: int = 1) -> bytes:
    """Register a delegation from `delegator` to `session_key` for an hour, in a block 10 s from now, so the
    wallet reads its expiry as exactly 'in 59 min'."""
    client = DelegationClient(chain, delegator)
    now = chain.timestamp()
    delegation = Delegation(
        delegator=delegator.address,
        session_key=session_key,
        cap=cap,
        valid_after=now,
        expiry=now + 10 + 59 * 60,
        capabilities=("summarize",),
        nonce=nonce,
    )
    chain.set_next_timestamp(now + 10)
    return client.register(delegation, sign_typed(bytes(delegator.key), delegation.digest(client.domain)))


def delegation_row(app: MotetApp, delegation_id: bytes) -> list[object]:
    return wallet(app).query_one("#delegations", DataTable).get_row("0x" + delegation_id.hex())


async def test_delegations_as_delegator_and_as_session_key(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        assert wallet(app).delegations == []
        assert wallet(app).query_one("#delegations-empty").display
        assert "no delegations" in str(wallet(app).query_one("#delegations-empty", Static).render())

        other = app.session.chain.accounts[1]
        given = register(app.session.chain, app.session.account, other.address, cap=500 * 10**9)
        await pilot.press("r")
        await pilot.pause()
        assert not wallet(app).query_one("#delegations-empty").display
        assert delegation_row(app, given) == [
            short("0x" + given.hex()),
            "delegator",
            short(other.address),
            "500 gwei",
            "0 gwei",
            "500 gwei",
            "in 59 min",
            "active",
        ]

        held = register(app.session.chain, other, app.session.account.address, cap=7 * 10**9)
        await pilot.press("r")
        await pilot.pause()
        assert [d.delegation_id for d in wallet(app).delegations] == [given, held]
        row = delegation_row(app, held)
        assert row[1:3] == ["session key", short(other.address)]
        assert row[3:] == ["7 gwei", "0 gwei", "7 gwei", "in 59 min", "active"]

        app.session.chain.advance_time(62 * 60)
        app.session.chain.transfer(other.address, 1)  # mine a block at the new time
        await pilot.press("r")
        await pilot.pause()
        assert delegation_row(app, given)[-2:] == ["expired 3 min ago", "expired"]


async def test_revoke_a_delegation_confirmed_first(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        given = register(
            app.session.chain, app.session.account, app.session.chain.accounts[1].address, cap=10**12
        )
        await pilot.press("f5")
        assert delegation_row(app, given)[-1] == "active"

        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # changed our mind: nothing happens
        await pilot.pause()
        assert not wallet(app).delegations[0].revoked
        assert not app.session.payer.channels.contract.functions.revoked(
            app.session.account.address, given
        ).call()

        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(
            pilot, lambda: isinstance(app.screen, WalletScreen) and wallet(app).delegations[0].revoked
        )
        assert delegation_row(app, given)[-1] == "revoked"
        state = DelegationClient(app.session.chain).state(given)
        assert state is not None and state.revoked
        assert app.session.payer.channels.contract.functions.revoked(
            app.session.account.address, given
        ).call()

        await pilot.press("v")  # already revoked: refused, nothing asked
        await pilot.pause()
        assert isinstance(app.screen, WalletScreen)
        assert any("already revoked" in str(n.message) for n in app._notifications)


async def test_a_session_key_cannot_revoke(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        delegator = app.session.chain.accounts[1]
        held = register(app.session.chain, delegator, app.session.account.address, cap=10**12)
        await pilot.press("f5")
        assert delegation_row(app, held)[1] == "session key"
        block = app.session.chain.w3.eth.block_number

        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, WalletScreen)  # no confirmation asked
        (refusal,) = [n for n in app._notifications if "session key" in str(n.message)]
        assert refusal.severity == "warning" and short(delegator.address) in str(refusal.message)
        assert app.session.chain.w3.eth.block_number == block  # no transaction sent
        state = DelegationClient(app.session.chain).state(held)
        assert state is not None and not state.revoked
        assert delegation_row(app, held)[-1] == "active"
