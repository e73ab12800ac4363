"""Where motet keeps its files, and the chain parameters it deploys with.

Settings are a plain object passed to whoever needs them; nothing reads the environment at import time.
`Settings.from_env()` is the one place that does, for the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Settings",
]


def _default_home() -> Path:
    return Path(os.environ.get("MOTET_HOME") or Path.home() / ".motet")


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("MOTET_CACHE_DIR") or Path(base) / "motet")


@dataclass(frozen=True)
class Settings:
    """motet's settings.

    Example:
        >>> Settings(home=Path("/tmp/motet-home")).deployments_file
        PosixPath('/tmp/motet-home/deployments.json')
    """

    home: Path = field(default_factory=_default_home)
    """Deployments of persistent chains, registry indexes and ledgers live here."""
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

    @property
    def deployments_file(self) -> Path:
        return self.home / "deployments.json"

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from `MOTET_HOME`, `MOTET_CACHE_DIR` and `MOTET_CHALLENGE_PERIOD`."""
        period = os.environ.get("MOTET_CHALLENGE_PERIOD")
        return cls(challenge_period=int(period)) if period else cls()
