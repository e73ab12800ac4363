"""`motet run`: a workflow file, or a workflow planned from a goal, run and paid call by call, live.

The run's id is the first line of every output (`run <id>` on stderr, whatever else is redirected): on a node
the run is kept in motet's home under that id, and `motet run --resume ID` (or `motet runs resume ID`) takes it
up from its checkpoint after a crash, with nothing else to give.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from motet.cli._console import err, out
from motet.cli._home import ledger, ledger_path
from motet.cli._options import (
    RPC,
    ChainOption,
    ChannelsOption,
    InputsOption,
    RegistryOption,
    amount_option,
    parse_inputs,
)
from motet.units import ETH, Wei

DEFAULT_BUDGET = Wei(ETH // 100)

if TYPE_CHECKING:
    from motet.chain import Chain
    from motet.composer import CompiledWorkflow, Payer, RunRecord
    from motet.registry import Registry


def run(
    workflow: Annotated[
        Path | None, typer.Argument(help="A workflow file (.toml, .yaml); omit with --goal.", exists=True)
    ] = None,
    inputs: InputsOption = None,
    goal: Annotated[str | None, typer.Option(help="Plan a workflow that ends in this capability.")] = None,
    budget: Annotated[
        Wei, amount_option("The most the run may spend", "0.01eth", positive=True)
    ] = DEFAULT_BUDGET,
    chain: ChainOption = RPC,
    registry: RegistryOption = None,
    channels: ChannelsOption = None,
    local_agents: Annotated[
        bool,
        typer.Option(
            help="Serve and register motet's built-in agents on the local model first (always on embedded and anvil)."
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="Resume the kept run with this id (printed first by the run; `motet runs` lists them): its "
            "workflow, inputs and budget come from its checkpoint.",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads for the local agents.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON only.")] = False,
) -> None:
    """Run a workflow file, or plan one from --goal, paying each call: live progress, then the report.

    On a node (rpc or a URL) the payer's vouchers, calls and checkpoints are kept in motet's home under the
    run's id (printed first), so a run that dies resumes with `--resume ID`; on a new chain (embedded, anvil)
    the built-in agents are served for the run."""
    if resume is not None:
        if workflow is not None or goal is not None or inputs:
            raise typer.BadParameter(
                "--resume takes the workflow, inputs and budget from the run's checkpoint: leave out the "
                "workflow file, --goal and --input",
                param_hint="--resume",
            )
        chain.require(
            "rpc", why="a run is kept only on a node (rpc or its URL): give the node the run was on"
        )
    elif (workflow is None) == (goal is None):
        raise typer.BadParameter("give a workflow file or --goal, not both and not neither")
    elif workflow is not None:  # a bad file or input is one line, before a run id, a chain or a model
        from motet.composer import Workflow

        Workflow.load(workflow).validate_inputs(parse_inputs(inputs))
    run_id = resume or uuid.uuid4().hex[:16]
    announce(run_id)
    execute(
        run_id,
        chain=chain.naming(registry=registry, channels=channels),
        workflow=workflow,
        goal=goal,
        values=parse_inputs(inputs),
        budget=budget,
        local_agents=local_agents,
        resume=resume is not None,
        threads=threads,
        as_json=as_json,
    )


def announce(run_id: str) -> None:
    """The run's id, first and on its own line, on stderr: what a killed run leaves behind to resume it by,
    even with the rest redirected, piped or in --json mode."""
    print(f"run {run_id}", file=sys.stderr, flush=True)


def execute(
    run_id: str,
    *,
    chain: Any,
    workflow: Path | None = None,
    goal: str | None = None,
    values: dict[str, str] | None = None,
    budget: int = DEFAULT_BUDGET,
    local_agents: bool = False,
    resume: bool = False,
    threads: int | None = None,
    as_json: bool = False,
) -> None:
    """Run (or, with `resume`, take up the kept run) `run_id` on `chain` (a `ChainChoice`), live, then print
    its report and its outputs."""
    from motet.cli._market import market_registry
    from motet.composer import Payer, Workflow

    values = dict(values or {})
    # The file is read and the inputs checked before the chain opens or a model loads: a malformed file or a
    # missing, unknown or mistyped input is one line naming what to fix, and costs nothing.
    loaded = Workflow.load(workflow) if workflow is not None and not resume else None
    if loaded is not None:
        values.update(loaded.validate_inputs(values))
    node = chain.open()
    kept = not chain.dev  # on a node, what the run signs and did outlives the process

    async def compose(registry: Registry, payer: Payer) -> CompiledWorkflow:
        nonlocal budget, run_id
        source = ""
        if resume:
            record = kept_run(payer, run_id, node)
            flow, budget, source = Workflow.from_dict(record.definition), record.budget, record.source
            run_id = record.run_id  # the whole id, when a prefix was given
        elif loaded is not None:
            flow, source = loaded, str(workflow)
        else:
            assert goal is not None
            schema = {
                "type": "object",
                "properties": {k: {"type": "string"} for k in values},
                "required": list(values),
            }
            flow, found = await Workflow.from_goal(goal, inputs=schema, registry=registry)
            err.print(found.explain())
            source = f"--goal {goal}"
        runnable = await flow.compile(
            registry, payer=payer, budget=budget, checkpoints=ledger_path(node, "runs") if kept else None
        )
        if not resume:
            payer.record_run(run_id, flow.name, runnable.definition(), values, budget, source=source)
        return runnable

    async def go(registry: Registry) -> None:
        from collections.abc import AsyncGenerator

        from motet.demo import report_table, watch

        payer = Payer(
            node,
            node.default_account,
            store=ledger_path(node, "calls") if kept else ":memory:",
            ledger=ledger(node, "payer") if kept else None,
        )
        try:
            runnable = await compose(registry, payer)
            if not as_json:
                err.print(runnable.ascii())
            for tx_hash in payer.pending_settlement(run_id):
                err.print(
                    f"settlement transaction {tx_hash} was sent before the run stopped: looking it up and "
                    "waiting for it (never sent twice)",
                    soft_wrap=True,  # one line, whatever the width: a script waits for it
                )
            report = runnable.new_report(run_id)
            report.resume_hint = resume_hint(run_id, node, kept=kept)
            stream = runnable.stream(None if resume else values, run_id=run_id, report=report)
            try:
                if as_json:
                    async for _event in stream:
                        pass
                else:
                    await watch(stream, report, err)
            finally:  # failed, cancelled (ctrl+c, SIGTERM) or done: what was paid to whom, and how to resume
                if isinstance(stream, AsyncGenerator):  # stopped inside `watch`: the stream ends as cancelled
                    await stream.aclose()
                if report.status != "done" or not as_json:
                    err.print(report_table(report))
            out.print(json.dumps(report.outputs, indent=None if as_json else 2))
        finally:
            await payer.aclose()

    async def main() -> None:
        async with market_registry(node, serve_agents=local_agents or chain.dev, threads=threads) as registry:
            await go(registry)

    try:
        asyncio.run(main())
    finally:
        node.close()


def resume_hint(run_id: str, node: Chain, *, kept: bool) -> str:
    """How to resume `run_id` from a shell, as its report says when the run did not finish."""
    if kept:
        return (
            f"resume it with `motet run --resume {run_id}` (or `motet runs resume {run_id}`), with the same "
            "--chain: finished nodes are not re-run and no call is paid twice"
        )
    return (
        f"the {node.kind} chain ended with this command, and the run with it: nothing to resume (a run on a "
        f"node, --chain rpc or its URL, is kept and resumes with `motet run --resume {run_id}`)"
    )


def kept_run(payer: Payer, run_id: str, node: Chain) -> RunRecord:
    """The run kept under `run_id` by this payer on this node; `RunNotFound` naming where it looked."""
    from motet.errors import RunNotFound

    record = payer.run(run_id)
    if record is None:
        where = (
            f"{ledger_path(node, 'calls')} (account {node.default_account.address}, chain {node.chain_id})"
        )
        raise RunNotFound(run_id, where)
    return record
