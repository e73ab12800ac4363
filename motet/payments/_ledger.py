"""A SQLite ledger of every voucher signed (as payer) and received (as payee).

The ledger is what makes payments exactly-once: a payer persists a voucher before it sends it, and the
ledger refuses to record a cumulative amount at or below the highest one already recorded for the channel,
so a replay reuses the stored voucher instead of signing a new one. A payee records each accepted voucher
and redeems the highest per channel.

Amounts are uint256; they are stored as 64-digit hex text so that SQLite orders them correctly.

Example:
    >>> with Ledger("ledger.sqlite") as ledger:      # the connection closes on leaving the block
    ...     ledger.record_signed(voucher)        # raises VoucherNotAboveHighest if it goes backwards
    ...     ledger.highest_signed(domain, channel_id=1)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Self

from motet.errors import InvalidVoucher, VoucherNotAboveHighest
from motet.payments._vouchers import ChannelDomain, Voucher

Direction = Literal["signed", "received"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vouchers (
    chain_id     INTEGER NOT NULL,
    contract     TEXT    NOT NULL,
    channel_id   TEXT    NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('signed', 'received')),
    cumulative   TEXT    NOT NULL,
    signature    BLOB    NOT NULL,
    created_at   REAL    NOT NULL,
    redeemed_tx  TEXT,
    PRIMARY KEY (chain_id, contract, channel_id, direction, cumulative)
);
"""


def _hex(value: int) -> str:
    return f"{value:064x}"


