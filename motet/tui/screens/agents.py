"""The registry: every agent with its capabilities, price, stake, trust record (slashes, reputation from payers,
disputes won and lost), model and endpoint; filter; card detail with the trust record above the card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from web3.exceptions import Web3Exception

from motet.agents import AgentCard, fetch_card, private_endpoints_allowed
from motet.errors import InvalidAmount, MotetError
from motet.registry import AgentRecord
from motet.trust import TrustFacts, trust_facts
from motet.tui._format import reputation
from motet.tui._session import Session
from motet.units import AMOUNT_HELP, format_eth, format_gwei, parse_amount, plural


@dataclass(frozen=True)
class AgentRow:
    record: AgentRecord
    card: AgentCard | None
    problem: str = ""
    facts: TrustFacts | None = None
    """Its trust record on chain; None when the chain's trust contracts cannot be read."""


class AgentsScreen(Screen[None]):
    """Agents registered on chain, with their trust record: slashes, reputation from payers (score/100 and how
    many feedbacks), disputes won/lost; the card pane starts with the same record in words. Type a capability
    or a max price (`40gwei`, `0.01eth`; a bare number is gwei) to filter; pick a row to read its card.

    The text filter keeps the agents whose name or one of whose capabilities contains it, in any case (`summ`
    finds the summarizers). `/` goes to it from anywhere on this screen, Esc clears the filters."""

    AUTO_FOCUS = "#agents"
    TITLE = "Agents"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("r", "refresh", "Refresh"),
        Binding("slash", "focus_filter", "Filter", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.rows: dict[int, AgentRow] = {}
        self.card_json = ""
        """The card shown in the detail pane, as indented JSON."""
        self.trust_text = ""
        """The trust record shown above the card (`TrustFacts.summary()`)."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="name or capability, any part (e.g. summ)", id="capability")
            yield Input(placeholder="max price, e.g. 40gwei or 0.01eth", id="max-price", tooltip=AMOUNT_HELP)
        yield Static("", id="filter-problem", markup=False)
        yield DataTable(id="agents", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="card"):
            yield Static("Select an agent to read its card.", id="card-text")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#agents", DataTable)
        for key, label in (
            ("id", "id"),
            ("name", "name"),
            ("caps", "capabilities"),
            ("price", "price"),
            ("stake", "stake"),
            ("slashes", "slashes"),
            ("reputation", "reputation"),
            ("disputes", "won/lost"),
            ("status", "status"),
            ("model", "model"),
            ("endpoint", "endpoint"),
        ):
            table.add_column(label, key=key)
        await self.refresh_agents()

    async def action_refresh(self) -> None:
        await self.refresh_agents()

    def action_focus_filter(self) -> None:
        self.query_one("#capability", Input).focus()

    async def action_clear_filter(self) -> None:
        self.query_one("#capability", Input).value = ""
        self.query_one("#max-price", Input).value = ""
        await self.refresh_agents()

    @on(Input.Changed)
    async def _filter_changed(self) -> None:
        await self.refresh_agents()

    async def refresh_agents(self) -> None:
        """Search the registry with the filters and fill the table."""
        needle = self.query_one("#capability", Input).value.strip().lower()
        price = self.query_one("#max-price", Input)
        problem = self.query_one("#filter-problem", Static)
        try:
            max_price = parse_amount(price.value) if price.value.strip() else None
        except InvalidAmount as exc:
            # Said once, beside the field, while it is being typed: no notification per keystroke.
            problem.update(f"max price: {exc}")
            problem.display = True
            price.add_class("-invalid")
            return
        problem.display = False
        price.remove_class("-invalid")
        try:
            records = self.session.registry.search(None, max_price=max_price, include_inactive=True)
        except MotetError as exc:
            self.notify(f"{exc}\nCheck the chain is reachable, then press r.", severity="error")
            return
        table = self.query_one("#agents", DataTable)
        table.clear()
        shown = 0
        for record in sorted(records, key=lambda r: r.agent_id):
            row = self.rows.get(record.agent_id)
            if row is None or row.record != record:
                row = await _load(record, private_endpoints_allowed(self.session.chain))
                self.rows[record.agent_id] = row
            if needle and not _matches(row, needle):
                continue
            row = AgentRow(row.record, row.card, row.problem, _facts(self.session, record.agent_id))
            self.rows[record.agent_id] = row
            shown += 1
            card, facts = row.card, row.facts
            table.add_row(
                str(record.agent_id),
                card.name if card else "?",
                ", ".join(c.name for c in card.capabilities) if card else row.problem,
                format_gwei(record.price),
                format_eth(record.bonded_stake),
                str(facts.slashes) if facts else "?",
                reputation(facts),
                f"{facts.disputes_won}/{facts.disputes_lost}" if facts else "?",
                "active" if record.active else "inactive",
                _model(card),
                _endpoint(card),
                key=str(record.agent_id),
            )
        table.border_title = (
            plural(shown, "agent") if shown == len(records) else f"{shown} of {plural(len(records), 'agent')}"
        )
        if shown:
            self._show(int(str(table.ordered_rows[min(table.cursor_row, shown - 1)].key.value)))

    @on(DataTable.RowHighlighted, "#agents")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._show(int(event.row_key.value))

    def _show(self, agent_id: int | None) -> None:
        row = self.rows.get(agent_id) if agent_id is not None else None
        text = self.query_one("#card-text", Static)
        if row is None:
            return
        if row.card is None:
            text.update(f"agent {agent_id}: its card cannot be read ({row.problem})")
            return
        self.card_json = json.dumps(json.loads(row.card.to_json()), indent=2)
        self.trust_text = (
            row.facts.summary() if row.facts is not None else "trust record: cannot be read from this chain"
        )
        text.update(
            Group(
                Text(self.trust_text + "\n"),
                Syntax(self.card_json, "json", word_wrap=True, theme="ansi_dark"),
            )
        )
        self.query_one("#card", VerticalScroll).border_title = f"card of {row.card.name} (#{agent_id})"


async def _load(record: AgentRecord, allow_private: bool) -> AgentRow:
    try:
        return AgentRow(record, await fetch_card(record.agent_uri, allow_private=allow_private))
    except MotetError as exc:
        return AgentRow(record, None, str(exc))


def _facts(session: Session, agent_id: int) -> TrustFacts | None:
    """The agent's trust record, read anew with each refresh (slashes and feedback change)."""
    try:
        return trust_facts(session.chain, agent_id)
    except (MotetError, Web3Exception):
        return None


def _matches(row: AgentRow, needle: str) -> bool:
    """Whether `needle` (lower case) is part of the agent's name or of one of its capabilities, in any case."""
    if row.card is None:
        return False
    return needle in row.card.name.lower() or any(needle in c.name.lower() for c in row.card.capabilities)


def _endpoint(card: AgentCard | None) -> str:
    if card is None:
        return "-"
    try:
        return card.endpoint("motet").removeprefix("http://").removesuffix("/invoke")
    except MotetError:
        return "-"


def _model(card: AgentCard | None) -> str:
    if card is None or card.model is None:
        return "-"
    name = card.model.model.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return name if len(name) <= 24 else name[:23] + "…"
