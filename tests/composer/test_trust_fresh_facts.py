"""`compile()` reads its candidates' trust facts in a few batched calls and carries them from block to block
for every agent no trust event names: a dispute opened or a verdict (and its slash) that lands after a compile
is seen by the next one, which reads again only the agents concerned; compiling again before the chain moves
reads nothing."""

from __future__ import annotations

import secrets

import pytest
from pydantic import BaseModel

from motet.agents import Agent, CallContext
from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.composer import _trust as trust_module
from motet.payments import ReceiptDomain, ReceiptSigner, content_hash, request_hash
from motet.registry import Registry
from motet.trust import Disputes, TrustFacts, Verdict
from motet.trust._facts import trust_facts_many as read_many

MODEL = "cd" * 32
STAKE = 10**17


class Word(BaseModel):
    text: str


def echo_agent(name: str, price: int) -> Agent:
    agent = Agent(name, description="Repeats its input.", price=price)

    @agent.capability("echo")
    async def echo(request: Word, ctx: CallContext) -> Word:
        return request

    return agent


@pytest.mark.slow
async def test_a_verdict_after_a_compile_is_seen_by_the_next_compile(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(chain)
    cheap, dear = chain.accounts[1], chain.accounts[2]
    ids = {
        "cheap": await echo_agent("cheap", 10**15).register(
            registry, url="http://127.0.0.1:9/cheap", account=cheap, stake=STAKE
        ),
        "dear": await echo_agent("dear", 2 * 10**15).register(
            registry, url="http://127.0.0.1:9/dear", account=dear, stake=STAKE
        ),
    }
    validators = chain.accounts[5:8]
    for validator in validators:
        Disputes(chain, validator).register_validator(
            [MODEL], stake=chain.settings.disputes.min_validator_stake
        )
    batches: list[frozenset[int]] = []

    def counted(chain: Chain, agent_ids: set[int], *, block: int | None = None) -> dict[int, TrustFacts]:
        batches.append(frozenset(agent_ids))
        return read_many(chain, agent_ids, block=block)

    monkeypatch.setattr(trust_module, "trust_facts_many", counted)
    payer = Payer(chain, chain.accounts[4])
    flow = Workflow("one", inputs=Word).add("echo", "echo", max_price=10**16)

    async def explain() -> str:
        compiled = await flow.compile(registry, payer=payer, budget=10**17, policy="cheapest")
        return compiled.explain()

    first = await explain()
    assert batches == [frozenset(ids.values())]  # both candidates, in one batched read
    assert f"1. cheap (#{ids['cheap']})" in first and "slashes 0" in first and "open" not in first
    assert await explain() == first and len(batches) == 1  # same block: nothing read again
    chain.transfer(chain.accounts[3].address, 1)  # a block that changes no agent's facts: nothing read again
    assert await explain() == first and len(batches) == 1
    registry.request_unstake(ids["dear"], STAKE // 2, owner=dear)  # only "dear" is read again
    assert await explain() != first and batches[1:] == [frozenset({ids["dear"]})]

    # A payer disputes a receipt the cheap agent signed: the next compile sees the open dispute.
    domain = ReceiptDomain(chain.chain_id, chain.contract("PaymentChannels").address)
    receipt = ReceiptSigner(bytes(cheap.key), domain).sign(
        request_hash=request_hash("echo", {"text": "hi"}, channel_id=1, seq=1),
        response_hash=content_hash({"text": "not hi"}),
        price=10**15,
        channel_id=1,
        seq=1,
        model_ref=content_hash("model"),
    )
    challenger = Disputes(chain, chain.accounts[9])
    dispute = challenger.open(ids["cheap"], receipt, MODEL, "data:,evidence")
    assert "disputes won 0 lost 0, 1 open" in await explain()
    assert batches[2:] == [frozenset({ids["cheap"]})]

    # The validators find a cheat: the agent is slashed, and the next compile drops it under every policy.
    salts = {validator.address: secrets.token_bytes(32) for validator in validators}
    for validator in validators:
        Disputes(chain, validator).commit(dispute, Verdict.CHEAT, salts[validator.address])
    chain.advance_time(chain.settings.disputes.commit_window + 1)
    for validator in validators:
        Disputes(chain, validator).reveal(dispute, Verdict.CHEAT, salts[validator.address])
    chain.advance_time(chain.settings.disputes.reveal_window + 1)
    challenger.resolve(dispute)
    after = await explain()
    assert f"1. dear (#{ids['dear']})" in after
    assert f"dropped cheap (#{ids['cheap']}): slashed 1 time" in after
    assert batches[3:] == [frozenset({ids["cheap"]})]


async def test_facts_carried_from_a_block_the_chain_no_longer_has_are_read_again(chain: Chain) -> None:
    registry = Registry(chain)
    owner = chain.accounts[1]
    agent_id = await echo_agent("solo", 10**15).register(
        registry, url="http://127.0.0.1:9/solo", account=owner, stake=STAKE
    )
    chain.contract("Reputation")  # created before the snapshot, as the chain object remembers it
    snapshot = chain.snapshot()
    chain.transfer(chain.accounts[3].address, 1)
    before = trust_module.prefetch_trust(chain, [agent_id])
    assert trust_module.read_trust(chain, agent_id, None, block=before).facts == TrustFacts(
        agent_id, stake=STAKE
    )
    # Another history from the snapshot on: the agent unbonds half its stake, then a block that names nobody.
    chain.revert(snapshot)
    registry.request_unstake(agent_id, STAKE // 2, owner=owner)
    chain.transfer(chain.accounts[3].address, 1)
    after = trust_module.prefetch_trust(chain, [agent_id])
    assert after != before
    assert trust_module.read_trust(chain, agent_id, None, block=after).facts == TrustFacts(
        agent_id, stake=STAKE // 2
    )