class Ledger:
    """Persistent record of vouchers; safe to share between threads."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if self.path != ":memory:":
            # WAL + NORMAL: a committed voucher survives a crash of the process (not of the OS).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._highs: dict[tuple[int, str, int, Direction], tuple[str, bytes] | None] = {}
        """The highest voucher per channel and direction, as last read or written: valid while no other
        connection wrote (`PRAGMA data_version` says when one did, e.g. another process on the same file)."""
        self._version: int | None = None

    def close(self) -> None:
        """Close the SQLite connection (a `with` or `async with` block does it on leaving)."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._highs.clear()  # what was cached inside the transaction may not be on disk
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _highest(
        self, db: sqlite3.Connection, domain: ChannelDomain, channel_id: int, direction: Direction
    ) -> tuple[str, bytes] | None:
        """The channel's highest voucher in `direction` (the caller holds the lock): from the cache unless
        another connection wrote since it was filled."""
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._highs.clear()
            self._version = version
        key = (domain.chain_id, domain.contract, channel_id, direction)
        if key in self._highs:
            return self._highs[key]
        row = db.execute(
            "SELECT cumulative, signature FROM vouchers WHERE chain_id=? AND contract=? AND channel_id=? "
            "AND direction=? ORDER BY cumulative DESC LIMIT 1",
            (domain.chain_id, domain.contract, str(channel_id), direction),
        ).fetchone()
        found = self._highs[key] = (row[0], row[1]) if row else None
        return found

    def _record(self, voucher: Voucher, direction: Direction) -> None:
        """Insert the voucher unless the channel already holds one at or above its amount: one statement, so
        the check and the write are one atomic step for every connection to the file, with no transaction
        around them."""
        domain, channel = voucher.domain, str(voucher.channel_id)
        amount = _hex(voucher.cumulative_amount)
        with self._lock:
            inserted = self._db.execute(
                "INSERT INTO vouchers (chain_id, contract, channel_id, direction, cumulative, signature, created_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM vouchers WHERE chain_id=? AND "
                "contract=? AND channel_id=? AND direction=? AND cumulative >= ?)",
                (
                    *(
                        domain.chain_id,
                        domain.contract,
                        channel,
                        direction,
                        amount,
                        voucher.signature,
                        time.time(),
                    ),
                    *(domain.chain_id, domain.contract, channel, direction, amount),
                ),
            ).rowcount
            key = (domain.chain_id, domain.contract, voucher.channel_id, direction)
            if inserted:
                self._highest(self._db, domain, voucher.channel_id, direction)  # the cache, valid again
                self._highs[key] = (amount, voucher.signature)
                return
            self._highs.pop(key, None)
            highest = self._highest(self._db, domain, voucher.channel_id, direction)
        top = int(highest[0], 16) if highest is not None else 0
        if direction == "signed":
            raise VoucherNotAboveHighest(voucher.channel_id, voucher.cumulative_amount, top)
        raise InvalidVoucher(
            f"voucher for channel {hex(voucher.channel_id)} carries {voucher.cumulative_amount:,} wei, "
            f"not above the {top:,} wei already received: a replay or a lower amount"
        )

    def record_signed(self, voucher: Voucher) -> None:
        """Persist a voucher this process signed; raises `VoucherNotAboveHighest` if it is not new."""
        self._record(voucher, "signed")

    def record_received(self, voucher: Voucher) -> None:
        """Persist a voucher accepted from a payer; raises `InvalidVoucher` on a replay or lower amount."""
        self._record(voucher, "received")

    def highest(self, domain: ChannelDomain, channel_id: int, direction: Direction) -> Voucher | None:
        """The voucher with the highest cumulative amount for a channel, if any."""
        with self._lock:
            found = self._highest(self._db, domain, channel_id, direction)
        if found is None:
            return None
        return Voucher(domain, channel_id, int(found[0], 16), bytes(found[1]))

    def highest_signed(self, domain: ChannelDomain, channel_id: int) -> Voucher | None:
        return self.highest(domain, channel_id, "signed")

    def highest_received(self, domain: ChannelDomain, channel_id: int) -> Voucher | None:
        return self.highest(domain, channel_id, "received")

    def unredeemed(self, domain: ChannelDomain) -> list[Voucher]:
        """The highest received voucher of each channel that no redeem transaction has covered yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel_id, MAX(cumulative) FROM vouchers WHERE chain_id=? AND contract=? "
                "AND direction='received' GROUP BY channel_id",
                (domain.chain_id, domain.contract),
            ).fetchall()
            result = []
            for channel_id, cumulative in rows:
                sig, redeemed = self._db.execute(
                    "SELECT signature, redeemed_tx FROM vouchers WHERE chain_id=? AND contract=? AND channel_id=?"
                    " AND direction='received' AND cumulative=?",
                    (domain.chain_id, domain.contract, channel_id, cumulative),
                ).fetchone()
                if redeemed is None:
                    result.append(Voucher(domain, int(channel_id), int(cumulative, 16), bytes(sig)))
        return sorted(result, key=lambda v: v.channel_id)

    def contracts(self, chain_id: int) -> list[str]:
        """The channels contracts on chain `chain_id` that this ledger holds received vouchers for, not yet all
        redeemed: the domains to give `unredeemed` (a payee paid on several contracts redeems on each)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT contract FROM vouchers WHERE chain_id=? AND direction='received' "
                "AND redeemed_tx IS NULL ORDER BY contract",
                (chain_id,),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def mark_redeemed(self, vouchers: Sequence[Voucher], tx_hash: str) -> None:
        """Record that a transaction redeemed these received vouchers."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE vouchers SET redeemed_tx=? WHERE chain_id=? AND contract=? AND channel_id=? "
                "AND direction='received' AND cumulative=?",
                [
                    (
                        tx_hash,
                        v.domain.chain_id,
                        v.domain.contract,
                        str(v.channel_id),
                        _hex(v.cumulative_amount),
                    )
                    for v in vouchers
                ],
            )

    def count(self, direction: Direction | None = None) -> int:
        with self._lock:
            if direction is None:
                return int(self._db.execute("SELECT COUNT(*) FROM vouchers").fetchone()[0])
            return int(
                self._db.execute("SELECT COUNT(*) FROM vouchers WHERE direction=?", (direction,)).fetchone()[
                    0
                ]
            )
