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
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from motet import composer
from motet.units import format_amount, format_gwei, plural

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
    # Failovers stay on screen with their reasons (the log scrolls): the last frame still says why.
    failed = [_failover_line(failover) for failover in report.failovers]
    return Group(table, *(Text.from_markup(line) for line in [*failed, *log[-6:]]))


def _failover_line(failover: composer.Failover) -> str:
    trying = f", trying {escape(failover.next_agent)}" if failover.next_agent else ""
    return (
        f"[yellow]↻ {escape(failover.node)}: {escape(failover.failed_agent)} failed "
        f"({escape(failover.problem[:160])}); not paid{trying}[/]"
    )


def _log_line(event: composer.Event) -> str | None:
    """What the log under the live table says of `event` (None: nothing)."""
    match event:
        case composer.NodeStarted(node=node, agent=agent):
            return f"[cyan]▶[/] {escape(node)}: calling {escape(agent)}"
        case composer.CallPaid(node=node, agent=agent, price=price, channel=channel, cumulative=cumulative):
            return (
                f"[green]✓[/] {escape(node)}: paid {escape(agent)} {format_gwei(price)} "
                f"(channel {hex(channel)}, voucher for {format_gwei(cumulative)})"
            )
        case composer.Settled(tx_hashes=hashes, paid=paid, gas_used=gas, paid_calls=calls):
            return f"[bold]settled[/] {format_gwei(paid)} for {plural(calls, 'call')} in {len(hashes)} tx, {gas:,} gas"
    return None


async def watch(
    events: AsyncIterator[composer.Event], report: composer.RunReport, console: Console
) -> composer.RunReport:
    """Show `events` live on `console` as they arrive; returns `report` (filled in by the caller's stream)."""
    texts: dict[str, str] = {}
    log: list[str] = []
    try:
        with Live(_live_table(report, texts, log), console=console, refresh_per_second=8) as live:
            async for event in events:
                if isinstance(event, composer.TextDelta):
                    texts[event.node] = texts.get(event.node, "") + event.text
                elif (line := _log_line(event)) is not None:
                    log.append(line)
                live.update(_live_table(report, texts, log))
    finally:
        if not console.is_terminal:  # the last frame, written once to a file or a pipe, ends its line too
            console.line()
    return report


def report_table(report: composer.RunReport) -> Group:
    """The run report: per node agent, tokens, price, latency, receipt; then how the run ended, what was paid
    to whom, what is settled and what is still to settle, each failover and why, and how to resume a run that
    did not finish. Every amount names its unit."""
    table = Table(title=f"run report · {report.run_id}" if report.run_id else "run report")
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
    parts: list[Table | Text] = [table]
    ended = {
        "done": "[green]run done[/]",
        "running": "[yellow]run still running[/]",
        "failed": "[red]run failed[/]",
        "cancelled": "[yellow]run cancelled[/]",
    }[report.status]
    parts.append(Text.from_markup(f"{ended} · run id {report.run_id}"))
    if report.error:
        parts.append(Text(report.error))
    state = "settled" if report.settlement is not None else "still to settle"
    parts += [Text(f"{payment.describe()}: {state}") for payment in report.payments.values()]
    if not report.payments:
        parts.append(Text("paid no agent: nothing was signed"))
    parts.append(Text(f"spent {format_amount(report.spent)} of a {format_amount(report.budget)} budget"))
    if report.settlement is not None:
        settled = report.settlement
        parts.append(
            Text(
                f"settlement: {', '.join(h[:18] + '…' for h in settled.tx_hashes) or 'nothing to redeem'} · "
                f"{format_gwei(settled.paid)} to agents · {settled.gas_used:,} gas = "
                f"{settled.gas_per_paid_call:,.0f} gas per paid call"
            )
        )
    elif report.spent:
        parts.append(
            Text(
                f"settled 0 wei · still to settle {format_amount(report.unsettled)}: vouchers the agents hold "
                "(each agent's server redeems its own; a resumed run settles what is left)"
            )
        )
    for failover in report.failovers:
        trying = f"; then {failover.next_agent}" if failover.next_agent else ""
        parts.append(
            Text(
                f"↻ failover {failover.node}: {failover.failed_agent} failed ({failover.problem}), not paid{trying}"
            )
        )
    if hint := report.how_to_resume():
        parts.append(Text(hint))
    return Group(*parts)
