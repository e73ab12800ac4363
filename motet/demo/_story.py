"""`motet demo`: the whole story on a local chain, with the figures that matter.

1. `run_story`: a market of agents on the bundled model, each served over HTTP and registered on chain at
   its own price; a research-brief workflow (extract → [summarize ∥ keywords ∥ sentiment] → report)
   compiled against the registry, run with streaming tokens, a deliberately failing agent failed over and
   not paid, every accepted call paid by voucher, and the run settled in one transaction.
2. `run_demo`: the money path at scale: three channels, 1,000 vouchers signed, verified and persisted on both
   sides, redeemed in one batched transaction, with balances and gas per paid call.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from motet.chain import Chain
from motet.composer.events import RunReport
from motet.payments import ChannelClient, Ledger
from motet.registry import Registry
from motet.runtimes import Runtime

GWEI = 10**9


@dataclass(frozen=True)
class DemoAgent:
    name: str
    capabilities: tuple[str, ...]
    price: int
    stake: int


AGENTS = (
    DemoAgent("summarizer", ("summarize",), price=20 * GWEI, stake=10**18),
    DemoAgent("polyglot", ("translate", "summarize"), price=35 * GWEI, stake=3 * 10**18),
    DemoAgent("keyword-miner", ("extract_keywords",), price=8 * GWEI, stake=10**17),
)


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

    found = registry.search("summarize", max_price=50 * GWEI)
    table = Table(title="search: capability 'summarize', price ≤ 50 gwei")
    for column in ("agent", "price (gwei)", "bonded stake (ETH)", "payout"):
        table.add_column(column)
    for record in found:
        table.add_row(
            f"#{record.agent_id}",
            f"{record.price / GWEI:g}",
            f"{record.bonded_stake / 10**18:g}",
            record.payout,
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
        f"{redemption.gas_used} gas, {redemption.paid} wei paid"
    )

    balances = Table(title="what each agent was paid")
    for column in ("agent", "calls", "owed by vouchers (gwei)", "received on chain (gwei)", "balance (ETH)"):
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
            f"{owed[operator.address] / GWEI:,.0f}",
            f"{received / GWEI:,.0f}",
            f"{after / 10**18:,.4f}",
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


DOCUMENT = (
    "<h1>City opens a new public library</h1><p>The city opened a new public library downtown on Monday. "
    "Visitors praised the bright reading rooms, the large children's section and the friendly staff. The "
    "library is open every day until nine, and membership is free for residents.</p>"
)


async def run_story(
    chain: Chain, *, console: Console | None = None, runtime: Runtime | None = None
) -> RunReport:
    """The market, the workflow, the paid run and its settlement, printed as it happens."""
    from motet.composer import Payer
    from motet.composer.progress import report_table, watch
    from motet.market import local_market, research_brief
    from motet.runtimes import LlamaCppRuntime

    out = console or Console()
    # The agents' own logs (the failing agent's traceback) belong to their operators, not to this screen.
    logging.getLogger("motet.agents.server").setLevel(logging.CRITICAL)
    out.rule(
        f"[bold]motet demo[/] · 1. a market of agents on the {chain.kind} chain (chain id {chain.chain_id})"
    )
    status = out.status("loading the model and starting the agents")
    status.start()
    async with local_market(chain, runtime or LlamaCppRuntime()) as market:
        status.stop()
        table = Table(title="registered agents (each serves HTTP on 127.0.0.1 and signs its receipts)")
        for column in ("id", "agent", "capabilities", "price (gwei)", "stake (ETH)", "endpoint"):
            table.add_column(column)
        for name, server in market.servers.items():
            table.add_row(
                str(market.ids[name]),
                name,
                ", ".join(server.agent.capabilities),
                f"{server.agent.price / GWEI:g}",
                f"{market.registry.get(market.ids[name]).bonded_stake / 10**18:g}",
                str(server.url),
            )
        out.print(table)

        out.rule("2. compose: research brief, agents picked from the registry")
        payer = Payer(chain, chain.accounts[0])
        budget = 10**12
        runnable = await research_brief().compile(market.registry, payer=payer, budget=budget)
        out.print(runnable.ascii())
        out.print(
            f"worst case {runnable.worst_case / GWEI:,.0f} gwei within a budget of {budget / GWEI:,.0f} gwei"
        )

        out.rule("3. run: streamed tokens, failover, a voucher per accepted answer, one settlement")
        report = runnable.new_report()
        try:
            await watch(runnable.stream({"document": DOCUMENT}, report=report), report, out)
        finally:
            await payer.aclose()
        out.print(report_table(report))
        out.print(f"[bold]brief[/]\n{report.outputs['report']['report']}")
        return report


def _gas_used(chain: Chain) -> int:
    assert chain.last_receipt is not None
    return int(chain.last_receipt["gasUsed"])
