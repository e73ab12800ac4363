"""Watching a run in the terminal: a live table of nodes while it runs, then the report and the settlement."""

from __future__ import annotations

from collections.abc import AsyncIterator

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from motet.composer.events import (
    CallPaid,
    Event,
    Failover,
    NodeDone,
    NodeSkipped,
    NodeStarted,
    RunReport,
    Settled,
    Token,
)

_MARKS = {"pending": "·", "running": "▶", "done": "✓", "skipped": "–", "failed": "✗"}


def _live_table(report: RunReport, tokens: dict[str, str], log: list[str]) -> Group:
    table = Table(title=f"run {report.run_id}", expand=True)
    for column in ("", "node", "agent", "price (wei)", "output so far"):
        table.add_column(
            column, overflow="ellipsis", no_wrap=True, ratio=3 if column == "output so far" else None
        )
    for node in report.nodes.values():
        table.add_row(
            _MARKS.get(node.status, "?"),
            f"{node.node} ({node.capability})",
            node.agent,
            f"{node.price:,}" if node.status == "done" else "",
            tokens.get(node.node, "")[-80:].replace("\n", " "),
        )
    return Group(table, *(Text.from_markup(line) for line in log[-6:]))


async def watch(events: AsyncIterator[Event], report: RunReport, console: Console) -> RunReport:
    """Show `events` live on `console` as they arrive; returns `report` (filled in by the caller's stream)."""
    tokens: dict[str, str] = {}
    log: list[str] = []
    with Live(
        _live_table(report, tokens, log), console=console, refresh_per_second=8, transient=False
    ) as live:
        async for event in events:
            match event:
                case Token(node=node, text=text):
                    tokens[node] = tokens.get(node, "") + text
                case NodeStarted(node=node, agent=agent):
                    log.append(f"[cyan]▶[/] {node}: calling {agent}")
                case Failover(node=node, failed_agent=failed, problem=problem, next_agent=following):
                    log.append(
                        f"[yellow]↻ {node}: {failed} failed ({problem[:90]}); not paid"
                        + (f", trying {following}" if following else "")
                        + "[/]"
                    )
                case CallPaid(node=node, agent=agent, price=price, channel=channel, cumulative=cumulative):
                    log.append(
                        f"[green]✓[/] {node}: paid {agent} {price:,} wei (channel {channel}, voucher {cumulative:,})"
                    )
                case NodeDone() | NodeSkipped():
                    pass
                case Settled(tx_hashes=hashes, paid=paid, gas_used=gas, paid_calls=calls):
                    log.append(
                        f"[bold]settled[/] {paid:,} wei for {calls} calls in {len(hashes)} tx, {gas:,} gas"
                    )
                case _:
                    pass
            live.update(_live_table(report, tokens, log))
    return report


def report_table(report: RunReport) -> Group:
    """The run report: per node agent, tokens, price, latency, receipt; then spending and settlement."""
    table = Table(title="run report")
    for column in ("node", "agent", "tokens in/out", "price (wei)", "latency", "receipt", "failovers"):
        table.add_column(column, justify="right" if column in ("price (wei)", "latency") else "left")
    for node in report.nodes.values():
        table.add_row(
            node.node,
            node.agent if node.status == "done" else node.status,
            f"{node.prompt_tokens}/{node.completion_tokens}",
            f"{node.price:,}",
            f"{node.latency_s:.2f}s",
            node.receipt,
            str(len(node.failovers)),
        )
    lines = [Text(f"spent {report.spent:,} of a {report.budget:,} wei budget")]
    if report.settlement is not None:
        settled = report.settlement
        lines.append(
            Text(
                f"settlement: {', '.join(h[:18] + '…' for h in settled.tx_hashes) or 'nothing to redeem'} · "
                f"{settled.paid:,} wei to agents · {settled.gas_used:,} gas = "
                f"{settled.gas_per_paid_call:,.0f} gas per paid call"
            )
        )
    return Group(table, *lines)
