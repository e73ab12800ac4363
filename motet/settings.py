"""Where motet keeps its files, and the chain parameters it deploys with.

Settings are a plain object passed to whoever needs them; nothing reads the environment at import time.
`Settings.from_env()` is the one place that does, for the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DisputeSettings",
    "GatewayLimits",
    "Settings",
    "TrustSettings",
]


def _default_home() -> Path:
    return Path(os.environ.get("MOTET_HOME") or Path.home() / ".motet")


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("MOTET_CACHE_DIR") or Path(base) / "motet")


@dataclass(frozen=True)
class GatewayLimits:
    """What the task gateway accepts from the network (docs/gateway.md, "Limits").

    Example:
        >>> GatewayLimits(hosts=("gateway.example",)).hosts
        ('gateway.example',)
    """

    hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    """Host names the gateway answers to (the `Host` header, port aside), besides IP addresses; any other name is
    403, which stops DNS rebinding. Give the public name when it is served under one."""
    origins: tuple[str, ...] = ()
    """Origins other than the gateway's own whose pages may send it requests; any other `Origin` is 403."""
    max_body: int = 256 * 1024
    """Bytes a request body may have (413 above)."""
    rate: float = 20.0
    """Requests per second one client address may make on average (429 with `Retry-After` above)."""
    burst: int = 200
    """Requests one client address may make at once before `rate` applies."""
    gas_per_wallet: int = 5 * 10**16
    """Wei of gas the session key may spend for one wallet (registering its delegations, opening and topping up
    its channels, settling its runs); past it the wallet's delegations and orders are refused (403)."""
    runs_kept: int = 100
    """Finished runs whose events stay in memory for `/api/orders/{id}/events` (their outcome stays on disk)."""
    events_kept: int = 2_000
    """Events one run keeps; token events past it, or past `event_bytes`, are dropped (counted in the result)."""
    event_bytes: int = 1_000_000
    """Bytes of event data one run keeps."""


@dataclass(frozen=True)
class TrustSettings:
    """How the composer samples paid calls for checking and weighs trust when it chooses agents (docs/trust.md,
    "Sampling" and "Selection").

    Example:
        >>> TrustSettings(sample_rate=1.0).sample_rate
        1.0
        >>> TrustSettings(sample_rate=1.5)
        Traceback (most recent call last):
        ...
        motet.errors.InvalidComposeArgument: sample_rate 1.5: a share of calls is between 0 and 1 (0.05 by default)
    """

    sample_rate: float = 0.05
    """The share p of paid calls to verifiable capabilities that the composer checks, each drawn after payment
    with randomness the agent cannot predict (`secrets`)."""
    price_weight: float = 0.35
    """Weight of the price in the "trusted" selection score (the cheapest worst case scores 1)."""
    reputation_weight: float = 0.25
    """Weight of the payment-weighted reputation (feedback from payers, pulled toward neutral by
    `reputation_prior`)."""
    stake_weight: float = 0.15
    """Weight of the bonded stake (the most staked candidate scores 1)."""
    record_weight: float = 0.15
    """Weight of the validation record (disputes the agent won, pulled toward neutral)."""
    latency_weight: float = 0.10
    """Weight of the latency this composer measured (the fastest scores 1; not measured yet scores 1)."""
    reputation_prior: int = 10**15
    """Wei of neutral (50/100) feedback every agent's reputation starts with, so a little paid feedback moves it
    a little and much moves it much."""

    def __post_init__(self) -> None:
        from motet.errors import InvalidComposeArgument

        if not 0.0 <= self.sample_rate <= 1.0:
            raise InvalidComposeArgument(
                f"sample_rate {self.sample_rate}: a share of calls is between 0 and 1 (0.05 by default)"
            )
        weights = (
            self.price_weight,
            self.reputation_weight,
            self.stake_weight,
            self.record_weight,
            self.latency_weight,
        )
        if any(not w >= 0.0 for w in weights) or sum(weights) <= 0.0:
            raise InvalidComposeArgument(
                f"trust weights {weights}: each is 0 or more and at least one is above 0"
            )
        if self.reputation_prior < 0:
            raise InvalidComposeArgument(f"reputation_prior {self.reputation_prior}: wei is never negative")


