"""`motet run`: a workflow file, or a workflow planned from a goal, run and paid call by call, live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from motet.cli._console import err, out
from motet.cli._home import ledger, ledger_path
from motet.cli._options import RPC, ChainOption, InputsOption, amount_option, parse_inputs
from motet.units import ETH, Wei

DEFAULT_BUDGET = Wei(ETH // 100)

if TYPE_CHECKING:
    from motet.composer import CompiledWorkflow, Payer
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
    local_agents: Annotated[
        bool,
        typer.Option(
            help="Serve and register motet's built-in agents on the local model first (always on embedded and anvil)."
        ),
    ] = False,
    resume: Annotated[
        str | None, typer.Option(help="Resume the run with this id from its checkpoint.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads for the local agents.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON only.")] = False,
) -> None:
    """Run a workflow file, or plan one from --goal, paying each call: live progress, then the report.

    On a node (rpc or a URL) the payer's vouchers, calls and checkpoints are kept in motet's home, so a run
    can --resume; on a new chain (embedded, anvil) the built-in agents are served for the run."""
    from motet.cli._market import market_registry
    from motet.composer import Payer, Workflow

    if (workflow is None) == (goal is None):
        raise typer.BadParameter("give a workflow file or --goal, not both and not neither")
    values = parse_inputs(inputs)
    node = chain.open()
    kept = not chain.dev  # on a node, what the run signs and did outlives the process

    async def compose(registry: Registry, payer: Payer) -> CompiledWorkflow:
        if workflow is not None:
            flow = Workflow.load(workflow)
        else:
            assert goal is not None
            schema = {
                "type": "object",
                "properties": {k: {"type": "string"} for k in values},
                "required": list(values),
            }
            flow, found = await Workflow.from_goal(goal, inputs=schema, registry=registry)
            err.print(found.explain())
        return await flow.compile(
            registry, payer=payer, budget=budget, checkpoints=ledger_path(node, "runs") if kept else None
        )

    async def go(registry: Registry) -> None:
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
            report = runnable.new_report(resume or "")
            stream = runnable.stream(None if resume else values, run_id=resume, report=report)
            if as_json:
                async for _event in stream:
                    pass
            else:
                await watch(stream, report, err)
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
