"""Watching a run in a terminal: a live table of nodes while it runs, then the report and the settlement.

`motet run` and the demo story show runs with it; a script on the local market can too:

Example:
    >>> report = runnable.new_report()
    >>> await watch(runnable.stream(inputs, report=report), report, Console())
    >>> Console().print(report_table(report))
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from motet import composer
from motet.units import format_gwei

_MARKS = {"pending": "·", "running": "▶", "done": "✓", "skipped": "–", "failed": "✗"}


def _live_table(report: composer.RunReport, texts: dict[str, str], log: list[str]) -> Group:
    table = Table(title=f"run {report.run_id}", expand=True)
    for column in ("", "node", "agent", "price", "output so far"):
        table.add_column(
            column, overflow="ellipsis", no_wrap=True, ratio=3 if column == "output so far" else None
        )
    for node in report.nodes.values():
        table.add_row(
            _MARKS.get(node.status, "?"),
            f"{node.node} ({node.capability})",
            node.agent,
            format_gwei(node.price) if node.status == "done" else "",
            texts.get(node.node, "")[-80:].replace("\n", " "),
        )
    return Group(table, *(Text.from_markup(line) for line in log[-6:]))


def _log_line(event: composer.Event) -> str | None:
    """What the log under the live table says of `event` (None: nothing)."""
    match event:
        case composer.NodeStarted(node=node, agent=agent):
            return f"[cyan]▶[/] {node}: calling {agent}"
        case composer.Failover(node=node, failed_agent=failed, problem=problem, next_agent=following):
            trying = f", trying {following}" if following else ""
            return f"[yellow]↻ {node}: {failed} failed ({problem[:90]}); not paid{trying}[/]"
        case composer.CallPaid(node=node, agent=agent, price=price, channel=channel, cumulative=cumulative):
            return (
                f"[green]✓[/] {node}: paid {agent} {format_gwei(price)} "
                f"(channel {channel}, voucher for {format_gwei(cumulative)})"
            )
        case composer.Settled(tx_hashes=hashes, paid=paid, gas_used=gas, paid_calls=calls):
            return f"[bold]settled[/] {format_gwei(paid)} for {calls} calls in {len(hashes)} tx, {gas:,} gas"
    return None


async def watch(
    events: AsyncIterator[composer.Event], report: composer.RunReport, console: Console
) -> composer.RunReport:
    """Show `events` live on `console` as they arrive; returns `report` (filled in by the caller's stream)."""
    texts: dict[str, str] = {}
    log: list[str] = []
    with Live(_live_table(report, texts, log), console=console, refresh_per_second=8) as live:
        async for event in events:
            if isinstance(event, composer.TextDelta):
                texts[event.node] = texts.get(event.node, "") + event.text
            elif (line := _log_line(event)) is not None:
                log.append(line)
            live.update(_live_table(report, texts, log))
    return report


def report_table(report: composer.RunReport) -> Group:
    """The run report: per node agent, tokens, price, latency, receipt; then spending and settlement."""
    table = Table(title="run report")
    for column in ("node", "agent", "tokens in/out", "price", "latency", "receipt", "failovers"):
        table.add_column(column, justify="right" if column in ("price", "latency") else "left")
    for node in report.nodes.values():
        table.add_row(
            node.node,
            node.agent if node.status == "done" else node.status,
            f"{node.prompt_tokens}/{node.completion_tokens}",
            format_gwei(node.price),
            f"{node.latency_s:.2f}s",
            node.receipt,
            str(len(node.failovers)),
        )
    lines = [Text(f"spent {format_gwei(report.spent)} of a {format_gwei(report.budget)} budget")]
    if report.settlement is not None:
        settled = report.settlement
        lines.append(
            Text(
                f"settlement: {', '.join(h[:18] + '…' for h in settled.tx_hashes) or 'nothing to redeem'} · "
                f"{format_gwei(settled.paid)} to agents · {settled.gas_used:,} gas = "
                f"{settled.gas_per_paid_call:,.0f} gas per paid call"
            )
        )
    return Group(table, *lines)
