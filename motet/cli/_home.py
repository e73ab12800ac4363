"""What the commands keep in motet's home (`MOTET_HOME`, default `~/.motet`): ledgers per account and chain,
so a payer never signs below what it signed before and an agent can redeem what it received after a restart;
the gateway's session key and saved delegations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from motet.chain import Chain
    from motet.payments import Ledger

Role = Literal["agent", "tab", "payer", "calls", "runs"]


def home() -> Path:
    """motet's home, created on first use."""
    from motet.settings import Settings

    path = Settings.from_env().home
    path.mkdir(parents=True, exist_ok=True)
    return path


def ledger_path(chain: Chain, role: Role) -> Path:
    """The SQLite file `role` keeps for this chain's default account (docs/operations.md lists them)."""
    return home() / f"{role}-{chain.default_account.address.lower()}-{chain.chain_id}.sqlite"


def ledger(chain: Chain, role: Role) -> Ledger:
    from motet.payments import Ledger

    return Ledger(ledger_path(chain, role))