@dataclass(frozen=True)
class DisputeSettings:
    """The published economics of disputes, deployed as the Validation contract's immutables (docs/trust.md,
    "Disputes and slashing"). Wei, basis points (10,000 = 100 %) and seconds.

    Example:
        >>> DisputeSettings().slash_bps, DisputeSettings().validators_per_dispute
        (5000, 3)
        >>> DisputeSettings(validators_per_dispute=10)
        Traceback (most recent call last):
        ...
        ValueError: validators_per_dispute 10: draw between 1 and 9 validators per dispute (3 by default)
    """

    bond: int = 10**15
    """Wei a challenger posts to open a dispute: returned (with the reward) on a confirmed cheat, forfeited when
    the dispute fails."""
    slash_bps: int = 5_000
    """Share of the agent's stake a confirmed cheat loses (50 %)."""
    reward_bps: int = 2_000
    """Share of the slashed amount paid to the challenger on top of its bond (20 %)."""
    validator_fee: int = 10**14
    """Wei paid to each drawn validator whose revealed verdict matches the outcome, from the slashed amount (cheat)
    or the forfeited bond (failed dispute); what is left goes to the sink."""
    validators_per_dispute: int = 3
    """Validators drawn per dispute (K); a strict majority of them revealing "cheat" decides a cheat."""
    no_reveal_bps: int = 1_000
    """Share of its validator stake a drawn validator loses when it does not reveal (10 %)."""
    minority_bps: int = 500
    """Share of its validator stake a validator loses when its revealed verdict is against the outcome (5 %)."""
    min_validator_stake: int = 10**15
    """Least validator stake to register and to be drawn."""
    commit_window: int = 600
    """Seconds the drawn validators have to commit, from the draw."""
    reveal_window: int = 600
    """Seconds they have to reveal, after the commit window."""

    def __post_init__(self) -> None:
        for name in ("bond", "validator_fee", "min_validator_stake", "commit_window", "reveal_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or value >= 2**256:
                raise ValueError(f"{name} {value!r}: give a whole number of wei or seconds (a uint256)")
        for name in ("slash_bps", "reward_bps", "no_reveal_bps", "minority_bps"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 10_000:
                raise ValueError(f"{name} {value!r}: a share in basis points is between 0 and 10000")
        if not 1 <= self.validators_per_dispute <= 9:
            raise ValueError(
                f"validators_per_dispute {self.validators_per_dispute}: draw between 1 and 9 validators per "
                "dispute (3 by default)"
            )
        if (
            self.commit_window <= 0
            or self.reveal_window <= 0
            or max(self.commit_window, self.reveal_window) >= 2**32
        ):
            raise ValueError(
                f"commit_window {self.commit_window} s, reveal_window {self.reveal_window} s: each window is at "
                "least 1 s and under 2**32 s"
            )
        if self.min_validator_stake <= 0:
            raise ValueError("min_validator_stake 0: validators need a stake at risk (10**15 wei by default)")


@dataclass(frozen=True)
class Settings:
    """motet's settings.

    Example:
        >>> Settings(home=Path("/tmp/motet-home")).home
        PosixPath('/tmp/motet-home')
        >>> Settings(contracts={"AgentRegistry": "0x" + "ab" * 20}).contracts["AgentRegistry"][:6]
        '0xabab'
    """

    home: Path = field(default_factory=_default_home)
    """Registry indexes, ledgers and run records live here."""
    cache_dir: Path = field(default_factory=_default_cache)
    """Compiled contracts, keyed by source hash."""
    challenge_period: int = 3600
    """Seconds a payee has to redeem after a payer starts closing a channel."""
    unbonding_delay: int = 7 * 24 * 3600
    """Seconds an agent's stake stays bonded after an unstake request."""
    redeem_above: int = 10**17
    """A served agent redeems every voucher it holds once their unredeemed total reaches this amount (in the
    smallest unit of its asset; 0.1 ETH for the native coin)."""
    redeem_after: float = 24 * 3600
    """A served agent redeems every voucher it holds once the oldest has waited this many seconds."""
    watch_interval: float = 15.0
    """Seconds between a served agent's looks at the chain for channels starting to close (it redeems what
    they owe at once) and at its redeem thresholds; keep it well under the challenge period."""
    allow_private_endpoints: bool | None = None
    """Whether agent cards and endpoints may be at loopback, private or link-local addresses (every redirect
    included). None: only on a development chain (`Chain.development`: embedded, anvil, or chain id 31337),
    whose agents are served on 127.0.0.1; elsewhere such a card or endpoint is refused, so that a stranger's
    card cannot aim motet's requests into the local network."""
    min_stake: int = 10**15
    """Bonded stake (in the native coin's smallest unit) an agent needs for the composer to choose it by itself;
    an agent a node names (`agent=`) is used whatever its stake."""
    registry_confirmations: int | None = None
    """Blocks on top of a block before the registry index applies its events. None: 0 on a development chain
    (`Chain.development`: embedded, anvil, or chain id 31337), 12 elsewhere."""
    gateway: GatewayLimits = field(default_factory=GatewayLimits)
    """What the task gateway accepts from the network."""
    trust: TrustSettings = field(default_factory=TrustSettings)
    """How the composer samples paid calls for checks and weighs trust when it chooses agents."""
    disputes: DisputeSettings = field(default_factory=DisputeSettings)
    """The published economics of disputes and slashing (the Validation contract's immutables)."""
    contracts: dict[str, str] = field(default_factory=dict, hash=False)
    """Addresses of motet's contracts to use instead of the ones at their deterministic addresses, by name
    (`AgentRegistry`, `PaymentChannels`, `Validation`, `Reputation`), each checked as `Chain.use` checks it. Given
    only the registry, its channels and validation contracts are the ones it names (docs/protocol.md, "Where the
    contracts live"). Empty: every party finds the same contracts for the same settings, on every chain."""

    def __post_init__(self) -> None:
        windows = self.disputes.commit_window + self.disputes.reveal_window
        if self.unbonding_delay <= windows:
            raise ValueError(
                f"unbonding_delay {self.unbonding_delay} s must outlast a dispute's commit and reveal windows "
                f"({windows} s): raise it, or shorten settings.disputes' windows"
            )

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from `MOTET_HOME`, `MOTET_CACHE_DIR`, `MOTET_CHALLENGE_PERIOD` and
        `MOTET_ALLOW_PRIVATE_ENDPOINTS` (`1` allows, `0` refuses; for a development node reached by URL)."""
        period = os.environ.get("MOTET_CHALLENGE_PERIOD")
        private = os.environ.get("MOTET_ALLOW_PRIVATE_ENDPOINTS", "").strip().lower()
        allow = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(private)
        if period:
            return cls(challenge_period=int(period), allow_private_endpoints=allow)
        return cls(allow_private_endpoints=allow)
