"""`Offer`: an agent offering a capability at a price per call; what the planner ranks and the payer pays.

The planner needs an offer's agent, capability and price. Calling and paying the agent needs more: the
payout address that channels are opened to, the bonded stake that `policy="most_staked"` ranks by, and the
agent's card, which says where to call it and what it charges per token. Offers read from the registry
(`registry_offers()`, and those `Workflow.compile()` resolves for each node) carry all of it.

An agent priced per token (`per1kTokens` in its card) costs `price` plus that rate for the tokens a call
reads and writes; its capability's `maxTokens` bounds them, so `worst_case` bounds what one call can cost,
and is what a run reserves from its budget before the call. Such an agent without `maxTokens` has no worst
case and is not offered. Offers from the registry are only those of agents at public addresses (unless the
chain's settings allow private ones, as development chains do) with at least `Settings.min_stake` bonded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from motet.agents import AgentCard, CapabilitySpec, check_public_url, fetch_card, private_endpoints_allowed
from motet.errors import InvalidAgentCard, InvalidAmount, MotetError
from motet.registry import AgentRecord, Registry, capability_hash

__all__ = ["Offer", "registry_offers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offer:
    """An agent offering a capability at a price per call, in the asset's smallest unit.

    Example:
        >>> summarize = CapabilitySpec(name="summarize", input_schema={}, output_schema={})
        >>> offer = Offer(3, "smol", summarize, 1_000)
        >>> offer.label
        'smol (#3)'
    """

    agent_id: int
    agent: str
    """The agent's name, from its card."""
    capability: CapabilitySpec = field(hash=False)
    price: int
    payout: str = ""
    """Where the agent is paid: channels to it are opened to this address."""
    stake: int = 0
    """The agent's bonded stake, in the asset's smallest unit."""
    card: AgentCard | None = field(default=None, hash=False, repr=False)
    """The agent's card: where to call it. An offer without one can be planned with, not called."""

    def __post_init__(self) -> None:
        if self.price < 0:
            raise InvalidAmount(
                str(self.price),
                f"agent {self.agent_id} {self.agent!r} offers {self.capability.name!r} at {self.price:,} wei: "
                f"a price is never negative",
            )

    @property
    def label(self) -> str:
        """The agent as events and errors name it: `name (#id)`."""
        return f"{self.agent} (#{self.agent_id})"

    @property
    def per_1k_tokens(self) -> int:
        """What the agent charges per 1,000 tokens read and written, on top of `price` (its card's pricing)."""
        return self.card.pricing.per_1k_tokens if self.card is not None else 0

    @property
    def max_tokens(self) -> int | None:
        """The most tokens one call is charged for (the capability's `maxTokens`); None when unbounded."""
        return self.capability.max_tokens

    @property
    def worst_case(self) -> int:
        """The most one call can cost: `price`, plus the per-token rate for `max_tokens` tokens.

        Example:
            >>> from motet.agents import AgentCard, Pricing, Service
            >>> spec = CapabilitySpec(name="summarize", input_schema={}, output_schema={}, max_tokens=1_500)
            >>> card = AgentCard(name="smol", description="", services=[Service(name="motet",
            ...     endpoint="https://a.example/invoke")], capabilities=[spec],
            ...     pricing=Pricing(per_call=100, per_1k_tokens=20), signer="0x" + "11" * 20)
            >>> offer = Offer(3, "smol", spec, 100, card=card)
            >>> offer.worst_case, offer.price_of(prompt_tokens=700, completion_tokens=301)
            (130, 121)
        """
        if not self.per_1k_tokens:
            return self.price
        if self.max_tokens is None:
            raise InvalidAmount(
                str(self.per_1k_tokens),
                f"{self.label} charges per token for {self.capability.name!r} with no maxTokens bound: a "
                f"call could cost anything",
            )
        return self.price_of(prompt_tokens=self.max_tokens, completion_tokens=0)

    def price_of(self, *, prompt_tokens: int, completion_tokens: int) -> int:
        """What a call that used these tokens costs: `price`, plus the per-token rate, rounded up."""
        tokens = prompt_tokens + completion_tokens
        return self.price + -(-self.per_1k_tokens * tokens // 1000)


async def registry_offers(registry: Registry) -> list[Offer]:
    """Every active agent's capabilities at its price, from the registry and the agents' cards.

    Left out, each with a warning naming why: agents with less than `Settings.min_stake` bonded, agents
    whose card cannot be read (or is hostile), whose card's signer is not their payout, whose endpoint is
    at a private address the chain's settings do not allow, and capabilities priced per token with no
    `maxTokens` bound.
    """
    offers: list[Offer] = []
    for record in registry.search(min_stake=registry.chain.settings.min_stake):
        try:
            card = await read_card(registry, record)
        except MotetError as exc:
            log.warning("agent %d is skipped: %s", record.agent_id, exc)
            continue
        for spec in card.capabilities:
            if not record.declares(capability_hash(spec.name)):
                continue
            offer = Offer(
                record.agent_id, card.name, spec, record.price, record.payout, record.bonded_stake, card
            )
            try:
                offer.worst_case  # noqa: B018 - raises for a per-token price with no bound
            except MotetError as exc:
                log.warning("agent %d is skipped for %r: %s", record.agent_id, spec.name, exc)
                continue
            offers.append(offer)
    return offers


async def read_card(registry: Registry, record: AgentRecord) -> AgentCard:
    """`record`'s card, checked for use: fetched within the chain's rules on private addresses, its signer
    the registered payout, its endpoint at an address those rules allow; a `MotetError` says what is wrong."""
    allow_private = private_endpoints_allowed(registry.chain)
    card = await fetch_card(record.agent_uri, allow_private=allow_private)
    if card.signer != record.payout:
        raise InvalidAgentCard(
            "signer", f"the card's signer {card.signer} is not the agent's registered payout {record.payout}"
        )
    if not allow_private:
        await check_public_url(card.endpoint("motet"), field="services")
    return card
