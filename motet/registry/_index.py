"""A local SQLite index of the registry's events, so that search never waits for the chain.

The index is a projection of the contract's logs: each event is applied in (block, log index) order and
the index remembers the last block it has seen and that block's hash. It belongs to one contract on one
chain; `bind` wipes it when it is opened for another one.

Amounts are uint256 and do not fit SQLite's 64-bit integers, so they are stored as 32-byte big-endian
blobs, which SQLite compares byte by byte: the blob order is the numeric order, and `price <= ?` works.

Example:
    >>> index = AgentIndex(None)
    >>> index.bind(chain_id=1, contract="0x" + "11" * 20, start_block=0)
    False
    >>> index.last_block
    -1
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motet.registry._record import AgentRecord

_SCHEMA_VERSION = "3"  # 2: the asset column (was token); 3: slashes and slashed

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Executed one statement at a time inside a transaction (executescript would commit halfway).
_TABLES = """
DROP TABLE IF EXISTS agents;
DROP TABLE IF EXISTS capabilities;
CREATE TABLE agents (
    agent_id        INTEGER PRIMARY KEY,
    owner           TEXT NOT NULL,
    payout          TEXT NOT NULL,
    asset           TEXT NOT NULL,      -- an ERC-20, or the zero address for the native coin
    price           BLOB NOT NULL,      -- uint256 as 32 big-endian bytes, as are the amounts below
    stake           BLOB NOT NULL,
    unbonding       BLOB NOT NULL,
    bonded          BLOB NOT NULL,      -- stake - unbonding, kept so that search can filter and sort on it
    unbonding_until BLOB NOT NULL,
    active          INTEGER NOT NULL,
    agent_uri       TEXT NOT NULL,
    slashes         INTEGER NOT NULL DEFAULT 0,   -- confirmed cheats the validation contract slashed
    slashed         BLOB NOT NULL DEFAULT (zeroblob(32))
);
CREATE TABLE capabilities (
    agent_id   INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    capability BLOB NOT NULL,
    PRIMARY KEY (agent_id, capability)
);
CREATE INDEX capabilities_by_hash ON capabilities (capability);
CREATE INDEX agents_by_price ON agents (price, bonded);
"""


_SELECT_AGENTS = (
    "SELECT a.agent_id, a.owner, a.payout, a.asset, a.price, a.stake, a.unbonding, a.unbonding_until, "
    "a.active, a.agent_uri, a.slashes, a.slashed FROM agents a"
)
_ORDER_AGENTS = "ORDER BY a.price ASC, a.bonded DESC, a.agent_id ASC"


def _u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _int(blob: bytes) -> int:
    return int.from_bytes(blob, "big")


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One decoded log of the registry contract."""

    name: str
    block: int
    log_index: int
    args: Mapping[str, Any]


