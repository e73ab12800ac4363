"""`Reputation`: rate an agent's paid calls on chain, and read its payment-weighted reputation.

Only a caller who paid the agent can rate it: the feedback carries the agent's signed receipt for one call,
the contract checks that the receipt's channel is the caller's, pays the agent and has a redeemed amount, and
weighs the score by the receipt's price, capped by what the channel really paid on chain (docs/protocol.md,
"Reputation contract"). One feedback per paid call, ever.

Example:
    >>> reputation = Reputation(chain, payer_account)
    >>> reputation.give(agent_id, call.receipt, 90, tag="summarize")   # after the channel was redeemed
    >>> reputation.summary(agent_id)
    ReputationSummary(count=1, weight=1000, score=90.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from motet.chain import Chain
from motet.errors import InvalidReceipt
from motet.payments import Receipt, ReceiptDomain, verify_receipt

MAX_SCORE = 100
"""Scores run from 0 to 100 (ERC-8004's scale)."""
MAX_FEEDBACK_URI = 2048
"""Longest feedback URI the contract takes, in UTF-8 bytes (`Reputation.vy` `MAX_URI`)."""

__all__ = ["MAX_FEEDBACK_URI", "MAX_SCORE", "Reputation", "ReputationSummary"]


@dataclass(frozen=True, slots=True)
class ReputationSummary:
    """An agent's reputation from the callers who paid it.

    `count` feedbacks; `weight` is what they paid for the rated calls, in the smallest unit of the agent's price
    asset (wei for the native coin), counted only up to what their channels redeemed on chain; `score` is the
    weighted average score (0 to 100), exact; 0.0 while nobody rated the agent (`rated` is False).

    Example:
        >>> ReputationSummary(count=2, weight=3000, score=73.33).rated
        True
    """

    count: int
    weight: int
    score: float

    @property
    def rated(self) -> bool:
        """Whether any paying caller rated the agent."""
        return self.count > 0


def tag_bytes(tag: str) -> bytes:
    """A tag as the contract's `bytes32`: its UTF-8 bytes, zero-padded on the right (at most 32 bytes).

    Raises `ValueError` for a longer tag or one with a NUL character (it would not read back).

    Example:
        >>> tag_bytes("summarize")[:10]
        b'summarize\\x00'
        >>> tag_bytes("") == bytes(32)
        True
    """
    if not isinstance(tag, str):
        raise ValueError(f"feedback tag {tag!r} is {type(tag).__name__}; it must be a string")
    raw = tag.encode("utf-8")
    if len(raw) > 32:
        raise ValueError(f"feedback tag {tag!r} is {len(raw)} bytes in UTF-8; the contract keeps at most 32")
    if b"\x00" in raw:
        raise ValueError(f"feedback tag {tag!r} contains a NUL character")
    return raw.ljust(32, b"\x00")


def tag_text(raw: bytes) -> str:
    """The tag a `bytes32` holds (the inverse of `tag_bytes`; undecodable bytes are replaced).

    Example:
        >>> tag_text(tag_bytes("summarize"))
        'summarize'
    """
    return bytes(raw).rstrip(b"\x00").decode("utf-8", errors="replace")


class Reputation:
    """motet's reputation registry on one chain, acting for one account (the payer that rates).

    `account` signs `give` (default: the chain's first account); reading needs no account.
    """

    def __init__(self, chain: Chain, account: LocalAccount | None = None) -> None:
        self.chain = chain
        self.account = account if account is not None else chain.default_account
        self.contract: Contract = chain.contract("Reputation")
        self.registry: Contract = chain.contract("AgentRegistry")
        self.domain = ReceiptDomain(chain.chain_id, chain.contract("PaymentChannels").address)

    def __repr__(self) -> str:
        return f"Reputation(contract={self.contract.address}, account={self.account.address})"

    def give(self, agent_id: int, receipt: Receipt, score: int, *, tag: str = "", uri: str = "") -> None:
        """Rate the paid call `receipt` stands for with `score` (0 to 100), as the payer of its channel.

        Checked here before anything is sent: the score, the tag (at most 32 UTF-8 bytes), the URI (at most
        `MAX_FEEDBACK_URI` bytes) and the receipt: for this chain's channels contract and signed by the agent's
        payout (`ValueError`, `InvalidReceipt`). The contract then refuses, with `TransactionReverted` and its
        reason, a caller that is not the channel's payer (or its delegation's session key), a channel that does
        not pay the agent or redeemed nothing, a call already rated and feedback that would weigh nothing.
        """
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= MAX_SCORE:
            raise ValueError(f"feedback score {score!r} must be a whole number from 0 to {MAX_SCORE}")
        raw_tag = tag_bytes(tag)
        if not isinstance(uri, str) or len(uri.encode("utf-8")) > MAX_FEEDBACK_URI:
            raise ValueError(f"feedback uri must be a string of at most {MAX_FEEDBACK_URI} bytes in UTF-8")
        if not isinstance(receipt, Receipt):
            raise InvalidReceipt(f"expected a Receipt, got {type(receipt).__name__}")
        if receipt.domain != self.domain:
            raise InvalidReceipt(
                f"receipt is for chain {receipt.domain.chain_id} contract {receipt.domain.contract}; this chain's "
                f"reputation takes receipts of chain {self.domain.chain_id} contract {self.domain.contract}"
            )
        payout = str(self.registry.functions.agents(agent_id).call()[0])
        if int(payout, 16) != 0:  # an unknown agent: the contract says so
            verify_receipt(receipt, payout)
        call = self.contract.functions.give_feedback(
            agent_id, receipt.struct(), receipt.signature, score, raw_tag, uri
        )
        self.chain.send(call, sender=self.account, action=f"rating agent {agent_id}")

    def summary(self, agent_id: int) -> ReputationSummary:
        """Agent `agent_id`'s reputation (one contract read); an agent nobody rated has count 0."""
        count, weight, weighted_scores = self.contract.functions.totals(agent_id).call()
        return summary_of(int(count), int(weight), int(weighted_scores))

    def rated(self, channel_id: int, seq: int) -> bool:
        """Whether the paid call `seq` of channel `channel_id` was rated already (by anyone)."""
        return bool(self.contract.functions.rated(channel_id, seq).call())

    def last_index(self, agent_id: int, client: str) -> int:
        """How many feedbacks `client` (a payer) gave agent `agent_id`; they are numbered from 1."""
        return int(self.contract.functions.getLastIndex(agent_id, Web3.to_checksum_address(client)).call())


def summary_of(count: int, weight: int, weighted_scores: int) -> ReputationSummary:
    """A `ReputationSummary` from the contract's raw totals (`totals(agent_id)`)."""
    return ReputationSummary(count=count, weight=weight, score=weighted_scores / weight if weight else 0.0)
