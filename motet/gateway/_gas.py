"""The gas the gateway's session key spends for each wallet, within a budget per wallet (`GatewayLimits.gas_per_wallet`).

Registering a delegation, opening and topping up its channels and settling its runs are transactions the session
key sends and pays for. Each wallet's are sent through a `MeteredChain`, which adds what every transaction cost
(gas used × effective gas price) to the wallet's total and refuses a new one once the total has reached the
budget; settling (redeeming vouchers for calls already delivered) is never refused, so the agents are paid for
work done. The totals are kept in the order desk's database, so a restart does not reset them.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from motet.chain import Chain
from motet.errors import OrderRefused
from motet.units import format_amount

_SCHEMA = "CREATE TABLE IF NOT EXISTS gas (wallet TEXT PRIMARY KEY, spent TEXT NOT NULL)"
_SETTLING = {"redeem", "redeem_many", "settle", "redeem_batch"}
"""Calls that pay agents for delivered work: sent even past the budget."""


class GasMeter:
    """Gas spent per wallet (in wei), in `db`, against `budget` wei per wallet."""

    def __init__(self, db: sqlite3.Connection, budget: int) -> None:
        self.budget = budget
        self._db = db
        self._lock = threading.Lock()
        self._db.execute(_SCHEMA)

    def spent(self, wallet: str) -> int:
        row = self._db.execute("SELECT spent FROM gas WHERE wallet = ?", (wallet.lower(),)).fetchone()
        return int(row[0]) if row else 0

    def add(self, wallet: str, wei: int) -> None:
        with self._lock:
            total = self.spent(wallet) + wei
            self._db.execute(
                "INSERT INTO gas (wallet, spent) VALUES (?, ?) "
                "ON CONFLICT (wallet) DO UPDATE SET spent = excluded.spent",
                (wallet.lower(), str(total)),
            )

    def check(self, wallet: str, action: str) -> None:
        """Raise `OrderRefused` (403) if `wallet`'s gas budget is spent."""
        spent = self.spent(wallet)
        if spent >= self.budget:
            raise OrderRefused(
                403,
                f"gas budget spent: this gateway has paid {format_amount(spent)} of gas for {wallet} (its limit per "
                f"wallet is {format_amount(self.budget)}), so it will not pay for {action}; the gateway's operator "
                "can raise the limit",
            )


class MeteredChain:
    """`chain`, with every transaction it sends counted against `wallet`'s gas budget in `meter`.

    Everything but `send` is the chain's own.
    """

    def __init__(self, chain: Chain, meter: GasMeter, wallet: str) -> None:
        self._chain = chain
        self._meter = meter
        self._wallet = wallet
        self.last_receipt: Any = None
        """The receipt of the last transaction sent through this view (the chain's own may be another's)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)

    def send(self, call: Any, **kwargs: Any) -> Any:
        function = str(getattr(call, "fn_name", "transaction"))
        if function not in _SETTLING:
            self._meter.check(self._wallet, str(kwargs.get("action") or function))
        receipt = self._chain.send(call, **kwargs)
        self.last_receipt = receipt
        self._meter.add(self._wallet, self._cost(receipt))
        return receipt

    def _cost(self, receipt: Any) -> int:
        price = receipt.get("effectiveGasPrice")
        if price is None:
            price = self._chain.w3.eth.gas_price
        return int(receipt["gasUsed"]) * int(price)
