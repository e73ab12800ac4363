"""`trust_facts`: what the chain says about an agent's trustworthiness, in one small read per contract.

The facts are stake (bonded, not unbonding), slashes, the validation record (disputes opened against the
agent, won and lost) and the reputation from paying callers. The composer's trusted selection ranks agents
with them and explains its choices with `TrustFacts.summary()`; the TUI shows the same line.

Example:
    >>> facts = trust_facts(chain, agent_id)
    >>> facts.summary()
    'stake 0.002 ETH · 1 slash · 3 disputes won · ★ 87 from 0.0004 ETH paid'
"""

from __future__ import annotations

from dataclasses import dataclass

from motet.chain import NATIVE_ASSET, Chain
from motet.trust._reputation import summary_of
from motet.units import format_amount

__all__ = ["TrustFacts", "trust_facts"]


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


def trust_facts(chain: Chain, agent_id: int) -> TrustFacts:
    """Agent `agent_id`'s `TrustFacts` from the registry, validation and reputation contracts' views.

    A handful of `eth_call`s (the agent's record, its slashes, its validation record, its reputation totals),
    no log scan, so it is cheap enough to call for every candidate of a selection. An unknown agent has
    all-zero facts.
    """
    registry = chain.contract("AgentRegistry")
    agent = registry.functions.agents(agent_id).call()
    stake, unbonding = int(agent[3]), int(agent[4])
    slashes = int(registry.functions.slash_count(agent_id).call())
    slashed = int(registry.functions.slashed_total(agent_id).call())
    disputes, cheats, rejected = (
        int(v) for v in chain.contract("Validation").functions.record(agent_id).call()
    )
    count, weight, weighted_scores = chain.contract("Reputation").functions.totals(agent_id).call()
    reputation = summary_of(int(count), int(weight), int(weighted_scores))
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
        asset=str(agent[1]),
    )
