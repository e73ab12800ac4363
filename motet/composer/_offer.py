"""`Offer`: an agent offering a capability at a price per call; what the planner ranks and the payer pays.

The planner needs an offer's agent, capability and price. Calling and paying the agent needs more: the
payout address that channels are opened to, the bonded stake that `policy="most_staked"` ranks by, and the
agent's card, which says where to call it. Offers read from the registry (`registry_offers()`, and those
`Workflow.compile()` resolves for each node) carry all of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from motet.agents import AgentCard, CapabilitySpec, fetch_card
from motet.errors import InvalidAmount, MotetError
from motet.registry import Registry, capability_hash

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
                f"agent {self.agent_id} {self.agent!r} offers {self.capability.name!r} at {self.price}: "
                f"a price is never negative",
            )

    @property
    def label(self) -> str:
        """The agent as events and errors name it: `name (#id)`."""
        return f"{self.agent} (#{self.agent_id})"


async def registry_offers(registry: Registry) -> list[Offer]:
    """Every active agent's capabilities at its price, from the registry and the agents' cards; agents whose
    card cannot be read, or whose card's signer is not their payout, are left out."""
    offers: list[Offer] = []
    for record in registry.search():
        try:
            card = await fetch_card(record.agent_uri)
        except MotetError as exc:
            log.warning("agent %d is skipped: %s", record.agent_id, exc)
            continue
        if card.signer != record.payout:
            log.warning(
                "agent %d is skipped: its card's signer %s is not its payout %s",
                record.agent_id,
                card.signer,
                record.payout,
            )
            continue
        offers.extend(
            Offer(record.agent_id, card.name, spec, record.price, record.payout, record.bonded_stake, card)
            for spec in card.capabilities
            if record.declares(capability_hash(spec.name))
        )
    return offers
