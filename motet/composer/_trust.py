"""Trust in the composer: choosing agents by their record, and checking a sample of the calls it paid.

**Selection.** `select()` orders the offers that can serve a node. Under every policy an agent with a
confirmed cheat (slashed at least once) is dropped, unless the node names it (`add(..., agent=7)`). The
default policy, `"trusted"`, ranks the rest by a score in [0, 1], a weighted mean (weights in
`Settings.trust`) of five parts, each in [0, 1]:

    price       (cheapest worst case + 1) / (this worst case + 1)
    reputation  payers' feedback, 0-100 weighted by what they paid, pulled toward 50 by
                `reputation_prior` wei of neutral feedback; / 100
    stake       bonded stake / the most bonded among the candidates
    record      (disputes won + 1) / (disputes won + disputes lost + 2)
    latency     (fastest mean latency this payer measured + 0.1 s) / (this one's + 0.1 s); 1 when not
                measured yet (the 0.1 s keeps a few milliseconds on a local network from counting)

then by price and id. `"cheapest"` orders by price, then stake; `"most_staked"` by stake, then price. Each
node's `Selection` keeps the numbers, and `CompiledWorkflow.explain()` prints them.

**Sampling.** After a paid call to a verifiable capability is accepted (receipt checked, voucher sent), the
`Sampler` draws whether to check it, with probability `Settings.trust.sample_rate`, from `secrets`: the agent
cannot predict it, and it is drawn after the agent has committed to its answer. A chosen call is checked
locally by the payer's `Checker` when it runs the model, else by a paid verifier agent (capability
`verify`), paid like any call from the room the run's budget has above the workflow's worst case, so a check
never takes what a node needs. A cheat opens a dispute with the payer's account (`Disputes.open`). A check
that cannot run (no runtime, no verifier, no room in the budget, verifier down) is reported as
`"unchecked"` and never fails the run or costs the agent anything.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import JsonValue
from web3.exceptions import Web3Exception

from motet.agents import PaidInvocation
from motet.chain import Chain
from motet.composer import _events as events
from motet.composer._budget import Budget
from motet.composer._offer import Offer
from motet.errors import BudgetExceeded, MotetError
from motet.settings import TrustSettings
from motet.trust import (
    Checker,
    Disputes,
    Evidence,
    TrustFacts,
    Verdict,
    changed_agents,
    trust_facts,
    trust_facts_many,
)
from motet.units import format_amount

if TYPE_CHECKING:
    from motet.composer._payer import Payer

__all__ = ["Policy", "Ranked", "Sampler", "Selection", "draw", "select"]

log = logging.getLogger(__name__)

Policy = Literal["trusted", "cheapest", "most_staked"]
"""How `compile()` orders each node's offers: by the trust score (default), by price, or by bonded stake."""

POLICIES: tuple[Policy, ...] = ("trusted", "cheapest", "most_staked")

VERIFY = "verify"
"""The capability of verifier agents: re-run a paid call's evidence and say consistent, cheat or inconclusive."""


def draw() -> float:
    """A number in [0, 1) from the operating system's randomness (`secrets`), which no agent can predict.

    Example:
        >>> 0.0 <= draw() < 1.0
        True
    """
    return secrets.randbits(53) / (1 << 53)


# -- selection ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentTrust:
    """What selection knows of one agent: its facts on chain, and the latency this payer measured."""

    facts: TrustFacts | None
    """None when the chain's trust contracts could not be read (`problem` says why)."""
    latency_s: float | None = None
    """Mean seconds per call this payer measured; None before the first call."""
    problem: str = ""

    @property
    def slashes(self) -> int:
        return self.facts.slashes if self.facts is not None else 0

    @property
    def reputation(self) -> float | None:
        """The payment-weighted feedback score, 0-100, or None when no payer gave feedback."""
        if self.facts is None or not self.facts.rated:
            return None
        return self.facts.feedback_score

    def describe(self, offer: Offer) -> str:
        """Its numbers in one line: price, stake, slashes, reputation, record, latency."""
        facts = self.facts
        parts = [f"price {format_amount(offer.worst_case)}", f"stake {format_amount(offer.stake)}"]
        if facts is None:
            parts.append(f"no trust record ({self.problem})")
        else:
            parts.append(f"slashes {facts.slashes}")
            reputation = self.reputation
            parts.append(
                "reputation none yet"
                if reputation is None
                else f"reputation {reputation:.0f}/100 from {format_amount(facts.feedback_weight)} paid"
            )
            opened = f", {facts.disputes_open} open" if facts.disputes_open else ""
            parts.append(f"disputes won {facts.disputes_won} lost {facts.disputes_lost}{opened}")
        parts.append("latency not measured" if self.latency_s is None else f"latency {self.latency_s:.2f} s")
        return " · ".join(parts)


