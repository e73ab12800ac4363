"""A run that fails or is cancelled still says what it paid to whom, what is settled, what is still to settle
and how to resume it; a finished one says it settled. Agents are Python functions behind real HTTP servers on
the embedded chain; the middle node of three fails with every agent (or hangs until the run is cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import BaseModel
from rich.console import Console

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CallPaid, Failover, Payer, RunReport, Workflow
from motet.demo import report_table
from motet.errors import ModelRuntimeError, NodeFailed, WorkflowInputError
from motet.payments import ChannelClient
from motet.registry import Registry

PRICE = 7 * 10**12
"""The first node's price: 7,000 gwei (what the report must name)."""


class Text(BaseModel):
    text: str


class Upper(BaseModel):
    upper: str


@dataclass
class Market:
    chain: Chain
    registry: Registry
    payees: dict[str, str]
    ids: dict[str, int]
    hang: asyncio.Event
    """Set by an agent of the middle node that hangs: the run is then inside that node."""
    release: asyncio.Event
    """Set by the test once it cancelled the run: the hanging agent may return."""


def agents(hang: asyncio.Event, release: asyncio.Event) -> list[Agent]:
    shouter = Agent("shouter", price=PRICE)
    flaky = Agent("flaky", price=PRICE // 7)
    broken = Agent("broken", price=PRICE // 7 * 2)
    echo = Agent("echo", price=PRICE)

    @shouter.capability("shout")
    async def shout(request: Text, ctx: CallContext) -> Upper:
        return Upper(upper=request.text.upper())

    @flaky.capability("check")
    async def check_flaky(request: Upper, ctx: CallContext) -> Upper:
        raise ModelRuntimeError("disk full on the flaky agent")

    @broken.capability("check")
    async def check_broken(request: Upper, ctx: CallContext) -> Upper:
        raise RuntimeError("the broken agent has no model")  # a bug: the agent tells only its incident id

    @shouter.capability("wait")
    async def wait(request: Upper, ctx: CallContext) -> Upper:
        hang.set()
        await asyncio.wait_for(release.wait(), timeout=60)  # the run is cancelled meanwhile
        return request

    @echo.capability("echo")
    async def echoed(request: Upper, ctx: CallContext) -> Upper:
        return request

    return [shouter, flaky, broken, echo]


pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market() -> AsyncIterator[Market]:
    """One market for the module's runs (each runs with its own payer)."""
    chain = Chain.embedded()
    registry = Registry(chain)
    hang, release = asyncio.Event(), asyncio.Event()
    payees: dict[str, str] = {}
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate(agents(hang, release), start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[agent.name] = await server.register(registry, stake=10**17)
            payees[agent.name] = server.account.address
        yield Market(chain, registry, payees, ids, hang, release)
        release.set()


def flow(middle: str) -> Workflow:
    return (
        Workflow("three", inputs=Text)
        .add("shout", "shout")
        .add("middle", middle, after="shout")
        .add("last", "echo", after="middle")
    )


def printed(report: RunReport) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(report_table(report))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


async def test_a_failed_run_reports_who_was_paid_what_is_unsettled_the_failovers_and_how_to_resume(
    market: Market, tmp_path: Path
) -> None:
    payer = Payer(market.chain, market.chain.accounts[8], store=tmp_path / "calls.sqlite")
    runnable = await flow("check").compile(
        market.registry, payer=payer, budget=10**16, checkpoints=tmp_path / "runs.sqlite"
    )
    report = runnable.new_report()
    with pytest.raises(NodeFailed, match="node 'middle' failed with every agent"):
        async for _event in runnable.stream({"text": "hi"}, report=report):
            pass
    await payer.aclose()

    shouter = f"shouter (#{market.ids['shouter']})"
    assert report.status == "failed"
    assert "node 'middle' failed with every agent" in report.error
    assert list(report.payments) == [shouter]  # only the agent that delivered: the failing ones are not paid
    (paid,) = report.payments.values()
    assert (paid.agent_id, paid.payee, paid.calls, paid.paid) == (
        market.ids["shouter"],
        market.payees["shouter"],
        1,
        PRICE,
    )
    (channel,) = paid.channels
    assert (report.spent, report.settled, report.unsettled) == (PRICE, 0, PRICE)
    # Still to settle indeed: the voucher is signed and the agent holds it, but nothing is redeemed on chain.
    assert ChannelClient(market.chain, market.chain.accounts[1]).channel(channel).redeemed == 0
    assert [(f.node, f.failed_agent.split()[0]) for f in report.failovers] == [
        ("middle", "flaky"),
        ("middle", "broken"),
    ]
    assert "disk full on the flaky agent" in report.failovers[0].problem
    assert report.nodes["middle"].status == "failed" and report.nodes["last"].status == "pending"
    assert report.resumable and f"run_id={report.run_id!r}" in report.how_to_resume()

    summary = report.summary()
    assert f"run {report.run_id} failed: node 'middle' failed with every agent" in summary
    assert (
        f"paid {shouter} 7,000 gwei for 1 call · to {market.payees['shouter']} · channel {hex(channel)}: still to settle"
        in summary
    )
    assert "settled 0 wei; still to settle 7,000 gwei" in summary
    assert "failover: middle: flaky" in summary and "disk full on the flaky agent" in summary
    assert f"failover: middle: broken (#{market.ids['broken']}) failed (the agent failed" in summary
    money = report.money()
    assert money["status"] == "failed" and money["unsettled"] == str(PRICE)
    assert money["payments"] == [
        {
            "agent": shouter,
            "agentId": market.ids["shouter"],
            "payee": market.payees["shouter"],
            "calls": 1,
            "paid": str(PRICE),
            "channels": [str(channel)],
        }
    ]

    table = printed(report)
    for fact in (
        "run failed",
        shouter,
        market.payees["shouter"],
        "7,000 gwei",
        "still to settle",
        "disk full",
    ):
        assert fact in table, fact
    assert "resume it with" in table

    # A caller's own hint replaces the Python one (`motet run` gives its command).
    report.resume_hint = f"resume it with `motet run --resume {report.run_id}`"
    assert f"motet run --resume {report.run_id}" in printed(report)


async def test_a_cancelled_run_reports_its_money_and_a_finished_one_that_it_settled(
    market: Market,
) -> None:
    payer = Payer(market.chain, market.chain.accounts[8])
    runnable = await flow("wait").compile(market.registry, payer=payer, budget=10**16)
    refused = runnable.new_report()
    with pytest.raises(
        WorkflowInputError, match="txt"
    ):  # an input error: failed before any call, nothing paid
        async for _event in runnable.stream({"txt": "hi"}, report=refused):
            pass
    assert refused.status == "failed" and "paid no agent: nothing was signed" in refused.summary()
    report = runnable.new_report()

    async def consume() -> None:
        async for _event in runnable.stream({"text": "hi"}, report=report):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(market.hang.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    market.release.set()

    shouter = f"shouter (#{market.ids['shouter']})"
    assert report.status == "cancelled" and "stopped before it finished" in report.error
    assert [(p.agent, p.calls, p.paid) for p in report.payments.values()] == [(shouter, 1, PRICE)]
    assert (report.spent, report.unsettled) == (PRICE, PRICE)
    assert report.nodes["middle"].status == "stopped"
    assert not report.resumable and "cannot be resumed" in report.how_to_resume()
    assert "run cancelled" in printed(report)

    # The same market, a run that finishes: everything it spent is settled, nothing is left, no resume hint.
    done = await flow("echo").compile(market.registry, payer=payer, budget=10**16)
    finished = await done.run({"text": "ok"})
    await payer.aclose()
    assert finished.status == "done" and finished.error == ""
    assert [(p.agent.split()[0], p.calls) for p in finished.payments.values()] == [
        ("shouter", 1),
        ("echo", 2),
    ]
    assert finished.spent == 3 * PRICE and finished.settled == 3 * PRICE and finished.unsettled == 0
    assert finished.how_to_resume() == ""
    assert (
        "still to settle" not in finished.summary() and "settled 21,000 gwei on chain" in finished.summary()
    )
    assert not any(isinstance(e, Failover) for e in finished.events)
    assert sum(e.price for e in finished.events if isinstance(e, CallPaid)) == finished.spent
