"""The payer's account: balance, payment channels, vouchers signed but not redeemed; open, top up, close and
settle channels; the delegations it signed or holds as a session key, and revoking one (each confirmed first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from motet.errors import ChannelNotFound, MotetError
from motet.payments import ChannelClient, ChannelState, DelegationClient, DelegationState
from motet.tui._format import expires, short
from motet.tui._session import Session
from motet.tui.screens.dialogs import AmountScreen, ConfirmScreen
from motet.units import format_eth, format_gwei, plural

MAX_CHANNELS = 10_000
NO_DELEGATIONS = "no delegations — sign one in the gateway's page or with `motet delegate`"


class WalletScreen(Screen[None]):
    """Channels this account pays from. o opens one to an agent, t tops the highlighted one up, c closes it
    (the challenge period starts), s settles it once the period is over (the rest is refunded).

    Below, the delegations this account signed (role delegator) or may spend under (role session key): cap,
    spent, what is left, expiry and status. v revokes the highlighted one, if this account is its delegator."""

    AUTO_FOCUS = "#channels"
    TITLE = "Wallet"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("o", "open", "Open"),
        ("t", "topup", "Top up"),
        ("c", "end('close')", "Close"),
        ("s", "end('settle')", "Settle"),
        ("v", "revoke", "Revoke"),
        ("r", "refresh", "Refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.channels: list[ChannelState] = []
        self.delegations: list[DelegationState] = []
        self._delegation_client: DelegationClient | None = None

    @property
    def client(self) -> ChannelClient:
        return self.session.payer.channels

    @property
    def delegation_client(self) -> DelegationClient:
        if self._delegation_client is None:
            self._delegation_client = DelegationClient(self.session.chain, self.session.account)
        return self._delegation_client

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="account")
        yield DataTable(id="channels", cursor_type="row", zebra_stripes=True)
        yield Static(id="pending")
        yield Static("[b]delegations[/] · this account as delegator or session key", id="delegations-heading")
        yield DataTable(id="delegations", cursor_type="row", zebra_stripes=True)
        yield Static(NO_DELEGATIONS, id="delegations-empty", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#channels", DataTable)
        for key in ("id", "payee", "agent", "deposit", "redeemed", "remaining", "signed", "status"):
            table.add_column(key, key=key)
        table.border_title = "payment channels"
        delegations = self.query_one("#delegations", DataTable)
        for key in ("id", "role", "other party", "cap", "spent", "left", "expires", "status"):
            delegations.add_column(key, key=key)
        self.refresh_wallet()

    def on_screen_resume(self) -> None:
        self.refresh_wallet()

    def action_refresh(self) -> None:
        self.refresh_wallet()

    def refresh_wallet(self) -> None:
        """Read the balance and every channel this account pays from (ids 1, 2, … until one is missing)."""
        client, account = self.client, self.session.account.address
        self.channels = []
        try:
            for channel_id in range(1, MAX_CHANNELS):
                try:
                    state = client.channel(channel_id)
                except ChannelNotFound:
                    break
                if state.payer.lower() == account.lower():
                    self.channels.append(state)
                    if state.closing or state.settled:  # closed here or elsewhere: never pay through it again
                        self.session.payer.forget_channel(channel_id)
            balance = self.session.chain.balance(account)
        except MotetError as exc:
            self.notify(f"{exc}\nCheck the chain is reachable, then press r.", severity="error")
            return
        names = self._agent_names()
        table = self.query_one("#channels", DataTable)
        row = table.cursor_row
        table.clear()
        pending: list[str] = []
        for state in self.channels:
            signed = self._signed(state.channel_id)
            if signed > state.redeemed:
                pending.append(
                    f"channel {hex(state.channel_id)}: {format_gwei(signed - state.redeemed)} signed, not redeemed"
                )
            table.add_row(
                hex(state.channel_id),
                short(state.payee),
                names.get(state.payee.lower(), "-"),
                format_gwei(state.deposit),
                format_gwei(state.redeemed),
                format_gwei(state.remaining),
                format_gwei(signed),
                _status(state),
                key=str(state.channel_id),
            )
        if self.channels:
            table.move_cursor(row=min(row, len(self.channels) - 1))
        self.query_one("#account", Static).update(
            f"account [b]{account}[/] · balance [b]{format_eth(balance)}[/] · {plural(len(self.channels), 'channel')}"
        )
        self.query_one("#pending", Static).update(
            "pending redeems: "
            + ("; ".join(pending) if pending else "none (every signed voucher is redeemed)")
        )
        self.refresh_delegations()

    def refresh_delegations(self) -> None:
        """Read the delegations this account signed, then those it is the session key of, as they stand now."""
        account = self.session.account.address
        try:
            client = self.delegation_client
            found = client.delegations(delegator=account) + client.delegations(session_key=account)
            now = self.session.chain.timestamp()
        except MotetError as exc:
            self.notify(f"{exc}\nCheck the chain is reachable, then press r.", severity="error")
            return
        unique = {state.delegation_id: state for state in found}
        self.delegations = list(unique.values())
        table = self.query_one("#delegations", DataTable)
        row = table.cursor_row
        table.clear()
        for state in self.delegations:
            mine = state.delegator.lower() == account.lower()
            table.add_row(
                short("0x" + state.delegation_id.hex()),
                "delegator" if mine else "session key",
                short(state.session_key if mine else state.delegator),
                format_gwei(state.cap),
                format_gwei(state.spent),
                format_gwei(state.remaining),
                expires(state.expiry, now),
                state.status(now),
                key="0x" + state.delegation_id.hex(),
            )
        if self.delegations:
            table.move_cursor(row=min(row, len(self.delegations) - 1))
        table.display = bool(self.delegations)
        self.query_one("#delegations-empty", Static).display = not self.delegations

    def _signed(self, channel_id: int) -> int:
        voucher = self.client.ledger.highest_signed(self.client.domain, channel_id)
        return voucher.cumulative_amount if voucher else 0

    def _agent_names(self) -> dict[str, str]:
        return {address.lower(): name for name, address in self.session.payees().items()}

    def _selected(self) -> ChannelState | None:
        table = self.query_one("#channels", DataTable)
        if not self.channels:
            self.notify("No channel yet: open one (o) or run a workflow.", severity="warning")
            return None
        return self.channels[min(table.cursor_row, len(self.channels) - 1)]

    def _selected_delegation(self) -> DelegationState | None:
        if not self.delegations:
            self.notify(
                "No delegation yet: sign one in the gateway's page or with `motet delegate`.",
                severity="warning",
                markup=False,
            )
            return None
        table = self.query_one("#delegations", DataTable)
        return self.delegations[min(table.cursor_row, len(self.delegations) - 1)]

    def action_open(self) -> None:
        payees = list(self.session.payees().items())
        if not payees:
            self.notify("No agents to pay: the market is not serving.", severity="error")
            return

        def opened(answer: tuple[str | None, int] | None) -> None:
            if answer is None or answer[0] is None:
                return
            payee: str = answer[0]
            deposit = answer[1]
            self._confirmed(
                f"Open a channel to {short(payee)} with {format_gwei(deposit)}?",
                lambda: self.client.open(payee, deposit),
                "Channel opened.",
            )

        self.app.push_screen(AmountScreen("Open a channel", payees=payees, default="100gwei"), opened)

    def action_topup(self) -> None:
        state = self._selected()
        if state is None:
            return

        def chosen(answer: tuple[str | None, int] | None) -> None:
            if answer is None:
                return
            amount = answer[1]
            self._confirmed(
                f"Top up channel {hex(state.channel_id)} with {format_gwei(amount)}?",
                lambda: self.client.topup(state.channel_id, amount),
                "Channel topped up.",
            )

        self.app.push_screen(
            AmountScreen(f"Top up channel {hex(state.channel_id)}", default="100gwei"), chosen
        )

    def action_end(self, step: Literal["close", "settle"]) -> None:
        """The two steps that end the highlighted channel: close it (the challenge period starts), then settle
        it (the rest is refunded)."""
        state = self._selected()
        if state is None:
            return
        if step == "close":
            question = (
                f"Close channel {hex(state.channel_id)}? The payee can still redeem during the challenge period; "
                "then settle refunds the rest."
            )
            act, done = self._close, "Channel closing: runs from now on pay this agent through a new channel."
        else:
            question = f"Settle channel {hex(state.channel_id)} and refund {format_gwei(state.remaining)}?"
            act, done = self.client.settle, "Channel settled."
        self._confirmed(question, lambda: act(state.channel_id), done)

    def _close(self, channel_id: int) -> object:
        """Close the channel, and have the payer stop paying through it (the next run opens a new one)."""
        state = self.client.close(channel_id)
        self.session.payer.forget_channel(channel_id)
        return state

    def action_revoke(self) -> None:
        state = self._selected_delegation()
        if state is None:
            return
        delegation = short("0x" + state.delegation_id.hex())
        if state.delegator.lower() != self.session.account.address.lower():
            self.notify(
                f"This account is only the session key of delegation {delegation}: its delegator "
                f"{short(state.delegator)} revokes it.",
                severity="warning",
            )
            return
        if state.revoked:
            self.notify(f"Delegation {delegation} is already revoked.", severity="warning")
            return
        self._confirmed(
            f"Revoke delegation {delegation} to {short(state.session_key)} ({format_gwei(state.remaining)} left)? "
            "From now on no channel opens and no voucher redeems under it.",
            lambda: self.delegation_client.revoke(state.delegation_id),
            f"Delegation {delegation} revoked.",
        )

    def _confirmed(self, question: str, act: Callable[[], object], done: str) -> None:
        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                act()
            except MotetError as exc:
                self.notify(f"{exc}", title="Not done", severity="error", timeout=15)
                return
            self.notify(done)
            self.refresh_wallet()

        self.app.push_screen(ConfirmScreen(question), answered)


def _status(state: ChannelState) -> str:
    if state.settled:
        return "settled"
    if state.closing:
        return "closing"
    return "open"
