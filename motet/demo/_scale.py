"""The money path at scale: three channels, vouchers signed, verified and persisted on both sides, redeemed in
one batched transaction, with balances and gas per paid call."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from motet.chain import Chain
from motet.payments import ChannelClient, Ledger
from motet.registry import Registry
from motet.units import ETH, GWEI, format_eth, format_gwei


@dataclass(frozen=True)
class DemoAgent:
    name: str
    capabilities: tuple[str, ...]
    price: int
    """Wei per call."""
    stake: int
    """Wei bonded at registration."""


AGENTS = (
    DemoAgent("summarizer", ("summarize",), price=20 * GWEI, stake=ETH),
    DemoAgent("polyglot", ("translate", "summarize"), price=35 * GWEI, stake=3 * ETH),
    DemoAgent("keyword-miner", ("extract_keywords",), price=8 * GWEI, stake=ETH // 10),
)
MAX_PRICE = 50 * GWEI
"""The search's price ceiling: the two summarizers are under it."""


def registration_uri(agent: DemoAgent) -> str:
    """A minimal ERC-8004 `registration-v1` file as a `data:` URI (the full card comes with agents)."""
    card = {
        "type": "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
        "name": agent.name,
        "description": f"demo agent offering {', '.join(agent.capabilities)}",
        "services": [],
        "x402Support": True,
        "registrations": [],
    }
    encoded = base64.b64encode(json.dumps(card, separators=(",", ":")).encode()).decode()
    return f"data:application/json;base64,{encoded}"


def run_demo(chain: Chain, *, calls: int = 1_000, console: Console | None = None) -> dict[str, int]:
    """Run the demo on `chain`; returns the headline figures (also printed)."""
    out = console or Console()
    out.rule(f"[bold]motet demo[/] on the {chain.kind} chain (chain id {chain.chain_id})")

    started = time.perf_counter()
    registry = Registry(chain)
    channels_contract = chain.contract("PaymentChannels")
    out.print(
        f"deployed AgentRegistry at {registry.contract.address} and PaymentChannels at "
        f"{channels_contract.address} in {time.perf_counter() - started:.1f}s"
    )

    composer = chain.accounts[0]
    operators = chain.accounts[1 : 1 + len(AGENTS)]
    ids = []
    for agent, operator in zip(AGENTS, operators, strict=True):
        agent_id = registry.register(
            registration_uri(agent), agent.capabilities, agent.price, stake=agent.stake, owner=operator
        )
        ids.append(agent_id)
    out.print(
        f"registered {len(ids)} agents: "
        + ", ".join(f"#{i} {a.name}" for i, a in zip(ids, AGENTS, strict=True))
    )

    found = registry.search("summarize", max_price=MAX_PRICE)
    table = Table(title=f"search: capability 'summarize', price ≤ {format_gwei(MAX_PRICE)}")
    for column in ("agent", "price", "bonded stake", "payout"):
        table.add_column(column)
    for record in found:
        table.add_row(
            f"#{record.agent_id}", format_gwei(record.price), format_eth(record.bonded_stake), record.payout
        )
    out.print(table)

    payer = ChannelClient(chain, composer, Ledger())
    payee_ledger = Ledger()  # the agents' side; one relayer redeems for all of them
    payees: dict[str, ChannelClient] = {
        op.address: ChannelClient(chain, op, payee_ledger) for op in operators
    }
    open_gas = []
    channels = []
    for agent, operator in zip(AGENTS, operators, strict=True):
        deposit = agent.price * calls
        state = payer.open(operator.address, deposit)
        open_gas.append(_gas_used(chain))
        channels.append((state, agent.price))
    out.print(
        f"opened {len(channels)} channels from {composer.address}; open gas: {', '.join(map(str, open_gas))}"
    )

    before = {address: chain.balance(address) for address in payees}
    owed: dict[str, int] = dict.fromkeys(payees, 0)
    t0 = time.perf_counter()
    with Progress(console=out, transient=True) as progress:
        task = progress.add_task("paying calls with vouchers", total=calls)
        for n in range(calls):
            state, price = channels[n % len(channels)]
            voucher = payer.pay(state.channel_id, price)
            owed[state.payee] += payees[state.payee].receive(voucher)
            progress.advance(task)
    elapsed = time.perf_counter() - t0
    out.print(
        f"signed, verified and persisted {calls} vouchers in {elapsed:.2f}s "
        f"({calls / elapsed:,.0f} paid calls/s, no gas)"
    )

    relayer = ChannelClient(chain, operators[0], payee_ledger)
    (redemption,) = relayer.redeem()
    out.print(
        f"redeemed {redemption.vouchers} channels in one transaction {redemption.tx_hash[:18]}…: "
        f"{redemption.gas_used} gas, {format_gwei(redemption.paid)} paid"
    )

    balances = Table(title="what each agent was paid")
    for column in ("agent", "calls", "owed by vouchers", "received on chain", "balance"):
        balances.add_column(column, justify="right" if column != "agent" else "left")
    assert chain.last_receipt is not None  # the redeem
    relayer_gas = redemption.gas_used * int(chain.last_receipt["effectiveGasPrice"])
    for agent, operator in zip(AGENTS, operators, strict=True):
        after = chain.balance(operator.address)
        # The relayer paid the redeem's gas; add it back so the change shows what the vouchers paid.
        received = after - before[operator.address] + (relayer_gas if operator == relayer.account else 0)
        balances.add_row(
            agent.name,
            str(owed[operator.address] // agent.price),
            format_gwei(owed[operator.address]),
            format_gwei(received),
            format_eth(after),
        )
    out.print(balances)

    total_gas = sum(open_gas) + redemption.gas_used
    per_call = total_gas / calls
    out.print(
        f"[bold]gas per paid call[/]: ({' + '.join(map(str, open_gas))} to open + {redemption.gas_used} to "
        f"redeem) / {calls} calls = [bold]{per_call:,.1f} gas[/] (a plain transfer per call costs 21,000)"
    )
    return {
        "calls": calls,
        "open_gas": sum(open_gas),
        "redeem_gas": redemption.gas_used,
        "gas_per_call_x1000": round(per_call * 1000),
    }


def _gas_used(chain: Chain) -> int:
    assert chain.last_receipt is not None
    return int(chain.last_receipt["gasUsed"])
