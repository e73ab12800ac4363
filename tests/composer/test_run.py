"""A five-node graph with a parallel branch, run on real agents and the real model, paid and settled."""

from __future__ import annotations

from support.composer import PRICES, Market, Text

from motet.composer import (
    CallPaid,
    Failover,
    NodeDone,
    Payer,
    ReceiptChecked,
    Settled,
    TextDelta,
    Workflow,
)
from motet.payments import ChannelClient

TEXT = (
    "The city opened a new public library downtown. Visitors praised the bright reading rooms, the large "
    "children's section and the friendly staff. The library is open every day until nine."
)


def brief() -> Workflow:
    return (
        Workflow("brief", inputs=Text)
        .add("extract", "summarize")
        .add("keywords", "extract_keywords", after="extract", inputs={"text": "extract.summary"})
        .add("sentiment", "classify_sentiment", after="extract", inputs={"text": "input.text"})
        .add("critique", "critique", after="extract", inputs={"text": "extract.summary"})
        .add("report", "compose_report", after=["keywords", "sentiment", "critique", "extract"])
    )


async def test_five_nodes_run_in_parallel_pay_once_each_skip_the_failing_agent_and_settle(
    market: Market,
) -> None:
    payer = Payer(market.chain, market.chain.accounts[8])
    runnable = await brief().compile(market.registry, payer=payer, budget=10**17)
    assert [c.agent for c in runnable.candidates["extract"]] == ["broken-summarizer", "summarizer"]
    assert runnable.worst_case == sum(PRICES.values()) - PRICES["broken-summarizer"]
    events = [event async for event in runnable.stream({"text": TEXT})]
    await payer.aclose()

    failovers = [e for e in events if isinstance(e, Failover)]
    assert [(f.node, f.failed_agent.split()[0], f.next_agent) for f in failovers] == [
        ("extract", "broken-summarizer", f"summarizer (#{market.ids['summarizer']})")
    ]
    assert market.broken_calls == [TEXT]  # it was asked, it failed ...
    paid = [e for e in events if isinstance(e, CallPaid)]
    assert sorted(e.node for e in paid) == [
        "critique",
        "extract",
        "keywords",
        "report",
        "sentiment",
    ]  # ... once each
    assert all(e.agent_id != market.ids["broken-summarizer"] for e in paid)  # ... and it is not paid
    assert len([e for e in events if isinstance(e, ReceiptChecked)]) == 5
    assert {e.node for e in events if isinstance(e, TextDelta)} >= {
        "extract",
        "keywords",
        "sentiment",
        "critique",
    }
    done = {e.node: e for e in events if isinstance(e, NodeDone)}
    assert set(done) == {"extract", "keywords", "sentiment", "critique", "report"}
    report, summary = done["report"].output["report"], done["extract"].output["summary"]
    assert isinstance(report, str) and isinstance(summary, str)
    assert report.startswith(summary)

    # The three branches after `extract` ran concurrently: each started before any of them finished.
    order = [(type(e).__name__, getattr(e, "node", "")) for e in events]
    starts = [order.index(("NodeStarted", n)) for n in ("keywords", "sentiment", "critique")]
    ends = [order.index(("NodeDone", n)) for n in ("keywords", "sentiment", "critique")]
    assert max(starts) < min(ends)

    (settled,) = [e for e in events if isinstance(e, Settled)]
    receipts_total = sum(e.price for e in paid)
    assert settled.paid == receipts_total == sum(PRICES.values()) - PRICES["broken-summarizer"]
    assert settled.paid_calls == 5
    assert len(settled.tx_hashes) == 1  # one batched redeem for five channels
    for name in ("summarizer", "keywords", "sentiment", "critic", "reporter"):
        channels = ChannelClient(market.chain, market.servers[name].account)
        (call,) = [e for e in paid if e.agent_id == market.ids[name]]
        assert channels.channel(call.channel).redeemed == PRICES[name]
