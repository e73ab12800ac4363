"""What the registry knows about one agent."""

from __future__ import annotations

from dataclasses import dataclass

from motet.units import format_amount, plural

_NATIVE = "0x" + "00" * 20


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
        >>> record
        AgentRecord(#1 payout 0xA, price 100 (asset 0x0), stake 50 wei (20 wei unbonding), active, 1 capability)
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

    def __repr__(self) -> str:
        price = (
            format_amount(self.price)
            if self.asset == _NATIVE
            else f"{self.price:,} (asset {_short(self.asset)})"
        )
        stake = format_amount(self.stake) + (
            f" ({format_amount(self.unbonding)} unbonding)" if self.unbonding else ""
        )
        parts = [
            f"#{self.agent_id} payout {_short(self.payout)}",
            f"price {price}",
            f"stake {stake}",
            "active" if self.active else "inactive",
            plural(len(self.capability_hashes), "capability", "capabilities"),
        ]
        if self.slashes:
            parts.append(f"{plural(self.slashes, 'slash', 'slashes')} ({format_amount(self.slashed)})")
        return f"AgentRecord({', '.join(parts)})"

    def declares(self, capability_hash: bytes) -> bool:
        """Whether the agent declares the capability with this hash."""
        return capability_hash in self.capability_hashes


def _short(address: str) -> str:
    """`0x70997970C51812dc3A010C7d01b50e0d17dc79C8` → `0x7099…79C8`."""
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"
