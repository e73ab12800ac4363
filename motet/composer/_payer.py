"""Paying agents' calls exactly once, across failures, crashes and resumes.

One logical call is `(run, node)`. Each attempt at it goes through these steps, and every step is written
to SQLite before the next one starts:

    calling    the request is about to be sent; it carries the idempotency key `run:node`
    delivered  the answer arrived, its receipt verified and its output validated: it is now owed
    signed     the voucher for it is signed (and in the voucher ledger)
    paid       the agent acknowledged the voucher

A resumed run reads the row and continues from where it stopped: a `calling` row sends the same request with
the same key (the agent answers what it already delivered, without a second run or charge); a `delivered`
row signs the owed amount, or reuses the voucher the ledger already holds for it; a `signed` row re-sends
its voucher (an agent accepts a voucher it already holds); a `paid` row is returned as it was. A failed
attempt (unreachable, 402, invalid output, bad receipt, overcharge) costs nothing and is `failed`.

An answer is accepted only within the offer's bounds, the same the `AgentClient` enforces: its price at most
what the offer's pricing charges for the usage it reports (`Offer.price_of`) and at most its worst case, its
tokens at most the capability's `maxTokens` when it is priced per token, its cumulative amount what was
signed before plus its price. Anything else is refused with nothing signed, and the node fails over.

Calls to one agent go one at a time (a lock per payee): parallel branches share the payee's channel, and
each call must see the voucher the one before it signed, so both are served and paid exactly.

The payer also measures each agent's latency (a moving mean of its accepted calls, kept in `store`), which
the "trusted" selection uses, and holds what sampled checks need: a local `Checker` and the random draw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from pydantic import JsonValue

from motet._json import dumps
from motet.agents import (
    AgentClient,
    ConnectionPool,
    PaidInvocation,
    check_public_url,
    private_endpoints_allowed,
)
from motet.chain import Chain
from motet.composer._budget import Budget
from motet.composer._offer import Offer
from motet.errors import (
    AgentCallFailed,
    AgentConnectionLost,
    AgentTimeout,
    InvalidComposeArgument,
    InvalidReceipt,
    MotetError,
    SettlementPending,
)
from motet.payments import CallSigner, ChannelClient, Ledger, Receipt, ReceiptDomain, Voucher

if TYPE_CHECKING:
    from motet.trust import Checker

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    run_id TEXT NOT NULL,
    node TEXT NOT NULL,
    agent_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    channel TEXT NOT NULL,
    price TEXT NOT NULL DEFAULT '0',
    owed TEXT NOT NULL DEFAULT '0',
    answer TEXT,
    voucher TEXT,
    problem TEXT,
    PRIMARY KEY (run_id, node, agent_id)
);
CREATE TABLE IF NOT EXISTS latency (
    agent_id INTEGER PRIMARY KEY,
    calls INTEGER NOT NULL,
    mean_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    definition TEXT NOT NULL,
    inputs TEXT NOT NULL,
    budget TEXT NOT NULL,
    started REAL NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS settlements (
    tx_hash TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    raw TEXT NOT NULL,
    vouchers TEXT NOT NULL,
    status TEXT NOT NULL
);
"""

SETTLEMENT_WAIT_S = 300.0
"""How long a resumed run waits for a settlement transaction it finds pending before it gives up (the next
resume waits again)."""

LATENCY_WEIGHT = 0.2
"""Weight of the newest call in an agent's measured latency (an exponential moving mean)."""


class SimulatedCrash(BaseException):
    """Raised by a fault hook in tests to stop a run dead at a chosen point, as a killed process would."""


@dataclass(frozen=True)
class _Attempt:
    """One agent's attempt at one logical call: the key of its row, and the agent."""

    run_id: str
    node: str
    offer: Offer

    @property
    def key(self) -> tuple[str, str, int]:
        return self.run_id, self.node, self.offer.agent_id