_PARTS = ("price", "reputation", "stake", "record", "latency")
LATENCY_FLOOR = 0.1
"""Seconds added to every latency before they are compared."""


@dataclass(frozen=True)
class Ranked:
    """One candidate offer of a node, with its trust and the parts of its score (each in [0, 1])."""

    offer: Offer
    trust: AgentTrust
    parts: dict[str, float] = field(hash=False)
    """`price`, `reputation`, `stake`, `record`, `latency`: each part of the score, before its weight."""
    score: float
    """The weighted mean of `parts` (weights from `Settings.trust`)."""


@dataclass(frozen=True)
class Selection:
    """How one node's agents were chosen: the ranked candidates (tried in this order) and those dropped."""

    node: str
    capability: str
    policy: Policy
    ranked: tuple[Ranked, ...]
    dropped: tuple[tuple[str, str], ...] = ()
    """`(agent label, why)` for each agent that declares the capability but was left out."""
    named: bool = False
    """The node names its agent: no ranking, and no agent is dropped for its record."""
    settings: TrustSettings = field(default_factory=TrustSettings, repr=False)
    """The weights the scores were computed with."""

    @property
    def offers(self) -> tuple[Offer, ...]:
        return tuple(r.offer for r in self.ranked)

    def explain(self) -> str:
        """Why each agent is where it is: each candidate's score and numbers, why the others rank below the
        first (under "trusted": the weighted parts each loses and wins on), and who was dropped.

        Example (lines shortened):
            echo (echo), policy trusted:
              1. careful (#2): score 0.73 · price 0.002 ETH · stake 0.1 ETH · slashes 0 · reputation 100/100 ...
              2. cheap (#1): score 0.70 · price 0.001 ETH · stake 0.1 ETH · slashes 0 · reputation 0/100 ...
                 ranks below careful (#2): score 0.70 < 0.73, lower on reputation (-0.21); better on price (+0.17)
              dropped cheater (#3): slashed 1 time (0.05 ETH): a confirmed cheat
        """
        how = "the node names its agent" if self.named else f"policy {self.policy}"
        lines = [f"{self.node} ({self.capability}), {how}:"]
        first = self.ranked[0] if self.ranked else None
        for index, ranked in enumerate(self.ranked, start=1):
            head = f"  {index}. {ranked.offer.label}: score {ranked.score:.2f} · {ranked.trust.describe(ranked.offer)}"
            lines.append(head)
            if first is not None and ranked is not first:
                lines.append(f"     ranks below {first.offer.label}: {self._why_lower(ranked, first)}")
        for label, why in self.dropped:
            lines.append(f"  dropped {label}: {why}")
        return "\n".join(lines)

    def _why_lower(self, ranked: Ranked, first: Ranked) -> str:
        if self.policy == "cheapest":
            if ranked.offer.worst_case != first.offer.worst_case:
                return f"costs more ({format_amount(ranked.offer.worst_case)})"
            return (
                "same price, less stake"
                if ranked.offer.stake < first.offer.stake
                else "same price and stake, higher id"
            )
        if self.policy == "most_staked":
            if ranked.offer.stake != first.offer.stake:
                return f"less stake ({format_amount(ranked.offer.stake)})"
            return (
                "same stake, costs more"
                if ranked.offer.worst_case > first.offer.worst_case
                else "same stake and price, higher id"
            )
        weights = _weights(self.settings)
        delta = {p: weights[p] * (ranked.parts[p] - first.parts[p]) for p in _PARTS}
        worse = sorted((p for p in _PARTS if delta[p] < -0.005), key=lambda p: delta[p])
        better = sorted((p for p in _PARTS if delta[p] > 0.005), key=lambda p: -delta[p])
        text = f"score {ranked.score:.2f} < {first.score:.2f}"
        if worse:
            text += ", lower on " + ", ".join(f"{p} ({delta[p]:+.2f})" for p in worse)
        if better:
            text += "; better on " + ", ".join(f"{p} ({delta[p]:+.2f})" for p in better)
        if not worse and not better:
            text += " (even on every part: then by price and id)"
        return text


def _weights(settings: TrustSettings) -> dict[str, float]:
    raw = {
        "price": settings.price_weight,
        "reputation": settings.reputation_weight,
        "stake": settings.stake_weight,
        "record": settings.record_weight,
        "latency": settings.latency_weight,
    }
    total = sum(raw.values())
    return {part: weight / total for part, weight in raw.items()}


