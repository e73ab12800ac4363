"""`trust_facts`: what the chain says about an agent's trustworthiness, in one small read per contract;
`trust_facts_many`: the same for many agents in a few calls.

The facts are stake (bonded, not unbonding), slashes, the validation record (disputes opened against the
agent, won and lost) and the reputation from paying callers. The composer's trusted selection ranks agents
with them and explains its choices with `TrustFacts.summary()`; the TUI shows the same line.

Example:
    >>> facts = trust_facts(chain, agent_id)
    >>> facts.summary()
    'stake 0.002 ETH · 1 slash · 3 disputes won · ★ 87 from 0.0004 ETH paid'
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hexbytes import HexBytes
from web3 import Web3
from web3.types import BlockIdentifier

from motet.chain import NATIVE_ASSET, Chain
from motet.trust._reputation import summary_of
from motet.units import format_amount

__all__ = ["TrustFacts", "changed_agents", "trust_facts", "trust_facts_many"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrustFacts:
    """An agent's trust record on chain.

    Amounts are integers in the smallest unit: `stake` and `slashed` in wei (stake is native coin),
    `feedback_weight` in the agent's price `asset` (wei for the native coin).

    Example:
        >>> TrustFacts(agent_id=1, stake=2 * 10**15, slashes=1).summary()
        'stake 0.002 ETH · 1 slash · no disputes · not rated'
    """

    agent_id: int
    stake: int = 0
    """Bonded stake: staked and not unbonding (what a slash can take)."""
    slashes: int = 0
    """How many times the agent was slashed."""
    slashed_total: int = 0
    """Total taken from its stake by slashes."""
    disputes: int = 0
    """Disputes ever opened against it (including open ones)."""
    disputes_won: int = 0
    """Disputes decided for the agent: the challenger lost its bond."""
    disputes_lost: int = 0
    """Disputes decided against the agent: a confirmed cheat."""
    feedback_count: int = 0
    """Feedbacks from callers who paid it."""
    feedback_weight: int = 0
    """What those callers paid for the rated calls, as redeemed on chain."""
    feedback_score: float = 0.0
    """Their payment-weighted average score (0 to 100); 0.0, and meaningless, while nobody rated the agent
    (`rated` is False)."""
    asset: str = NATIVE_ASSET
    """The agent's price asset: the unit of `feedback_weight`."""

    @property
    def rated(self) -> bool:
        """Whether a caller who paid the agent rated it."""
        return self.feedback_count > 0

    @property
    def disputes_open(self) -> int:
        """Disputes opened and not decided for or against the agent (pending)."""
        return max(self.disputes - self.disputes_won - self.disputes_lost, 0)

    def summary(self) -> str:
        """One line for people: stake, slashes, disputes and payment-weighted reputation.

        Example:
            >>> TrustFacts(agent_id=1, stake=2 * 10**15, slashes=1, disputes=3, disputes_won=3,
            ...            feedback_count=2, feedback_weight=4 * 10**14, feedback_score=87.4).summary()
            'stake 0.002 ETH · 1 slash · 3 disputes won · ★ 87 from 0.0004 ETH paid'
        """
        parts = [f"stake {format_amount(self.stake)}" if self.stake else "no stake"]
        if self.slashes:
            parts.append(f"{_count(self.slashes, 'slash', 'slashes')}")
        disputes = []
        if self.disputes_won:
            disputes.append(f"{_count(self.disputes_won, 'dispute')} won")
        if self.disputes_lost:
            disputes.append(f"{_count(self.disputes_lost, 'dispute')} lost")
        if self.disputes_open:
            disputes.append(f"{self.disputes_open} open")
        parts.append(", ".join(disputes) if disputes else "no disputes")
        if self.rated:
            parts.append(f"★ {self.feedback_score:.0f} from {self._amount(self.feedback_weight)} paid")
        else:
            parts.append("not rated")
        return " · ".join(parts)

    def _amount(self, amount: int) -> str:
        if int(self.asset, 16) == 0:
            return format_amount(amount)
        return f"{amount:,} units of {self.asset[:10]}…"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def trust_facts(chain: Chain, agent_id: int, *, block: int | None = None) -> TrustFacts:
    """Agent `agent_id`'s `TrustFacts` from the registry, validation and reputation contracts' views, at block
    number `block` (the latest by default).

    A handful of `eth_call`s (the agent's record, its slashes, its validation record, its reputation totals),
    no log scan. For many agents, `trust_facts_many` runs the same views in one call per 48 agents. An
    unknown agent has all-zero facts.
    """
    at: BlockIdentifier = "latest" if block is None else block
    registry = chain.contract("AgentRegistry")
    agent = registry.functions.agents(agent_id).call(block_identifier=at)
    stake, unbonding = int(agent[3]), int(agent[4])
    slashes = int(registry.functions.slash_count(agent_id).call(block_identifier=at))
    slashed = int(registry.functions.slashed_total(agent_id).call(block_identifier=at))
    disputes, cheats, rejected = (
        int(v) for v in chain.contract("Validation").functions.record(agent_id).call(block_identifier=at)
    )
    count, weight, weighted_scores = (
        chain.contract("Reputation").functions.totals(agent_id).call(block_identifier=at)
    )
    return _facts(
        agent_id, (stake, unbonding, slashes, slashed), (disputes, cheats, rejected),
        (int(count), int(weight), int(weighted_scores)), str(agent[1]),
    )  # fmt: skip