class AgentIndex:
    """The SQLite tables behind `Registry.search`; `path=None` keeps them in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every write below opens its own explicit transaction.
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute(_META)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta -----------------------------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    @property
    def last_block(self) -> int:
        """The last block whose events are applied; `start_block - 1` before the first sync."""
        with self._lock:
            value = self._meta().get("last_block")
        return int(value) if value is not None else -1

    @property
    def last_block_hash(self) -> str | None:
        """The hash of `last_block` when it was indexed; a different hash now means another chain."""
        with self._lock:
            return self._meta().get("last_block_hash")

    def bind(self, *, chain_id: int, contract: str, start_block: int) -> bool:
        """Make this the index of `contract` on `chain_id`, wiping it if it was another's (or an older schema).

        Returns True when an existing index was wiped.
        """
        wanted = {"schema": _SCHEMA_VERSION, "chain_id": str(chain_id), "contract": contract.lower()}
        with self._lock:
            meta = self._meta()
            if all(meta.get(key) == value for key, value in wanted.items()):
                return False
            had_data = bool(meta)
            self.reset(chain_id=chain_id, contract=contract, start_block=start_block)
            return had_data

    def reset(self, *, chain_id: int, contract: str, start_block: int) -> None:
        """Forget everything and start again before `start_block`."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _TABLES.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("DELETE FROM meta")
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema", _SCHEMA_VERSION),
                        ("chain_id", str(chain_id)),
                        ("contract", contract.lower()),
                        ("last_block", str(start_block - 1)),
                    ],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------------

    def apply(
        self, events: Iterable[RegistryEvent], *, first_block: int, last_block: int, last_block_hash: str
    ) -> int:
        """Apply the events of blocks `first_block..last_block` (in chain order), in one transaction.

        Returns the number of events applied: 0 when the index is no longer at `first_block - 1`
        (another writer on the same file got there first), so that no event is applied twice.
        """
        applied = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._meta().get("last_block") != str(first_block - 1):
                    self._db.execute("ROLLBACK")
                    return 0
                for event in events:
                    self._apply_one(event)
                    applied += 1
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("last_block", str(last_block)), ("last_block_hash", last_block_hash)],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return applied

    def _apply_one(self, event: RegistryEvent) -> None:
        args = event.args
        db = self._db
        if event.name == "Transfer":
            # Minting is recorded by AgentRegistered (which names the owner); a burn ends the agent.
            agent_id, sender, receiver = args["token_id"], args["sender"], args["receiver"]
            if int(receiver, 16) == 0:
                db.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,))
                db.execute("DELETE FROM capabilities WHERE agent_id = ?", (agent_id,))
            elif int(sender, 16) != 0:
                db.execute("UPDATE agents SET owner = ? WHERE agent_id = ?", (receiver, agent_id))
        elif event.name == "AgentRegistered":
            zero = _u256(0)
            db.execute(
                "INSERT OR REPLACE INTO agents (agent_id, owner, payout, asset, price, stake, unbonding, "
                "bonded, unbonding_until, active, agent_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    args["agent_id"],
                    args["owner"],
                    args["payout"],
                    args["token"],
                    _u256(args["price"]),
                    zero,
                    zero,
                    zero,
                    zero,
                    args["agent_uri"],
                ),
            )
        elif event.name == "AgentUpdated":
            db.execute(
                "UPDATE agents SET payout = ?, asset = ?, price = ?, agent_uri = ? WHERE agent_id = ?",
                (
                    args["payout"],
                    args["token"],
                    _u256(args["price"]),
                    args["agent_uri"],
                    args["agent_id"],
                ),
            )
        elif event.name == "CapabilityAdded":
            db.execute(
                "INSERT OR REPLACE INTO capabilities (agent_id, position, capability) VALUES "
                "(?, (SELECT COUNT(*) FROM capabilities WHERE agent_id = ?), ?)",
                (args["agent_id"], args["agent_id"], bytes(args["capability"])),
            )
        elif event.name == "CapabilityRemoved":
            db.execute(
                "DELETE FROM capabilities WHERE agent_id = ? AND capability = ?",
                (args["agent_id"], bytes(args["capability"])),
            )
        elif event.name == "AgentActivated":
            db.execute(
                "UPDATE agents SET active = ? WHERE agent_id = ?", (int(args["active"]), args["agent_id"])
            )
        elif event.name == "StakeChanged":
            stake, unbonding = args["stake"], args["unbonding"]
            db.execute(
                "UPDATE agents SET stake = ?, unbonding = ?, bonded = ?, unbonding_until = ? "
                "WHERE agent_id = ?",
                (
                    _u256(stake),
                    _u256(unbonding),
                    _u256(stake - unbonding),
                    _u256(args["unbonding_until"]),
                    args["agent_id"],
                ),
            )
        elif event.name == "Slashed":
            row = db.execute("SELECT slashed FROM agents WHERE agent_id = ?", (args["agent_id"],)).fetchone()
            if row is not None:  # the stake itself follows from the StakeChanged the slash also logs
                db.execute(
                    "UPDATE agents SET slashes = slashes + 1, slashed = ? WHERE agent_id = ?",
                    (_u256(_int(row[0]) + args["amount"]), args["agent_id"]),
                )
        else:
            raise ValueError(f"the registry index has no handler for event {event.name!r}")

    # -- reading --------------------------------------------------------------------------------------

    def search(
        self,
        *,
        capability: bytes | None,
        max_price: int | None,
        min_stake: int | None,
        include_inactive: bool,
        max_slashes: int | None = None,
    ) -> list[AgentRecord]:
        """Agents matching every given filter, cheapest first, then most bonded stake, then lowest id."""
        clauses: list[str] = []
        params: list[Any] = []
        if capability is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM capabilities c WHERE c.agent_id = a.agent_id AND c.capability = ?)"
            )
            params.append(capability)
        if max_price is not None:
            clauses.append("a.price <= ?")
            params.append(_u256(max_price))
        if min_stake is not None:
            clauses.append("a.bonded >= ?")
            params.append(_u256(min_stake))
        if max_slashes is not None:
            clauses.append("a.slashes <= ?")
            params.append(max_slashes)
        if not include_inactive:
            clauses.append("a.active = 1")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            # `where` joins fixed clauses; every value is a bound parameter.
            rows = self._db.execute(" ".join((_SELECT_AGENTS, where, _ORDER_AGENTS)), params).fetchall()
            hashes = self._capabilities_of([row[0] for row in rows])
        return [
            AgentRecord(
                agent_id=row[0],
                owner=row[1],
                payout=row[2],
                asset=row[3],
                price=_int(row[4]),
                stake=_int(row[5]),
                unbonding=_int(row[6]),
                unbonding_until=_int(row[7]),
                active=bool(row[8]),
                agent_uri=row[9],
                capability_hashes=tuple(hashes.get(row[0], ())),
                slashes=row[10],
                slashed=_int(row[11]),
            )
            for row in rows
        ]

    def _capabilities_of(self, agent_ids: list[int]) -> dict[int, list[bytes]]:
        found: dict[int, list[bytes]] = {}
        # SQLite limits the number of bound parameters; stay well under it.
        for start in range(0, len(agent_ids), 500):
            chunk = agent_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for agent_id, capability in self._db.execute(
                f"SELECT agent_id, capability FROM capabilities WHERE agent_id IN ({marks}) "  # noqa: S608
                "ORDER BY agent_id, position",
                chunk,
            ):
                found.setdefault(agent_id, []).append(bytes(capability))
        return found