_FACTS_CACHE: dict[tuple[int, bytes, int], TrustFacts] = {}
_FACTS_CACHE_SIZE = 4096


def _remember(chain: Chain, block: bytes, facts: TrustFacts) -> None:
    if len(_FACTS_CACHE) >= _FACTS_CACHE_SIZE:
        _FACTS_CACHE.clear()
    _FACTS_CACHE[(chain.chain_id, block, facts.agent_id)] = facts


@dataclass
class _Book:
    """Facts known at one block, carried to later blocks for every agent no event names in between."""

    number: int
    block: bytes
    facts: dict[int, TrustFacts]


_BOOKS: dict[tuple[object, ...], _Book] = {}
"""By chain id and the trust contracts' addresses."""
_BOOKS_LOCK = threading.Lock()
CARRY_BLOCKS = 1_000
"""The most blocks whose events are read to carry facts forward; after a longer gap they are read again."""


def prefetch_trust(chain: Chain, agent_ids: Iterable[int]) -> bytes:
    """Read the trust facts of the agents in `agent_ids` at the latest block, and return that block's hash:
    `read_trust(..., block=)` then finds them.

    Facts known at an earlier block are carried forward for every agent that no event of the trust contracts
    names since (`changed_agents`, one log query); the others are read in a few batched calls
    (`trust_facts_many`). After a reorganisation, a revert to a snapshot or a long gap everything is read again.
    What cannot be read this way is left to `read_trust`, which reads it alone and says why it cannot.
    """
    try:
        # First, as one may be created (a block) on first use.
        addresses = [
            chain.contract(name).address.lower() for name in ("AgentRegistry", "Validation", "Reputation")
        ]
        key = (chain.chain_id, *addresses)
    except (MotetError, Web3Exception) as exc:
        log.info("the trust contracts cannot be read: %s", exc)
        return bytes(chain.w3.eth.get_block("latest")["hash"])
    latest = chain.w3.eth.get_block("latest")
    number, block = int(latest["number"]), bytes(latest["hash"])
    wanted = {agent_id for agent_id in agent_ids if (chain.chain_id, block, agent_id) not in _FACTS_CACHE}
    if not wanted:
        return block
    with _BOOKS_LOCK:
        try:
            book = _carried(chain, _BOOKS.get(key), number, block)
            missing = wanted - book.facts.keys()
            book.facts.update(trust_facts_many(chain, missing, block=number) if missing else {})
        except (MotetError, Web3Exception) as exc:
            log.info("the trust facts of %d agents could not be read together: %s", len(wanted), exc)
            return block
        _BOOKS[key] = book
        if len(_FACTS_CACHE) + len(wanted) > _FACTS_CACHE_SIZE:
            _FACTS_CACHE.clear()  # now rather than halfway through this block's facts
        for agent_id in wanted:
            _remember(chain, block, book.facts[agent_id])
    return block


def _carried(chain: Chain, book: _Book | None, number: int, block: bytes) -> _Book:
    """`book` brought to block `number` (hash `block`): without the agents that events name since, or empty when
    its block is no longer this chain's or too far back."""
    if book is None or not book.number <= number <= book.number + CARRY_BLOCKS:
        return _Book(number, block, {})
    if book.number == number:
        return book if book.block == block else _Book(number, block, {})
    try:
        if bytes(chain.w3.eth.get_block(book.number)["hash"]) != book.block:
            return _Book(number, block, {})
        changed = changed_agents(chain, book.number + 1, number)
    except (MotetError, Web3Exception, ValueError) as exc:  # a node may refuse a range of logs
        log.info(
            "the trust events since block %d cannot be read (%s): reading every fact again", book.number, exc
        )
        return _Book(number, block, {})
    facts = {agent_id: facts for agent_id, facts in book.facts.items() if agent_id not in changed}
    return _Book(number, block, facts)


def read_trust(chain: Chain, agent_id: int, latency_s: float | None, *, block: bytes = b"") -> AgentTrust:
    """An agent's trust facts from the chain's contracts, with the payer's measured latency.

    Facts read at the block whose hash is `block` are kept (a few thousand at most), so that compiling again
    before the chain moves reads nothing (`prefetch_trust` reads many at once and says which block); without
    `block` they are always read. Any transaction, a verdict or a slash among them, makes a new block, so the
    next compile reads its effect. A chain whose trust contracts cannot be read (an older deployment) gives a
    record without facts: the agent is then ranked by price, stake and latency alone, and the explanation
    says why.
    """
    try:
        facts = _FACTS_CACHE.get((chain.chain_id, block, agent_id)) if block else None
        if facts is None:
            facts = trust_facts(chain, agent_id)
            if block:
                _remember(chain, block, facts)
        return AgentTrust(facts, latency_s)
    except (MotetError, Web3Exception) as exc:
        log.warning("agent %d: its trust record cannot be read: %s", agent_id, exc)
        return AgentTrust(None, latency_s, str(exc))