def _facts(
    agent_id: int,
    registry: tuple[int, int, int, int],
    validation: tuple[int, int, int],
    reputation_totals: tuple[int, int, int],
    asset: str,
) -> TrustFacts:
    """The facts from the views' values: the registry's (stake, unbonding, slashes, slashed total), the
    validation record (disputes, cheats, rejected) and the reputation totals (count, weight, weighted scores)."""
    stake, unbonding, slashes, slashed = registry
    disputes, cheats, rejected = validation
    reputation = summary_of(*reputation_totals)
    return TrustFacts(
        agent_id=agent_id,
        stake=max(stake - unbonding, 0),
        slashes=slashes,
        slashed_total=slashed,
        disputes=disputes,
        disputes_won=rejected,
        disputes_lost=cheats,
        feedback_count=reputation.count,
        feedback_weight=reputation.weight,
        feedback_score=reputation.score,
        asset=asset,
    )


# -- many agents in one call ----------------------------------------------------------------------------

_VIEWS: tuple[tuple[str, str, int], ...] = (
    # agents: payout, token, price, stake, unbonding, unbonding_until, active
    ("AgentRegistry", "agents(uint256)", 7),
    ("AgentRegistry", "slash_count(uint256)", 1),
    ("AgentRegistry", "slashed_total(uint256)", 1),
    ("Validation", "record(uint256)", 3),  # disputes, cheats, rejected
    ("Reputation", "totals(uint256)", 3),  # count, weight, weighted_scores
)
"""The views `trust_facts` calls, each with the 32-byte words it returns (all static)."""
_WORDS = sum(words for _, _, words in _VIEWS)
BATCH = 48
"""Agents per batched call: their results (48 x 480 bytes) stay under the 24,576 bytes a contract creation may
return (EIP-170), and the code under the 49,152 bytes of creation code a call may carry (EIP-3860)."""


def trust_facts_many(
    chain: Chain, agent_ids: Iterable[int], *, block: int | None = None
) -> dict[int, TrustFacts]:
    """`trust_facts` of each agent in `agent_ids`, from the same views at block number `block` (the latest
    by default), `BATCH` agents per call.

    Each call is an `eth_call` with no recipient whose code (built here, never deployed: a creation that only
    runs) calls the views of every agent of the batch and returns their results together; it reverts when a
    view fails or returns an unexpected size. A batch a node refuses to run so is read agent by agent with
    `trust_facts`. On the embedded chain this takes about 3 ms of CPU per agent instead of 40; on a node, one
    round trip per batch instead of five per agent.
    """
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    targets = [chain.contract(name).address for name, _, _ in _VIEWS]
    number = chain.w3.eth.block_number if block is None else block  # every batch at the same block
    found: dict[int, TrustFacts] = {}
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        try:
            raw = bytes(chain.w3.eth.call({"data": _batch_code(targets, chunk)}, block_identifier=number))
        except Exception as exc:  # whatever the node says, the views one by one say it better
            log.info(
                "a batched read of %d agents' trust facts failed (%s): reading them one by one",
                len(chunk),
                exc,
            )
            found.update((agent_id, trust_facts(chain, agent_id, block=number)) for agent_id in chunk)
            continue
        if len(raw) != 32 * _WORDS * len(chunk):
            log.info("a batched read of trust facts returned %d bytes: reading them one by one", len(raw))
            found.update((agent_id, trust_facts(chain, agent_id, block=number)) for agent_id in chunk)
            continue
        for index, agent_id in enumerate(chunk):
            found[agent_id] = _decode(agent_id, raw[32 * _WORDS * index : 32 * _WORDS * (index + 1)])
    return found


def _decode(agent_id: int, raw: bytes) -> TrustFacts:
    words = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw), 32)]
    _payout, token, _price, stake, unbonding, _until, _active, slashes, slashed = words[:9]
    disputes, cheats, rejected, count, weight, weighted_scores = words[9:]
    return _facts(
        agent_id, (stake, unbonding, slashes, slashed), (disputes, cheats, rejected),
        (count, weight, weighted_scores), Web3.to_checksum_address(token.to_bytes(20, "big")),
    )  # fmt: skip


