"""`motet runs | runs show ID | runs resume ID`: the runs `motet run` kept in motet's home, after the fact.

A run on a node (`--chain rpc` or a URL) is kept under its id (the first line `motet run` prints) in the
payer's calls file, `calls-<address>-<chain id>.sqlite` in motet's home: its workflow, inputs and budget, each
call's steps and output, and its settlement transactions. Listing and showing read those files only (no node
needed); resuming needs the node the run was on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from motet.cli._console import err, out
from motet.cli._options import RPC, ChainOption
from motet.units import format_amount

if TYPE_CHECKING:
    from motet.composer import RunLog, RunRecord

app = typer.Typer(
    help="The runs kept in motet's home: list them, show one's report, resume one after a crash.",
    no_args_is_help=False,
)

_STORE = re.compile(r"^calls-(0x[0-9a-f]{40})-(\d+)\.sqlite$")
_STATUS = {
    "running": "unfinished",
    "done": "done, not settled",
    "settled": "settled",
    "failed": "failed",
    "cancelled": "cancelled",
}
"""A kept status as `motet runs` prints it: a run kept as running is one that is running or was killed."""

RunId = Annotated[str, typer.Argument(metavar="ID", help="The run's id (or a prefix only it has).")]


@dataclass(frozen=True)
class _Store:
    path: Path
    payer: str
    chain_id: int


def _stores() -> list[_Store]:
    from motet.cli._home import home

    found = []
    for path in sorted(home().glob("calls-*.sqlite")):
        match = _STORE.match(path.name)
        if match:
            found.append(_Store(path, match.group(1), int(match.group(2))))
    return found


def _open(store: _Store) -> RunLog:
    from motet.composer import RunLog

    return RunLog(store.path)


def _find(run_id: str) -> tuple[_Store, RunRecord]:
    """The store that keeps `run_id` and its record; `RunNotFound` naming motet's home when none does."""
    from motet.cli._home import home
    from motet.errors import RunNotFound

    found: list[tuple[_Store, RunRecord]] = []
    for store in _stores():
        log = _open(store)
        try:
            record = log.run(run_id)
        finally:
            log.close()
        if record is not None:
            found.append((store, record))
    exact = [pair for pair in found if pair[1].run_id == run_id]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    raise RunNotFound(run_id, f"motet's home ({home()})")


def _when(started: float) -> str:
    return datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.callback(invoke_without_command=True)
def runs(ctx: typer.Context) -> None:
    """List the runs kept in motet's home, the newest first: id, workflow, when, status and what it spent.

    A run is kept when it runs on a node (`--chain rpc` or a URL); `motet runs show ID` prints one's report,
    `motet runs resume ID` takes up one that did not finish."""
    if ctx.invoked_subcommand is not None:
        return
    from motet.cli._home import home

    rows: list[tuple[_Store, RunRecord]] = []
    for store in _stores():
        log = _open(store)
        try:
            rows.extend((store, record) for record in log.runs())
        finally:
            log.close()
    if not rows:
        err.print(
            f"no runs kept in {home()}: `motet run` keeps the runs it makes on a node (--chain rpc or a URL)"
        )
        return
    rows.sort(key=lambda pair: pair[1].started, reverse=True)
    err.print(f"runs kept in {home()}, the newest first:")
    lines = [("id", "workflow", "started", "status", "spent", "chain", "from")]
    for store, record in rows:
        lines.append(
            (
                record.run_id,
                record.workflow,
                _when(record.started),
                _STATUS.get(record.status, record.status),
                format_amount(record.spent),
                str(store.chain_id),
                record.source or "Python",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    for line in lines:  # plain columns: whole in a pipe or a narrow terminal, one run per line for grep
        out.print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        )


@app.command("show")
def show(run_id: RunId) -> None:
    """Print a kept run's report: every node with its status, agent, price and output; what was paid to whom;
    the settlement transactions; how to resume it if it did not finish."""
    store, record = _find(run_id)
    log = _open(store)
    try:
        calls = log.calls(record.run_id)
        settlements = log.settlements(record.run_id)
    finally:
        log.close()
    out.print(f"run {record.run_id} · {record.workflow} · {_STATUS.get(record.status, record.status)}")
    out.print(f"started {_when(record.started)} from {record.source or 'Python'} on chain {store.chain_id}")
    out.print(
        f"payer {store.payer} · budget {format_amount(record.budget)} · spent {format_amount(record.spent)}"
    )
    out.print(f"inputs {json.dumps(record.inputs)}")
    paid_to: dict[int, list[int]] = {}
    for node in record.definition.get("nodes", []):
        tried = [c for c in calls if c.node == node["id"]]
        for failed in (c for c in tried if c.status == "failed"):
            out.print(f"  {node['id']}: agent #{failed.agent_id} failed, not paid: {failed.problem}")
        paid = next((c for c in tried if c.status in ("signed", "paid", "delivered")), None)
        if paid is None:
            calling = next((c for c in tried if c.status == "calling"), None)
            state = (
                f"calling agent #{calling.agent_id} (no answer kept: a resume asks again, with the same key)"
                if calling is not None
                else "pending"
            )
            out.print(f"node {node['id']} ({node['capability']}): {state}")
            continue
        paid_to.setdefault(paid.agent_id, []).append(paid.price)
        state = {"delivered": "delivered, not paid yet", "signed": "paid (voucher signed)"}.get(
            paid.status, "paid"
        )
        out.print(
            f"node {node['id']} ({node['capability']}): {state} · agent #{paid.agent_id} · "
            f"{format_amount(paid.price)}"
        )
        out.print(f"  output {json.dumps(paid.output, ensure_ascii=False)}")
    for agent_id, prices in paid_to.items():
        calls_word = "call" if len(prices) == 1 else "calls"
        out.print(f"paid agent #{agent_id}: {len(prices)} {calls_word}, {format_amount(sum(prices))}")
    if not paid_to:
        out.print("paid no agent: nothing was signed")
    for tx_hash, status in settlements:
        out.print(f"settlement {tx_hash}: {_SETTLEMENT.get(status, status)}")
    if record.status != "settled":
        out.print(f"resume: motet runs resume {record.run_id} --chain <the node's URL, or rpc>")


_SETTLEMENT = {
    "sent": "sent, not seen mined yet (a resume looks it up and waits for it)",
    "mined": "mined",
    "dropped": "dropped by the node (its vouchers were sent again)",
}


@app.command("resume")
def resume(
    run_id: RunId,
    chain: ChainOption = RPC,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads for the local agents.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON only.")] = False,
) -> None:
    """Take up a kept run from its checkpoint (the same as `motet run --resume ID`): finished nodes are not
    re-run, no call is paid twice, and a settlement sent before the crash is looked up, never sent again."""
    from motet.cli import run as run_command

    chain.require("rpc", why="a run is kept only on a node (rpc or its URL): give the node the run was on")
    run_command.announce(run_id)
    run_command.execute(run_id, chain=chain, resume=True, threads=threads, as_json=as_json)