def select(
    node: str,
    capability: str,
    offers: Sequence[Offer],
    trust: Callable[[Offer], AgentTrust],
    *,
    policy: Policy,
    settings: TrustSettings,
    named: bool = False,
    dropped: Sequence[tuple[str, str]] = (),
) -> Selection:
    """Order `offers` for `node` under `policy`, dropping slashed agents unless the node names its agent.

    `trust(offer)` gives each agent's record. The result may have no candidate left (all were dropped):
    the caller says so.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}: use one of {', '.join(POLICIES)}")
    kept: list[tuple[Offer, AgentTrust]] = []
    left_out = list(dropped)
    for offer in offers:
        record = trust(offer)
        if record.slashes and not named:
            facts = record.facts
            total = f" ({format_amount(facts.slashed_total)})" if facts is not None else ""
            times = "time" if record.slashes == 1 else "times"
            left_out.append((offer.label, f"slashed {record.slashes} {times}{total}: a confirmed cheat"))
            continue
        kept.append((offer, record))
    ranked = _score(kept, settings)
    if policy == "most_staked":
        ranked.sort(key=lambda r: (-r.offer.stake, r.offer.worst_case, r.offer.agent_id))
    elif policy == "cheapest":
        ranked.sort(key=lambda r: (r.offer.worst_case, -r.offer.stake, r.offer.agent_id))
    else:
        ranked.sort(key=lambda r: (-round(r.score, 9), r.offer.worst_case, r.offer.agent_id))
    return Selection(node, capability, policy, tuple(ranked), tuple(left_out), named, settings)


def _score(kept: Sequence[tuple[Offer, AgentTrust]], settings: TrustSettings) -> list[Ranked]:
    if not kept:
        return []
    weights = _weights(settings)
    cheapest = min(offer.worst_case for offer, _ in kept)
    most_stake = max(offer.stake for offer, _ in kept)
    measured = [t.latency_s for _, t in kept if t.latency_s is not None]
    fastest = min(measured) if measured else None
    prior = settings.reputation_prior
    ranked: list[Ranked] = []
    for offer, record in kept:
        facts = record.facts
        if facts is not None and facts.rated and facts.feedback_weight + prior > 0:
            reputation = (
                (facts.feedback_score * facts.feedback_weight + 50.0 * prior)
                / (facts.feedback_weight + prior)
                / 100.0
            )
        else:
            reputation = 0.5
        won, lost = (facts.disputes_won, facts.disputes_lost) if facts is not None else (0, 0)
        if record.latency_s is None or fastest is None:
            latency = 1.0
        else:
            latency = (fastest + LATENCY_FLOOR) / (record.latency_s + LATENCY_FLOOR)
        parts = {
            "price": (cheapest + 1) / (offer.worst_case + 1),
            "reputation": reputation,
            "stake": offer.stake / most_stake if most_stake else 1.0,
            "record": (won + 1) / (won + lost + 2),
            "latency": latency,
        }
        score = sum(weights[part] * parts[part] for part in _PARTS)
        ranked.append(Ranked(offer, record, parts, score))
    return ranked


# -- sampling ----------------------------------------------------------------------------------------


class Sampler:
    """Draws which paid calls to check and checks them, concurrently with the run; see the module's docstring.

    Args:
        payer: pays verifier agents, and opens disputes with its account.
        settings: `sample_rate` is p.
        checker: runs checks locally when it runs the call's model.
        verifiers: verifier agents' offers (capability `verify`), in the order they are tried.
        random: a number in [0, 1) per paid call; a call is checked when it is below p (`draw` by default).
    """

    def __init__(
        self,
        payer: Payer,
        settings: TrustSettings,
        *,
        checker: Checker | None = None,
        verifiers: Sequence[Offer] = (),
        random: Callable[[], float] = draw,
    ) -> None:
        self.payer = payer
        self.rate = settings.sample_rate
        self.checker = checker
        self.verifiers = tuple(verifiers)
        self.random = random

    def chosen(self, offer: Offer, call: PaidInvocation | None) -> bool:
        """Whether to check this accepted, paid call: only verifiable ones, each with probability p."""
        if call is None or offer.capability.verifiable is None or call.text is None or self.rate <= 0:
            return False
        return self.random() < self.rate

    async def check(
        self,
        run_id: str,
        node: str,
        offer: Offer,
        input: dict[str, JsonValue],
        call: PaidInvocation,
        budget: Budget,
        emit: Callable[[events.Event], None],
    ) -> events.CheckDone:
        """Check one paid call, open a dispute on a cheat, emit what happened; never raises a `MotetError`."""
        try:
            evidence = Evidence.from_call(offer.agent_id, offer.capability, dict(input), call)
        except MotetError as exc:
            return self._done(emit, node, offer, "unchecked", "", f"no evidence: {exc}")
        verdict, by, detail, price = await self._verdict(run_id, node, offer, evidence, budget)
        if verdict is None:
            return self._done(emit, node, offer, "unchecked", by, detail, price=price)
        dispute: int | None = None
        problem = ""
        if verdict == Verdict.CHEAT:
            dispute, problem = await self._dispute(node, offer, evidence, emit)
        return self._done(
            emit, node, offer, verdict.label, by, detail, price=price, dispute=dispute, problem=problem
        )

    async def _verdict(
        self, run_id: str, node: str, offer: Offer, evidence: Evidence, budget: Budget
    ) -> tuple[Verdict | None, str, str, int]:
        """`(verdict, by, detail, price paid)`; the verdict is None when no check could run."""
        if self.checker is not None and self.checker.can_check(evidence.model_sha256):
            try:
                result = await self.checker.check_evidence(evidence)
            except MotetError as exc:
                return None, "local", f"the local check failed: {exc}", 0
            return result.verdict, "local", result.detail, 0
        problems: list[str] = []
        if self.checker is not None:
            problems.append(f"no local runtime runs model {evidence.model_sha256[:12]}")
        verifiers = [
            v
            for v in self.verifiers
            if v.agent_id != offer.agent_id and v.payout.lower() != offer.payout.lower()
        ]
        if not verifiers:
            problems.append("no verifier agent offers 'verify'")
        for verifier in verifiers:
            try:
                paid = await self.payer.call(
                    run_id, f"{node}#{VERIFY}", verifier, {"evidence": evidence.to_uri()}, budget
                )
                verdict = Verdict.parse(str(paid.output["verdict"]))
            except BudgetExceeded as exc:
                problems.append(f"{verifier.label}: no room in the budget for a check ({exc})")
                break
            except (MotetError, TimeoutError, KeyError, ValueError) as exc:
                problems.append(f"{verifier.label}: {exc or type(exc).__name__}")
                continue
            detail = str(paid.output.get("detail", ""))
            return verdict, verifier.label, detail, paid.price
        return None, "", "; ".join(problems), 0

    async def _dispute(
        self, node: str, offer: Offer, evidence: Evidence, emit: Callable[[events.Event], None]
    ) -> tuple[int | None, str]:
        chain = self.payer.chain
        disputes = Disputes(chain, self.payer.account)
        try:
            dispute = await chain.off_loop(
                disputes.open, offer.agent_id, evidence.receipt, evidence.model_sha256, evidence.to_uri()
            )
        except MotetError as exc:
            log.warning("%s: the dispute against %s could not be opened: %s", node, offer.label, exc)
            return None, f"the dispute could not be opened: {exc}"
        emit(events.DisputeOpened(node, offer.label, offer.agent_id, dispute, chain.settings.disputes.bond))
        return dispute, ""

    @staticmethod
    def _done(
        emit: Callable[[events.Event], None],
        node: str,
        offer: Offer,
        verdict: str,
        by: str,
        detail: str,
        *,
        price: int = 0,
        dispute: int | None = None,
        problem: str = "",
    ) -> events.CheckDone:
        done = events.CheckDone(
            node, offer.label, offer.agent_id, verdict, by, detail, price, dispute, problem
        )
        emit(done)
        return done

    def start(
        self,
        run_id: str,
        node: str,
        offer: Offer,
        input: dict[str, JsonValue],
        call: PaidInvocation,
        budget: Budget,
        emit: Callable[[events.Event], None],
    ) -> asyncio.Task[events.CheckDone]:
        """`check()` as a task beside the run; whatever goes wrong in it is reported as `"unchecked"`."""

        async def guarded() -> events.CheckDone:
            try:
                return await self.check(run_id, node, offer, input, call, budget, emit)
            except Exception as exc:
                log.exception("%s: the check of %s failed", node, offer.label)
                return self._done(emit, node, offer, "unchecked", "", f"the check failed: {exc!r}")

        return asyncio.create_task(guarded(), name=f"check {run_id}:{node}")
