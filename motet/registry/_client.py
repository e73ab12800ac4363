"""`Registry`: register agents on the AgentRegistry contract, read them back, and search a local index.

Writes and `get` go to the chain; `search` reads a SQLite index of the contract's events that `sync`
keeps up to date (it runs before every search, and costs one request when nothing is new).

Example:
    >>> chain = Chain.embedded()
    >>> registry = Registry(chain)
    >>> agent_id = registry.register("data:,{}", ["text.summarize"], price=1_000, stake=10**18)
    >>> [agent.agent_id for agent in registry.search("text.summarize", max_price=5_000)]
    [1]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract import Contract
from web3.contract.contract import ContractEvent
from web3.exceptions import BlockNotFound
from web3.logs import DISCARD
from web3.types import LogReceipt, TxReceipt

from motet.chain import NATIVE_ASSET, Chain
from motet.errors import AgentNotFound, InvalidRegistryArgument, NotAgentOwner, TransactionReverted
from motet.payments._fields import Fields
from motet.registry._capabilities import capability_hash, capability_hashes
from motet.registry._index import AgentIndex, RegistryEvent
from motet.registry._record import AgentRecord
from motet.units import UINT256_MAX

MAX_URI_BYTES = 8192
"""Longest agent URI, in UTF-8 bytes (the contract's `MAX_URI`)."""

DEFAULT_CONFIRMATIONS = 12
"""Blocks on top of a block before its events are indexed, on chains other than development ones."""

SYNC_CHUNK_BLOCKS = 2_000
"""Blocks per `eth_getLogs` request: small enough for public RPC limits, large enough to catch up fast."""

_FIELDS = Fields(lambda name, value, rule: InvalidRegistryArgument(name, value, f"must be {rule}"))
_INDEXED_EVENTS = (
    "Transfer",
    "AgentRegistered",
    "AgentUpdated",
    "CapabilityAdded",
    "CapabilityRemoved",
    "AgentActivated",
    "StakeChanged",
    "Slashed",
)


class _Keep(Enum):
    KEEP = "keep"


_KEEP = _Keep.KEEP


class Registry:
    """The agent registry on one chain: transactions, direct reads and an indexed search.

    `owner` signs every transaction unless a call names another (default: the chain's first account).
    `index_path` is the SQLite file of the search index (None: in memory, rebuilt from the logs).
    `contract` picks a deployed AgentRegistry (default: motet's, deployed on first use); `start_block`
    is where indexing starts, which saves scanning a long chain from genesis. `confirmations` is how many
    blocks must be on top of a block before its events are indexed, so that a reorganisation rarely undoes
    what search shows (default: `Settings.registry_confirmations`, which is 0 on development chains and
    `DEFAULT_CONFIRMATIONS` elsewhere).

    Example:
        >>> registry = Registry(Chain.embedded(), index_path=None)
        >>> registry.search()
        []
    """

    def __init__(
        self,
        chain: Chain,
        *,
        index_path: Path | None = None,
        owner: LocalAccount | None = None,
        contract: Contract | None = None,
        start_block: int = 0,
        chunk_blocks: int = SYNC_CHUNK_BLOCKS,
        confirmations: int | None = None,
    ) -> None:
        if chunk_blocks < 1:
            raise InvalidRegistryArgument("chunk_blocks", chunk_blocks, "must be at least 1")
        if confirmations is None:
            confirmations = chain.settings.registry_confirmations
        if confirmations is None:
            confirmations = 0 if chain.development else DEFAULT_CONFIRMATIONS
        if confirmations < 0:
            raise InvalidRegistryArgument("confirmations", confirmations, "must be 0 or more")
        self.confirmations = confirmations
        self.chain = chain
        self.contract = contract if contract is not None else chain.contract("AgentRegistry")
        self.owner = owner if owner is not None else chain.default_account
        self._start_block = max(start_block, 0)
        self._chunk_blocks = chunk_blocks
        self._index = AgentIndex(index_path)
        self._index.bind(
            chain_id=chain.chain_id, contract=self.contract.address, start_block=self._start_block
        )
        events = [self.contract.events[name]() for name in _INDEXED_EVENTS]
        self._events: dict[HexBytes, ContractEvent] = {HexBytes(event.topic): event for event in events}
        # As 0x-strings: eth-tester ignores HexBytes inside a topic list (and so matches nothing).
        self._topics = [event.topic for event in events]
        self._sync_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry(contract={self.contract.address}, chain={self.chain!r}, index={self._index.path})"

    def close(self) -> None:
        """Close the index database."""
        self._index.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------------

    def register(
        self,
        agent_uri: str,
        capabilities: Sequence[str],
        price: int,
        *,
        payout: str | None = None,
        asset: str = NATIVE_ASSET,
        stake: int = 0,
        owner: LocalAccount | None = None,
    ) -> int:
        """Register an agent owned by `owner` and return its id; `stake` (native coin) is sent along.

        `payout` defaults to the owner's address; `price` is in `asset` (an ERC-20, or the native coin).

        Example:
            >>> registry.register("https://agents.example/summarizer.json", ["summarize"], price=10)
            1
        """
        sender = owner if owner is not None else self.owner
        _check_uri(agent_uri)
        hashes = capability_hashes(capabilities)
        _FIELDS.uint("price", price)
        _FIELDS.uint("stake", stake)
        payout_address = _FIELDS.address(
            "payout", payout if payout is not None else sender.address, zero=False
        )
        asset_address = _FIELDS.address("asset", asset)
        receipt = self.chain.send(
            self.contract.functions.register(agent_uri, payout_address, asset_address, price, hashes),
            sender=sender,
            value=stake,
            action="registering an agent",
        )
        (event,) = self.contract.events.AgentRegistered().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["agent_id"])

    def update(
        self,
        agent_id: int,
        *,
        agent_uri: str | None = None,
        capabilities: Sequence[str] | None = None,
        price: int | None = None,
        payout: str | None = None,
        asset: str | Literal[_Keep.KEEP] = _KEEP,
        owner: LocalAccount | None = None,
    ) -> None:
        """Change an agent's URI, capabilities, price, payout or asset; what is not given stays.

        `capabilities` replaces the whole list. `asset=NATIVE_ASSET` prices calls in the native coin.

        Example:
            >>> registry.update(agent_id, price=20, capabilities=["summarize", "translate"])
        """
        if agent_uri is None and capabilities is None and price is None and payout is None and asset is _KEEP:
            raise InvalidRegistryArgument("update", agent_id, "nothing to change: name at least one field")
        current = self.get(agent_id)
        uri = current.agent_uri if agent_uri is None else agent_uri
        _check_uri(uri)
        hashes = list(current.capability_hashes) if capabilities is None else capability_hashes(capabilities)
        new_price = current.price if price is None else price
        _FIELDS.uint("price", new_price)
        new_payout = current.payout if payout is None else _FIELDS.address("payout", payout, zero=False)
        new_asset = current.asset if asset is _KEEP else _FIELDS.address("asset", asset)
        self._send(
            agent_id,
            self.contract.functions.update(agent_id, uri, new_payout, new_asset, new_price, hashes),
            owner,
            action=f"updating agent {agent_id}",
        )

    def deactivate(self, agent_id: int, *, owner: LocalAccount | None = None) -> None:
        """Hide an agent from search (its stake and identity stay)."""
        self._set_active(agent_id, False, owner)

    def activate(self, agent_id: int, *, owner: LocalAccount | None = None) -> None:
        """Make a deactivated agent searchable again."""
        self._set_active(agent_id, True, owner)

    def _set_active(self, agent_id: int, active: bool, owner: LocalAccount | None) -> None:
        doing = "activating" if active else "deactivating"
        self._send(
            agent_id,
            self.contract.functions.set_active(agent_id, active),
            owner,
            action=f"{doing} agent {agent_id}",
        )

    def add_stake(self, agent_id: int, amount: int, *, owner: LocalAccount | None = None) -> int:
        """Add `amount` of the native coin to an agent's stake; returns the new total stake.

        Example:
            >>> registry.add_stake(agent_id, 10**18)
            2000000000000000000
        """
        _FIELDS.uint("stake amount", amount, minimum=1)
        receipt = self._send(
            agent_id,
            self.contract.functions.stake(agent_id),
            owner,
            value=amount,
            action=f"staking on agent {agent_id}",
        )
        return int(self._stake_changed(receipt)["stake"])

    def request_unstake(self, agent_id: int, amount: int, *, owner: LocalAccount | None = None) -> int:
        """Start unbonding `amount` of the stake; returns the timestamp from which it can be withdrawn.

        A second request adds to what is unbonding and restarts the delay for all of it.
        """
        _FIELDS.uint("unstake amount", amount, minimum=1)
        receipt = self._send(
            agent_id,
            self.contract.functions.request_unstake(agent_id, amount),
            owner,
            action=f"unstaking from agent {agent_id}",
        )
        return int(self._stake_changed(receipt)["unbonding_until"])

    def withdraw_stake(self, agent_id: int, *, owner: LocalAccount | None = None) -> int:
        """Pay the unbonded stake to the agent's owner once the delay is over; returns the amount."""
        _, _, _, stake_before, _, _, _ = self.contract.functions.agents(agent_id).call()
        receipt = self._send(
            agent_id,
            self.contract.functions.withdraw_stake(agent_id),
            owner,
            action=f"withdrawing stake of agent {agent_id}",
        )
        # Only the owner moves this agent's stake, so the drop across the transaction is the payout.
        return int(stake_before) - int(self._stake_changed(receipt)["stake"])

    def _send(
        self, agent_id: int, call: Any, owner: LocalAccount | None, *, action: str, value: int = 0
    ) -> TxReceipt:
        sender = owner if owner is not None else self.owner
        try:
            return self.chain.send(call, sender=sender, value=value, action=action)
        except TransactionReverted as exc:
            # Turn the two reverts a caller can fix into errors that say how.
            if exc.reason == "registry: unknown agent":
                raise AgentNotFound(agent_id, self.count()) from exc
            if exc.reason == "registry: caller is not the agent owner":
                holder = self.contract.functions.ownerOf(agent_id).call()
                raise NotAgentOwner(agent_id, sender.address, holder) from exc
            raise

    def _stake_changed(self, receipt: TxReceipt) -> dict[str, Any]:
        (event,) = self.contract.events.StakeChanged().process_receipt(receipt, errors=DISCARD)
        return dict(event["args"])

    # -- reading the chain ----------------------------------------------------------------------------

    def count(self) -> int:
        """How many agents were ever registered (ids run from 1 to this)."""
        return int(self.contract.functions.agent_count().call())

    def get(self, agent_id: int) -> AgentRecord:
        """An agent as the contract records it now; `AgentNotFound` for an unknown id.

        Example:
            >>> registry.get(1).price
            10
        """
        if isinstance(agent_id, bool) or not isinstance(agent_id, int) or not 0 < agent_id <= UINT256_MAX:
            raise AgentNotFound(agent_id, self.count())
        # Every read at one block, so the record is one consistent state even while blocks arrive.
        block = self.chain.w3.eth.block_number
        functions = self.contract.functions
        payout, asset, price, stake, unbonding, unbonding_until, active = functions.agents(agent_id).call(
            block_identifier=block
        )
        if int(payout, 16) == 0:  # every registered agent has a payout; an unknown id reads as zeros
            raise AgentNotFound(agent_id, int(functions.agent_count().call(block_identifier=block)))
        return AgentRecord(
            agent_id=agent_id,
            owner=functions.ownerOf(agent_id).call(block_identifier=block),
            payout=payout,
            asset=asset,
            price=price,
            stake=stake,
            unbonding=unbonding,
            unbonding_until=unbonding_until,
            active=active,
            agent_uri=functions.tokenURI(agent_id).call(block_identifier=block),
            capability_hashes=tuple(
                bytes(h) for h in functions.capabilities(agent_id).call(block_identifier=block)
            ),
            slashes=int(functions.slash_count(agent_id).call(block_identifier=block)),
            slashed=int(functions.slashed_total(agent_id).call(block_identifier=block)),
        )

    # -- the index ------------------------------------------------------------------------------------

    def search(
        self,
        capability: str | None = None,
        *,
        max_price: int | None = None,
        min_stake: int | None = None,
        max_slashes: int | None = None,
        include_inactive: bool = False,
        refresh: bool = True,
    ) -> list[AgentRecord]:
        """Agents that declare `capability`, cost at most `max_price`, have at least `min_stake` bonded and
        were slashed at most `max_slashes` times (0: never caught cheating).

        Served from the local index, after a `sync()` unless `refresh=False` (for many searches in a row:
        sync once, then search without refreshing). Cheapest first, then most bonded stake, then lowest
        id. Prices are compared as numbers whatever asset they are in. Deactivated agents are left out
        unless `include_inactive`.

        Example:
            >>> [a.agent_id for a in registry.search("summarize", max_price=100, min_stake=10**18)]
            [1]
        """
        wanted = capability_hash(capability) if capability is not None else None
        if max_price is not None:
            _FIELDS.uint("max_price", max_price)
        if min_stake is not None:
            _FIELDS.uint("min_stake", min_stake)
        if max_slashes is not None:
            _FIELDS.uint("max_slashes", max_slashes)
        if refresh:
            self.sync()
        return self._index.search(
            capability=wanted,
            max_price=max_price,
            min_stake=min_stake,
            max_slashes=max_slashes,
            include_inactive=include_inactive,
        )

    def sync(self) -> int:
        """Apply the contract's events since the last indexed block, up to the block `confirmations` below
        the chain's head; returns how many were applied.

        Logs are fetched `chunk_blocks` at a time and each chunk is applied in one transaction, so an
        interrupted sync resumes where it stopped. If the last indexed block is no longer on the chain
        (a new dev chain, a reorganisation) the index is rebuilt from `start_block`.

        Example:
            >>> registry.sync()
            0
        """
        w3 = self.chain.w3
        with self._sync_lock:
            self._reset_if_forked()
            latest = w3.eth.block_number - self.confirmations
            applied = 0
            # Re-read the position each round: another process on the same file may have moved it.
            while (start := self._index.last_block + 1) <= latest:
                end = min(start + self._chunk_blocks - 1, latest)
                logs = w3.eth.get_logs(
                    {
                        "address": self.contract.address,
                        "fromBlock": start,
                        "toBlock": end,
                        "topics": [self._topics],
                    }
                )
                events = sorted((self._decode(log) for log in logs), key=lambda e: (e.block, e.log_index))
                end_hash = bytes(w3.eth.get_block(end)["hash"]).hex()
                applied += self._index.apply(
                    events, first_block=start, last_block=end, last_block_hash=end_hash
                )
            return applied

    def _reset_if_forked(self) -> None:
        last, known_hash = self._index.last_block, self._index.last_block_hash
        if known_hash is None or last < self._start_block:
            return
        try:
            now_hash: str | None = bytes(self.chain.w3.eth.get_block(last)["hash"]).hex()
        except BlockNotFound:
            now_hash = None
        if now_hash != known_hash:
            self._index.reset(
                chain_id=self.chain.chain_id, contract=self.contract.address, start_block=self._start_block
            )

    def _decode(self, log: LogReceipt) -> RegistryEvent:
        data = self._events[HexBytes(log["topics"][0])].process_log(log)
        return RegistryEvent(
            name=data["event"],
            block=int(data["blockNumber"]),
            log_index=int(data["logIndex"]),
            args=data["args"],
        )


def _check_uri(agent_uri: str) -> None:
    if not isinstance(agent_uri, str) or not agent_uri:
        raise InvalidRegistryArgument(
            "agent URI", agent_uri, "the URI of the registration file is empty: give a data: or https: URI"
        )
    size = len(agent_uri.encode("utf-8"))
    if size > MAX_URI_BYTES:
        raise InvalidRegistryArgument(
            "agent URI",
            agent_uri,
            f"it is {size} bytes, at most {MAX_URI_BYTES} fit on chain: host the registration file at an "
            "https: URI instead of inlining it",
        )
