"""The demo's story: a market of agents on the bundled model, each served over HTTP and registered on chain at
its own price; a research-brief workflow (extract → [summarize ∥ keywords ∥ sentiment] → report) compiled
against the registry, run with streamed text, a deliberately failing agent failed over and not paid, every
accepted call paid by voucher, one paid call checked by re-running its model, and the run settled in one
transaction; with `--cheater`, a cheating agent caught, disputed and slashed (`_cheat_story.py`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from motet.chain import Chain
from motet.composer import Payer, RunReport
from motet.demo._cheat_story import run_cheater
from motet.demo._market import local_market, research_brief
from motet.demo._progress import report_table, watch
from motet.runtimes import Runtime
from motet.units import GWEI, format_eth, format_gwei

DOCUMENT = (
    "<h1>City opens a new public library</h1><p>The city opened a new public library downtown on Monday. "
    "Visitors praised the bright reading rooms, the large children's section and the friendly staff. The "
    "library is open every day until nine, and membership is free for residents.</p>"
)
"""The document the story's research brief is written from."""

BUDGET = 1_000 * GWEI
"""The story's budget for its run."""


async def run_story(
    chain: Chain,
    *,
    console: Console | None = None,
    runtime: Runtime | None = None,
    cheater: bool = False,
    n_threads: int | None = None,
) -> RunReport:
    """The market, the workflow, the paid run, one check of a paid call and the settlement, printed as it
    happens; with `cheater`, then a cheating agent caught, disputed, decided by three validators and slashed
    (`run_cheater`; its model runs with `n_threads`).

    On a `LlamaCppRuntime` the model agents' capabilities are verifiable and the composer checks one paid
    call by re-running it (a composer draws each call with probability `Settings.trust.sample_rate`; the demo
    draws the first, to show one); on another runtime nothing is checked."""
    from motet.runtimes import LlamaCppRuntime
    from motet.trust import Checker

    out = console or Console()
    runtime = runtime or LlamaCppRuntime(n_threads=n_threads)
    local_model = isinstance(runtime, LlamaCppRuntime)
    # The agents' own logs (the failing agent's traceback) belong to their operators, not to this screen.
    logging.getLogger("motet.agents").setLevel(logging.CRITICAL)
    out.rule(
        f"[bold]motet demo[/] · 1. a market of agents on the {chain.kind} chain (chain id {chain.chain_id})"
    )
    status = out.status("loading the model and starting the agents")
    status.start()
    async with local_market(chain, runtime, verifiable=local_model) as market:
        status.stop()
        table = Table(title="registered agents (each serves HTTP on 127.0.0.1 and signs its receipts)")
        for column in ("id", "agent", "capabilities", "price", "stake", "endpoint"):
            table.add_column(column)
        for name, server in market.servers.items():
            table.add_row(
                str(market.ids[name]),
                name,
                ", ".join(server.agent.capabilities),
                format_gwei(server.agent.price),
                format_eth(market.registry.get(market.ids[name]).bonded_stake),
                str(server.url),
            )
        out.print(table)

        out.rule("2. compose: research brief, agents picked from the registry")
        checker = Checker([runtime]) if isinstance(runtime, LlamaCppRuntime) else None
        payer = Payer(chain, chain.accounts[0], checker=checker, random=_first_only())
        runnable = await research_brief().compile(market.registry, payer=payer, budget=BUDGET)
        out.print(runnable.ascii())
        out.print(f"worst case {format_gwei(runnable.worst_case)} within a budget of {format_gwei(BUDGET)}")

        out.rule("3. run: streamed text, failover, a voucher per accepted answer, one settlement")
        report = runnable.new_report()
        try:
            await watch(runnable.stream({"document": DOCUMENT}, report=report), report, out)
        finally:  # done, failed or stopped: who was paid what, the failovers and why, what is left to settle
            await payer.aclose()
            out.print(report_table(report))
        out.print(f"[bold]brief[/]\n{report.outputs['report']['report']}")
        for check in report.checks:
            out.print(
                f"[bold]checked[/] one paid call, {check.node} by {check.agent}, by re-running the model its "
                f"receipt names ({check.by}): [bold]{check.verdict}[/]: {check.detail}. A composer checks "
                f"{chain.settings.trust.sample_rate:.0%} of its paid calls to verifiable capabilities, drawn "
                "after payment; the demo draws the first."
            )
        if cheater and isinstance(runtime, LlamaCppRuntime):
            await run_cheater(market, runtime, out, n_threads=n_threads)
        return report


def _first_only() -> Callable[[], float]:
    """The demo's draw: check the first paid call to a verifiable capability and none after it."""
    drawn: list[int] = []

    def draw() -> float:
        drawn.append(1)
        return 0.0 if len(drawn) == 1 else 1.0

    return draw
