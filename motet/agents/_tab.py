"""The agent server's tab: every delivered call, what it cost and the answer sent, kept in SQLite.

The running total per channel is what the payer owes (the next voucher must carry at least that much); the
answer is kept so that a call repeated with the same idempotency key gets it again instead of a second run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from motet._json import dumps

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    price TEXT NOT NULL,
    total TEXT NOT NULL,
    receipt TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    idempotency_key TEXT,
    answer TEXT NOT NULL,
    request TEXT,
    PRIMARY KEY (chain_id, contract, channel, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_by_key
    ON deliveries (chain_id, contract, channel, idempotency_key) WHERE idempotency_key IS NOT NULL;
"""


class Tab:
    """What each channel's payer owes for delivered calls, persisted in SQLite: a restarted agent still
    knows who owes it, and never counts a call twice."""

    def __init__(self, path: str | Path, chain_id: int, contract: str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL, as the voucher ledger: each delivery is committed before its answer goes out and survives
        # a crash of the process; no fsync per call (only a crash of the machine can lose the newest ones).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(deliveries)")}
        if "request" not in columns:  # a tab written before idempotency keys were bound to their request
            self._db.execute("ALTER TABLE deliveries ADD COLUMN request TEXT")
        self._key = (chain_id, contract)
        self._last: dict[int, tuple[int, int]] = {}
        """Each channel's last delivery as last read or written: valid while no other connection wrote
        (`PRAGMA data_version` says when one did)."""
        self._version: int | None = None

    def last(self, channel_id: int) -> tuple[int, int]:
        """`(seq, total)` of the channel's last delivery, `(0, 0)` before the first."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._last.clear()
            self._version = version
        known = self._last.get(channel_id)
        if known is None:
            row = self._db.execute(
                "SELECT seq, total FROM deliveries WHERE chain_id = ? AND contract = ? AND channel = ? "
                "ORDER BY seq DESC LIMIT 1",
                (*self._key, hex(channel_id)),
            ).fetchone()
            known = self._last[channel_id] = (int(row[0]), int(row[1])) if row else (0, 0)
        return known

    def record(
        self,
        channel_id: int,
        seq: int,
        price: int,
        total: int,
        key: str | None,
        request: str,
        answer: dict[str, Any],
    ) -> None:
        """Add a delivery (committed before its answer is returned: a restarted agent still knows it is owed);
        `request` is what its idempotency key is bound to (the request's hash)."""
        self._last.pop(channel_id, None)
        self._db.execute(
            "INSERT INTO deliveries (chain_id, contract, channel, seq, price, total, receipt, delivered_at, "
            "idempotency_key, answer, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *self._key,
                hex(channel_id),
                seq,
                str(price),
                str(total),
                dumps(answer["receipt"]).decode(),
                time.time(),
                key,
                dumps(answer).decode(),
                request,
            ),
        )
        self._last[channel_id] = (seq, total)

    def answer(self, channel_id: int, key: str) -> tuple[str | None, dict[str, Any]] | None:
        """`(request, answer)` already delivered on this channel for this idempotency key, if any; `request` is
        the hash the key is bound to (None for a delivery recorded before keys were bound)."""
        row = self._db.execute(
            "SELECT request, answer FROM deliveries WHERE chain_id = ? AND contract = ? AND channel = ? "
            "AND idempotency_key = ?",
            (*self._key, hex(channel_id), key),
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def close(self) -> None:
        self._db.close()