_CHANGES: tuple[tuple[str, str, int], ...] = (
    ("AgentRegistry", "AgentRegistered", 1),
    ("AgentRegistry", "AgentUpdated", 1),
    ("AgentRegistry", "AgentActivated", 1),
    ("AgentRegistry", "StakeChanged", 1),
    ("AgentRegistry", "Slashed", 1),
    ("Validation", "DisputeOpened", 2),
    ("Validation", "DisputeCancelled", 2),
    ("Validation", "DisputeResolved", 2),
    ("Reputation", "NewFeedback", 1),
)
"""`(contract, event, topic of the agent id)`: the events the contracts log with every change to what the views
of `_VIEWS` read (`agents`, `slash_count`, `slashed_total`, `record`, `totals`)."""


def changed_agents(chain: Chain, first: int, last: int) -> set[int]:
    """The agents whose `TrustFacts` may differ between blocks `first - 1` and `last`: those the events of
    `_CHANGES` name in blocks `first..last` (one `eth_getLogs`). Every other agent's facts are the same."""
    where: dict[tuple[str, bytes], int] = {}
    topics: list[str] = []
    for name, event, position in _CHANGES:
        contract = chain.contract(name)
        # A 0x-string: eth-tester ignores HexBytes inside a topic list.
        topic = str(contract.events[event]().topic)
        topics.append(topic)
        where[(contract.address.lower(), bytes(HexBytes(topic)))] = position
    addresses = sorted({Web3.to_checksum_address(address) for address, _ in where})
    logs = chain.w3.eth.get_logs(
        {"address": addresses, "fromBlock": first, "toBlock": last, "topics": [topics]}
    )
    found: set[int] = set()
    for entry in logs:
        at = where.get((str(entry["address"]).lower(), bytes(entry["topics"][0])))
        if at is not None:
            found.add(int.from_bytes(bytes(entry["topics"][at]), "big"))
    return found


# EVM opcodes of the batch code.
_CODECOPY, _GAS, _STATICCALL, _RETURNDATASIZE = 0x39, 0x5A, 0xFA, 0x3D
_EQ, _ISZERO, _JUMPI, _JUMPDEST, _DUP1, _RETURN, _REVERT = 0x14, 0x15, 0x57, 0x5B, 0x80, 0xF3, 0xFD
_HEAD = 4 + 4 + 2 + 1
"""PUSH3 PUSH3 PUSH1 CODECOPY: the calldata table into memory."""
_PER_CALL = 4 + 4 + 2 + 4 + 21 + 1 + 1 + (1 + 4 + 1) + (4 + 1 + 1 + 1 + 4 + 1)
"""PUSH3 PUSH3 PUSH1 PUSH3 PUSH20 GAS STATICCALL, ISZERO PUSH3 JUMPI, PUSH3 RETURNDATASIZE EQ ISZERO PUSH3 JUMPI."""
_TAIL = 4 + 4 + 1
"""PUSH3 PUSH3 RETURN."""
_FAIL = 1 + 2 + 1 + 1
"""JUMPDEST PUSH1 DUP1 REVERT."""


def _push(value: int, size: int) -> bytes:
    """PUSH`size` `value`."""
    return bytes([0x5F + size]) + value.to_bytes(size, "big")


def _batch_code(targets: Sequence[str], agent_ids: Sequence[int]) -> bytes:
    """Creation code that copies its calldata table (after the code) into memory, calls each view of each
    agent (`STATICCALL`, results packed after the table), reverts if one fails or returns another size than
    expected, and returns the results. Pushes have fixed widths, so every offset is known beforehand. What a
    creation returns may not start with 0xEF (EIP-3541): it starts with a left-padded address, a zero byte."""
    selectors = [bytes(Web3.keccak(text=signature)[:4]) for _, signature, _ in _VIEWS]
    calls = [
        (selector + agent_id.to_bytes(32, "big"), int(target, 16), 32 * words)
        for agent_id in agent_ids
        for selector, target, (_, _, words) in zip(selectors, targets, _VIEWS, strict=True)
    ]
    table = b"".join(data for data, _, _ in calls)
    fail = _HEAD + _PER_CALL * len(calls) + _TAIL
    code = bytearray(_push(len(table), 3) + _push(fail + _FAIL, 3) + _push(0, 1) + bytes([_CODECOPY]))
    out = len(table)
    for index, (data, target, size) in enumerate(calls):
        code += (
            _push(size, 3) + _push(out, 3) + _push(len(data), 1) + _push(36 * index, 3) + _push(target, 20)
        )
        code += bytes([_GAS, _STATICCALL, _ISZERO]) + _push(fail, 3) + bytes([_JUMPI])
        code += _push(size, 3) + bytes([_RETURNDATASIZE, _EQ, _ISZERO]) + _push(fail, 3) + bytes([_JUMPI])
        out += size
    code += _push(out - len(table), 3) + _push(len(table), 3) + bytes([_RETURN])
    code += bytes([_JUMPDEST]) + _push(0, 1) + bytes([_DUP1, _REVERT])
    if len(code) != fail + _FAIL:
        raise AssertionError(f"the batch code is {len(code)} bytes, not {fail + _FAIL}")
    return bytes(code) + table
