"""What the registry knows about one agent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One registered agent, as the contract (or the index of its events) records it.

    Amounts are integers in the smallest unit: `price` in the agent's `asset` (an ERC-20, or the zero
    address `NATIVE_ASSET` for the native coin),
    stakes in the native coin. `capability_hashes` are keccak256 of the capability names, in the
    order the agent declared them. `slashes` counts the confirmed cheats its stake was slashed for
    (docs/trust.md), `slashed` the stake they took.

    Example:
        >>> record = AgentRecord(
        ...     agent_id=1, owner="0xA", payout="0xA", asset="0x0", price=100, stake=50, unbonding=20,
        ...     unbonding_until=0, active=True, agent_uri="data:,{}", capability_hashes=(b"\\x01" * 32,),
        ... )
        >>> record.bonded_stake
        30
    """

    agent_id: int
    owner: str
    payout: str
    asset: str
    price: int
    stake: int
    unbonding: int
    unbonding_until: int
    active: bool
    agent_uri: str
    capability_hashes: tuple[bytes, ...]
    slashes: int = 0
    """How many times the validation contract slashed the agent for a confirmed cheat."""
    slashed: int = 0
    """The stake it lost to slashes, in total."""

    @property
    def bonded_stake(self) -> int:
        """Stake still at risk: the stake less what is unbonding."""
        return self.stake - self.unbonding

    def declares(self, capability_hash: bytes) -> bool:
        """Whether the agent declares the capability with this hash."""
        return capability_hash in self.capability_hashes