@dataclass(frozen=True)
class RunRecord:
    """A run as the payer keeps it: enough to resume it by its id (`motet runs resume ID`)."""

    run_id: str
    workflow: str
    """The workflow's name."""
    definition: dict[str, Any]
    """The workflow in its file form (`Workflow.from_dict` reads it back)."""
    inputs: dict[str, Any]
    budget: int
    """In wei."""
    started: float
    """Unix time."""
    status: str
    """`running` (or killed while running), `done` (not settled yet), `settled` or `failed`."""
    source: str
    """The workflow file or the goal it was planned from."""
    spent: int
    """What its calls were paid (or signed to pay), in wei."""


@dataclass(frozen=True)
class CallRecord:
    """One agent's attempt at one node of a run, as kept."""

    node: str
    agent_id: int
    status: str
    """`calling`, `delivered`, `signed`, `paid` or `failed` (see the module's docstring)."""
    channel: int
    price: int
    """In wei."""
    cumulative: int
    """What the channel's voucher for it covers in all, in wei."""
    output: dict[str, JsonValue] | None
    problem: str


@dataclass(frozen=True)
class PaidCall:
    invocation: PaidInvocation | None
    output: dict[str, JsonValue]
    price: int
    channel: int
    cumulative: int
    replayed: bool


class RunLog:
    """The runs a payer kept in its SQLite `store`, read without a chain: what `motet runs` lists and shows.

    Each run's record (workflow in file form, inputs, budget, status), each attempt at each of its calls
    (status, agent, price, output) and each settlement transaction it sent (hash kept before sending). A
    `Payer` writes them as it goes; this reads them back (`Payer` is one too).
    """

    def __init__(self, store: str | Path = ":memory:") -> None:
        self._db = sqlite3.connect(str(store), check_same_thread=False, isolation_level=None)
        if str(store) != ":memory:":
            # WAL + NORMAL, as the voucher ledger: each step is committed before the next one starts and survives a
            # crash of the process, with no fsync per step; `motet runs` reads while a run writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    def spent(self, run_id: str, *, checks: bool = False) -> int:
        """What a run has already paid (or signed to pay): resumed runs start their budget from it. With
        `checks`, only what it paid verifier agents for sampled checks (calls whose node is `node#verify`)."""
        rows = self._db.execute(
            "SELECT price FROM calls WHERE run_id = ? AND status IN ('delivered', 'signed', 'paid') "
            "AND (? = 0 OR node LIKE '%#verify')",
            (run_id, int(checks)),
        ).fetchall()
        return sum(int(price) for (price,) in rows)

    def paid_calls(self, run_id: str) -> int:
        """How many calls of the run were delivered and paid."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM calls WHERE run_id = ? AND status IN ('signed', 'paid')", (run_id,)
        ).fetchone()
        return int(count)

    def record_run(
        self, run_id: str, workflow: str, definition: Mapping[str, Any], inputs: Mapping[str, Any], budget: int,
        *, source: str = "",
    ) -> None:  # fmt: skip
        """Keep what resuming `run_id` needs besides its id: the workflow (its file form), inputs and budget.
        A run already recorded keeps its record (a resume does not restart it)."""
        self._db.execute(
            "INSERT OR IGNORE INTO runs (run_id, workflow, definition, inputs, budget, started, status, source) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
            (run_id, workflow, json.dumps(definition), json.dumps(inputs), str(budget), time.time(), source),
        )

    def run_status(self, run_id: str, status: str) -> None:
        """Record how the run stands: `running`, `done` (not settled yet), `settled` or `failed`."""
        self._db.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def runs(self) -> list[RunRecord]:
        """Every run this payer kept, the newest first."""
        rows = self._db.execute(
            "SELECT run_id, workflow, definition, inputs, budget, started, status, source FROM runs "
            "ORDER BY started DESC"
        ).fetchall()
        return [self._run_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord | None:
        """The kept run whose id is `run_id` (or starts with it, when only one does); None if none."""
        rows = self._db.execute(
            "SELECT run_id, workflow, definition, inputs, budget, started, status, source FROM runs "
            "WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id = ? DESC",
            (run_id, run_id.replace("%", "").replace("_", "") + "%", run_id),
        ).fetchall()
        if not rows or (len(rows) > 1 and rows[0][0] != run_id):
            return None
        return self._run_record(rows[0])

    def _run_record(self, row: Sequence[Any]) -> RunRecord:
        run_id, workflow, definition, inputs, budget, started, status, source = row
        return RunRecord(
            str(run_id), str(workflow), json.loads(definition), json.loads(inputs), int(budget), float(started),
            str(status), str(source), self.spent(str(run_id)),
        )  # fmt: skip

    def calls(self, run_id: str) -> list[CallRecord]:
        """Every attempt of the run at a call, in the order they were made: what `motet runs show` prints."""
        rows = self._db.execute(
            "SELECT node, agent_id, status, channel, price, owed, answer, problem FROM calls WHERE run_id = ? "
            "ORDER BY rowid",
            (run_id,),
        ).fetchall()
        return [
            CallRecord(
                str(node), int(agent_id), str(status), int(channel), int(price), int(owed),
                json.loads(answer)["output"] if answer else None, problem or "",
            )
            for node, agent_id, status, channel, price, owed, answer, problem in rows
        ]  # fmt: skip

    def settlements(self, run_id: str) -> list[tuple[str, str]]:
        """`(tx hash, status)` of each settlement transaction of the run, as kept: `sent` (signed and handed to
        the node, outcome not seen yet), `mined` or `dropped` (never mined; its vouchers were sent again)."""
        rows = self._db.execute(
            "SELECT tx_hash, status FROM settlements WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return [(str(tx), str(status)) for tx, status in rows]

    def pending_settlement(self, run_id: str) -> list[str]:
        """The run's settlement transactions that were sent and whose outcome this payer has not seen (a crash
        while they were pending): `settle()` looks them up and waits for them."""
        return [tx for tx, status in self.settlements(run_id) if status == "sent"]


class Payer(RunLog, contextlib.AbstractAsyncContextManager["Payer"]):
    """Opens channels to agents, calls them, and pays each accepted answer once.

    Use it as an async context manager (`async with Payer(chain) as payer:`), or call `aclose()` when done:
    both close its connections to the agents.

    Args:
        chain, account: who pays, where.
        store: SQLite path for call records (":memory:" forgets them: no resume).
        ledger: the voucher ledger (persist it beside `store` to resume).
        deposit_calls: a new channel's deposit covers this many calls at the agent's price.
        timeout: seconds for one agent call, model included.
        fault: a test hook called at each step with its name and the node; raising `SimulatedCrash` there
            stops the run as a killed process would.
        delegation: pay under this registered delegation: `account` is its session key, and channels are the
            delegator's, funded from the delegator's balance in the channels contract.
        checker: checks sampled calls locally when it runs their model (else a paid verifier agent does);
            see docs/trust.md, "Sampling".
        random: a number in [0, 1) per paid call to a verifiable capability; the call is checked when it is
            below `Settings.trust.sample_rate`. Default (None): drawn from `secrets`, which no agent can predict.
    """

    def __init__(
        self,
        chain: Chain,
        account: LocalAccount | None = None,
        *,
        store: str | Path = ":memory:",
        ledger: Ledger | None = None,
        deposit_calls: int = 20,
        timeout: float = 120.0,
        fault: Callable[[str, str], None] | None = None,
        delegation: bytes | None = None,
        checker: Checker | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.chain = chain
        self.delegation = delegation
        self.account = account or chain.default_account
        self.channels = ChannelClient(chain, self.account, ledger)
        self.deposit_calls = deposit_calls
        self.timeout = timeout
        self.checker = checker
        self.random = random
        self._fault = fault or (lambda point, node: None)
        RunLog.__init__(self, store)
        self._open: dict[str, tuple[int, int]] = {}
        """Payee → (channel id, deposit) of the channel this payer uses to pay it."""
        self._pool = ConnectionPool()
        self._latency: dict[int, float | None] = {}
        """Each agent's measured latency, as written to `store`."""
        self._seen: dict[int, Offer] = {}
        """The offers this payer called, by agent id: where to hand over a voucher an earlier payer left."""
        """One keep-alive pool for every agent this payer calls."""
        self._clients: dict[str, AgentClient] = {}
        self._unsent: dict[int, tuple[Voucher, list[_Attempt]]] = {}
        """Channel → its newest voucher the agent has not acknowledged yet, and the calls it pays: it rides on
        the next call on the channel, or goes by `/pay` in `hand_over`."""
        self._locks: dict[str, asyncio.Lock] = {}
        """Payee → the lock its calls take in turn: they share one channel."""
        self._private_allowed = private_endpoints_allowed(chain)
        self._public: set[str] = set()
        """Agent URLs already found at public addresses."""

    async def aclose(self) -> None:
        """Hand over the vouchers no agent has yet (`hand_over`), then close the connections to the agents; a
        later call opens them again."""
        try:
            await self.hand_over(strict=False)
        finally:
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()
            await self._pool.aclose()

    async def hand_over(
        self, run_id: str | None = None, offers: Sequence[Offer] = (), *, strict: bool = True
    ) -> int:
        """Send each voucher still waiting for the next call on its channel to its agent (`/pay`, all agents at
        once), and mark the calls it pays `paid`; returns how many went. A run does this when it ends and
        settles; a payer running many runs without settling lets them ride on its next calls instead.

        Calls left `signed` in the store by an earlier payer (one killed before it handed their vouchers over)
        are handed over too, when their agent is known: one this payer called, or one of `offers`; with
        `run_id`, only that run's.
        With `strict=False` an agent that cannot be reached is skipped: its voucher stays signed in the ledger,
        the calls stay `signed`, and a resume or the next call hands it over."""
        self._adopt_signed(run_id, [*self._seen.values(), *offers])
        waiting = list(self._unsent.items())
        results = await asyncio.gather(
            *(self._send(channel, voucher, attempts) for channel, (voucher, attempts) in waiting),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and (strict or not isinstance(result, MotetError)):
                raise result
        return sum(1 for result in results if result is True)

    async def pay_now(self, channel: int) -> bool:
        """Hand over the channel's waiting voucher now (`/pay`), when no later call will carry it soon: what a
        settling run does for an agent none of its remaining nodes may call. Returns whether one went; an agent
        that cannot be reached keeps it waiting (for the run's end, a resume, or the next call)."""
        waiting = self._unsent.get(channel)
        if waiting is None:
            return False
        try:
            return await self._send(channel, *waiting)
        except MotetError:
            return False

    def _adopt_signed(self, run_id: str | None, offers: Sequence[Offer]) -> None:
        """Wait to hand over the vouchers of calls left `signed` (of `run_id`, or of every run) whose agent is
        among `offers`."""
        by_agent = {offer.agent_id: offer for offer in offers}
        query = "SELECT run_id, node, agent_id, channel, voucher FROM calls WHERE status = 'signed'"
        if run_id is None:
            rows = self._db.execute(query).fetchall()
        else:
            rows = self._db.execute(query + " AND run_id = ?", (run_id,)).fetchall()
        for run, node, agent_id, channel, voucher in rows:
            offer = by_agent.get(int(agent_id))
            if offer is not None:
                self._wait(int(channel), Voucher.from_dict(json.loads(voucher)), [_Attempt(run, node, offer)])

    async def _send(self, channel: int, voucher: Voucher, attempts: list[_Attempt]) -> bool:
        offer = attempts[-1].offer
        async with self._locks.setdefault(offer.payout, asyncio.Lock()):
            if self._unsent.get(channel, (None,))[0] != voucher:
                return False  # a call carried it meanwhile
            try:
                await self._client(offer).pay(channel, voucher)
            except AgentCallFailed as exc:
                # The agent answered, and refused: it keeps its answer either way; the voucher stays signed and
                # is redeemed at settlement.
                if exc.status is None:
                    raise
            self._delivered(channel)
            return True

    def _delivered(self, channel: int) -> None:
        """The agent has the channel's waiting voucher: the calls it pays are `paid`."""
        _, attempts = self._unsent.pop(channel)
        for attempt in attempts:
            self._fault("after_pay", attempt.node)
            self._write(attempt, status="paid")

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def latency(self, agent_id: int) -> float | None:
        """The agent's mean seconds per accepted call as this payer measured them (request to answer, on this
        side of the network, whatever the agent reports); None before its first."""
        if agent_id not in self._latency:
            row = self._db.execute("SELECT mean_s FROM latency WHERE agent_id = ?", (agent_id,)).fetchone()
            self._latency[agent_id] = float(row[0]) if row is not None else None
        return self._latency[agent_id]

    def _measured(self, agent_id: int, seconds: float) -> None:
        known = self.latency(agent_id)
        mean = seconds if known is None else known + LATENCY_WEIGHT * (seconds - known)
        self._latency[agent_id] = mean
        self._db.execute(
            "INSERT INTO latency (agent_id, calls, mean_s) VALUES (?, 1, ?) "
            "ON CONFLICT (agent_id) DO UPDATE SET calls = calls + 1, mean_s = excluded.mean_s",
            (agent_id, mean),
        )

    def receipts(self, run_id: str) -> dict[str, tuple[int, Receipt]]:
        """Node → `(agent id, receipt)` of each call of the run that was delivered and paid: what a payer
        gives feedback with (`motet.trust.Reputation.give`) once the run settled."""
        rows = self._db.execute(
            "SELECT node, agent_id, answer FROM calls WHERE run_id = ? AND status IN ('signed', 'paid')",
            (run_id,),
        ).fetchall()
        domain = ReceiptDomain.for_channels(self.channels.domain)
        return {
            str(node): (int(agent_id), Receipt.from_dict(json.loads(answer)["receipt"], domain))
            for node, agent_id, answer in rows
        }

    def vouchers(self, run_id: str) -> list[Voucher]:
        """The highest voucher signed on each channel this run paid through."""
        channels = {
            int(channel)
            for (channel,) in self._db.execute(
                "SELECT DISTINCT channel FROM calls WHERE run_id = ? AND status IN ('signed', 'paid')",
                (run_id,),
            )
        }
        found = [self.channels.ledger.highest_signed(self.channels.domain, c) for c in sorted(channels)]
        return [v for v in found if v is not None]

    # -- settlement ---------------------------------------------------------------------------------

    def settle(self, run_id: str) -> tuple[list[str], int, int]:
        """Redeem the run's vouchers on chain in batched transactions: `(tx hashes, paid, gas used)`.

        Each transaction's hash is kept before it is sent, so settling again (a resumed run) never sends a
        second one: a kept transaction that was mined is read back and reported as the settlement, one still
        pending is waited for, and only the vouchers of one the node dropped are sent again.
        """
        results = []
        for tx_hash, status in self.settlements(run_id):
            if status == "dropped":
                continue
            row = self._db.execute(
                "SELECT raw, vouchers FROM settlements WHERE tx_hash = ?", (tx_hash,)
            ).fetchone()
            batch = [Voucher.from_dict(v) for v in json.loads(row[1])]
            receipt = self._settlement_receipt(tx_hash, bytes.fromhex(row[0]))
            if receipt is None:
                self._db.execute("UPDATE settlements SET status = 'dropped' WHERE tx_hash = ?", (tx_hash,))
                continue
            self._db.execute("UPDATE settlements SET status = 'mined' WHERE tx_hash = ?", (tx_hash,))
            results.append(self.channels.redemption(batch, receipt))
        covered = {(tx.channel_id, tx.cumulative_amount) for tx in self._settled_vouchers(run_id)}
        owed = [v for v in self.vouchers(run_id) if (v.channel_id, v.cumulative_amount) not in covered]

        def keep(batch: Sequence[Voucher], tx_hash: str, raw: bytes) -> None:
            self._db.execute(
                "INSERT INTO settlements (tx_hash, run_id, raw, vouchers, status) VALUES (?, ?, ?, ?, 'sent')",
                (tx_hash, run_id, raw.hex(), json.dumps([v.to_dict() for v in batch])),
            )

        for result in self.channels.redeem(owed, on_signed=keep):
            self._db.execute("UPDATE settlements SET status = 'mined' WHERE tx_hash = ?", (result.tx_hash,))
            results.append(result)
        return [r.tx_hash for r in results], sum(r.paid for r in results), sum(r.gas_used for r in results)

    def _settled_vouchers(self, run_id: str) -> list[Voucher]:
        rows = self._db.execute(
            "SELECT vouchers FROM settlements WHERE run_id = ? AND status = 'mined'", (run_id,)
        ).fetchall()
        return [Voucher.from_dict(v) for (vouchers,) in rows for v in json.loads(vouchers)]

    def _settlement_receipt(self, tx_hash: str, raw: bytes) -> Any:
        """The receipt of a kept settlement transaction, waiting while it is pending and sending it again
        when the node never got it; None when it can no longer be mined (its nonce went to another)."""
        from web3.exceptions import TransactionNotFound

        w3 = self.chain.w3
        try:
            return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        try:
            w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            try:  # dropped, or killed before it reached the node: the same signed transaction, same nonce
                w3.eth.send_raw_transaction(raw)
            except Exception:  # the nonce went to another transaction: this one will never be mined
                return None
        try:
            return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=SETTLEMENT_WAIT_S)  # type: ignore[arg-type]
        except Exception as exc:  # web3's TimeExhausted
            raise SettlementPending(tx_hash, SETTLEMENT_WAIT_S) from exc

    def unspent_deposits(self) -> int:
        """What this payer's channels hold beyond the vouchers it signed: room for calls without a new deposit."""
        room = 0
        for channel_id, deposit in self._open.values():
            highest = self.channels.ledger.highest_signed(self.channels.domain, channel_id)
            room += deposit - (highest.cumulative_amount if highest else 0)
        return room

    def forget_channel(self, channel_id: int) -> None:
        """Stop paying through `channel_id` (closed or closing, e.g. from a wallet screen): the next call to its
        agent opens a new channel instead of signing vouchers on one that is ending."""
        self._open = {payee: known for payee, known in self._open.items() if known[0] != channel_id}

    def _row(self, attempt: _Attempt) -> dict[str, Any] | None:
        cursor = self._db.execute(
            "SELECT status, channel, price, owed, answer, voucher FROM calls "
            "WHERE run_id = ? AND node = ? AND agent_id = ?",
            attempt.key,
        )
        row = cursor.fetchone()
        if row is None:
            return None
        keys = ("status", "channel", "price", "owed", "answer", "voucher")
        return dict(zip(keys, row, strict=True))

    def _write(self, attempt: _Attempt, **values: str | None) -> None:
        """Update the attempt's row (one statement), creating it first if it has none."""
        sets = ", ".join(f"{key} = ?" for key in values)
        update = f"UPDATE calls SET {sets} WHERE run_id = ? AND node = ? AND agent_id = ?"  # noqa: S608 - fixed keys
        if self._db.execute(update, (*values.values(), *attempt.key)).rowcount == 0:
            self._db.execute(
                "INSERT INTO calls (run_id, node, agent_id, status, channel) VALUES (?, ?, ?, 'calling', ?)",
                (*attempt.key, values.get("channel", "0")),
            )
            self._db.execute(update, (*values.values(), *attempt.key))

    async def _channel_to(self, offer: Offer) -> int:
        """An open channel to the agent with room for a call, opened (or topped up) when needed.

        No chain read per call: only this payer can top up or close its channels, so the deposit it
        recorded when it opened or topped one up is the deposit on chain. The transactions run off the
        event loop on a node (`Chain.off_loop`), so other branches and requests go on meanwhile.
        """
        known = self._open.get(offer.payout)
        worst = offer.worst_case
        top_up = max(worst, 1) * self.deposit_calls
        if known is not None:
            channel_id, deposit = known
            highest = self.channels.ledger.highest_signed(self.channels.domain, channel_id)
            signed = highest.cumulative_amount if highest else 0
            if deposit - signed < worst:
                deposit = (
                    await self.channels.chain.off_loop(self.channels.topup, channel_id, top_up)
                ).deposit
                self._open[offer.payout] = (channel_id, deposit)
            return channel_id
        state = await self.channels.chain.off_loop(
            self.channels.open,
            offer.payout,
            top_up,
            delegation=self.delegation,
            agent_id=offer.agent_id,
            capability=offer.capability.name,
        )
        self._open[offer.payout] = (state.channel_id, state.deposit)
        return state.channel_id

    def _client(self, offer: Offer) -> AgentClient:
        if offer.card is None or not offer.payout:
            raise InvalidComposeArgument(
                f"the offer of {offer.label} has no card or no payout: the payer calls an agent where its "
                f"card says and pays its payout; take offers from `registry_offers()` or `Workflow.compile()`"
            )
        url = offer.card.endpoint("motet").removesuffix("/invoke")
        client = self._clients.get(url)
        if client is None:
            # The payer's key, or the delegation's session key.
            signer = CallSigner(bytes(self.channels.account.key), self.channels.domain)
            client = AgentClient(url, signer=signer, timeout=self.timeout, card=offer.card, pool=self._pool)
            self._clients[url] = client
        return client

    async def call(
        self,
        run_id: str,
        node: str,
        offer: Offer,
        input: dict[str, JsonValue],
        budget: Budget,
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> PaidCall:
        """Call `offer`'s agent for `node` and pay the accepted answer, resuming whatever a crash left.

        Raises `MotetError` (or `TimeoutError`) when this agent failed; nothing is then owed or paid.
        """
        attempt = _Attempt(run_id, node, offer)
        self._seen[offer.agent_id] = offer
        row = self._row(attempt)
        if row is not None and row["status"] == "paid":
            answer = json.loads(row["answer"])  # counted in the budget already: see `spent()`
            return PaidCall(
                None, answer["output"], int(row["price"]), int(row["channel"]), int(row["owed"]), True
            )
        if row is not None and row["status"] in ("delivered", "signed"):
            # Already owed, and counted in the budget by `spent()` when the run resumed: finish paying it.
            return await self._call(attempt, input, row, on_token)
        reservation = budget.reserve(offer.worst_case, what=f"node {node!r} on {offer.label}")
        try:
            paid = await self._call(attempt, input, row, on_token)
        except BaseException:
            reservation.release()
            raise
        reservation.commit(paid.price)
        return paid

    async def _call(
        self,
        attempt: _Attempt,
        input: dict[str, JsonValue],
        row: dict[str, Any] | None,
        on_token: Callable[[str], None] | None,
    ) -> PaidCall:
        offer = attempt.offer
        client = self._client(offer)
        if not self._private_allowed and client.url not in self._public:
            await check_public_url(client.url, field="services")
            self._public.add(client.url)
        async with self._locks.setdefault(offer.payout, asyncio.Lock()):
            return await self._call_in_turn(attempt, client, input, row, on_token)

    async def _call_in_turn(
        self,
        attempt: _Attempt,
        client: AgentClient,
        input: dict[str, JsonValue],
        row: dict[str, Any] | None,
        on_token: Callable[[str], None] | None,
    ) -> PaidCall:
        offer, node = attempt.offer, attempt.node
        replayed = row is not None
        invocation: PaidInvocation | None = None
        if row is None or row["status"] in ("calling", "failed"):
            channel = (
                int(row["channel"])
                if row is not None and row["status"] == "calling"
                else await self._channel_to(offer)
            )
            highest = self.channels.ledger.highest_signed(self.channels.domain, channel)
            signed_before = highest.cumulative_amount if highest else 0
            self._write(attempt, status="calling", channel=str(channel), problem=None)
            waiting = self._unsent.get(channel)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    for last_try in (False, True):
                        try:
                            invocation = await client.invoke(
                                offer.capability.name,
                                input,
                                channel=channel,
                                payment=waiting[0] if waiting is not None else None,
                                idempotency_key=f"{attempt.run_id}:{node}",
                                on_token=on_token,
                                max_price=offer.worst_case,
                                max_tokens=offer.max_tokens if offer.per_1k_tokens else None,
                            )
                            break
                        except AgentConnectionLost:
                            # The agent may have delivered: asked again with the same key, it answers that (no
                            # second run or charge) and the channel is not left owing a call nobody pays.
                            if last_try:
                                raise
            except MotetError as exc:  # AgentTimeout included: the client's own bounds name themselves
                # Whether the agent took the voucher that rode along or not, it stays waiting: sent again, it is
                # accepted as already held.
                self._write(attempt, status="failed", problem=str(exc))
                raise
            except TimeoutError:
                timed_out = f"no answer within {self.timeout:g} s; nothing is owed"
                self._write(attempt, status="failed", problem=timed_out)
                raise AgentTimeout(offer.label, timed_out) from None
            assert invocation is not None  # the loop returned an answer or raised
            if waiting is not None:
                self._delivered(channel)  # the agent answered, so it accepted the voucher first
            self._fault("after_call", node)
            overcharged = _overcharge(offer, invocation, signed_before)
            if overcharged is not None:
                self._write(attempt, status="failed", problem=overcharged)
                raise InvalidReceipt(f"{offer.label} overcharged: {overcharged}")
            self._measured(offer.agent_id, time.perf_counter() - started)
            answer = dumps({"output": invocation.output, "receipt": invocation.receipt.to_dict()}).decode()
            row = {
                "status": "delivered",
                "channel": str(channel),
                "price": str(invocation.price),
                "owed": str(invocation.owed),
                "answer": answer,
            }
            self._write(attempt, status="delivered", price=row["price"], owed=row["owed"], answer=answer)
        channel, owed, price = int(row["channel"]), int(row["owed"]), int(row["price"])
        if row["status"] == "delivered":
            self._fault("before_sign", node)
            held = self.channels.ledger.highest_signed(self.channels.domain, channel)
            voucher = (
                held
                if held is not None and held.cumulative_amount == owed
                else self.channels.sign(channel, owed)
            )
            self._fault("after_sign", node)
            self._write(attempt, status="signed", voucher=dumps(voucher.to_dict()).decode())
        else:
            voucher = Voucher.from_dict(json.loads(row["voucher"]))
        self._wait(channel, voucher, [attempt])
        output = invocation.output if invocation is not None else json.loads(row["answer"])["output"]
        return PaidCall(invocation, output, price, channel, owed, replayed)

    def _wait(self, channel: int, voucher: Voucher, attempts: list[_Attempt]) -> None:
        """Keep `voucher` to ride on the channel's next call (or `hand_over`): the highest one waiting pays for
        every call before it."""
        known = self._unsent.get(channel)
        if known is not None:
            attempts = known[1] + [a for a in attempts if a not in known[1]]
            if known[0].cumulative_amount >= voucher.cumulative_amount:
                voucher = known[0]
        self._unsent[channel] = (voucher, attempts)


def _overcharge(offer: Offer, call: PaidInvocation, signed_before: int) -> str | None:
    """Why `call`'s charge is not owed, or None: a price above what its usage costs or above the offer's
    worst case, tokens past the capability's bound, or a cumulative amount other than before plus price."""
    usage = call.usage
    fair = offer.price_of(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
    if offer.per_1k_tokens and offer.max_tokens is not None and usage.total_tokens > offer.max_tokens:
        return f"reported {usage.total_tokens} tokens, above the capability's bound of {offer.max_tokens}"
    if call.price > min(fair, offer.worst_case):
        return (
            f"asked {call.price:,} wei, but the offer charges {fair:,} wei for the {usage.total_tokens} tokens "
            f"reported (registered price {offer.price:,} wei, worst case {offer.worst_case:,} wei)"
        )
    if call.owed != signed_before + call.price:
        return (
            f"asked a cumulative {call.owed:,} wei for a call of {call.price:,} wei on a channel where "
            f"{signed_before:,} wei was signed"
        )
    return None
