"""`Disputes`: open, vote on and settle disputes on the Validation contract, and read its records.

A caller whose check of a paid answer says "cheat" opens a dispute with the agent's signed receipt, the model
the answer claims (its GGUF sha256), a URI of the evidence and the published bond (`Settings.disputes.bond`).
`open` also draws the validators, in the next block, from that block's hash. The drawn validators `commit`
a hidden verdict, then `reveal` it; anyone can `resolve` after the reveal window (or once all revealed).
Money is credited on the contract and taken out with `withdraw`. docs/trust.md, "Disputes and slashing", has
the rules and the numbers.

All methods are synchronous (they wait for their transaction); from async code call them through
`chain.off_loop`.

Example:
    >>> chain = Chain.embedded()
    >>> disputes = Disputes(chain, chain.accounts[1])
    >>> disputes.register_validator(["ab" * 32], stake=10**15)
    >>> disputes.validator_stake(chain.accounts[1].address)
    1000000000000000
    >>> disputes.record(1)
    ValidationRecord(agent_id=1, disputes=0, cheats=0, rejected=0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from motet.chain import Chain
from motet.errors import DisputeError, TransactionReverted
from motet.payments import Receipt
from motet.payments._eip712 import keccak
from motet.trust._verdict import Verdict
from motet.units import format_eth

__all__ = ["DisputeState", "DisputeStatus", "Disputes", "ValidationRecord", "commitment"]

DisputeStatus = Literal["drawing", "voting", "resolved", "cancelled"]
"""Where a dispute is: waiting for its draw, drawn and voting, decided, or cancelled at the draw (bond refunded)."""

_STATUSES: dict[int, DisputeStatus] = {1: "drawing", 2: "voting", 3: "resolved", 4: "cancelled"}
MAX_EVIDENCE_URI = 65536
"""Longest evidence URI the Validation contract takes, in UTF-8 bytes (its `MAX_EVIDENCE_URI`)."""
_SHA256 = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ZERO32 = bytes(32)


def commitment(dispute_id: int, verdict: Verdict, salt: bytes, validator: str) -> bytes:
    """The commitment a validator sends with `commit`: keccak256(abi_encode(dispute_id, verdict uint8, salt
    bytes32, validator address)), as the contract checks it at `reveal`.

    Example:
        >>> hidden = commitment(1, Verdict.CHEAT, bytes(32), "0x" + "11" * 20)
        >>> len(hidden), hidden == commitment(1, Verdict.CONSISTENT, bytes(32), "0x" + "11" * 20)
        (32, False)
    """
    _check_salt(salt)
    return keccak(
        abi_encode(
            ["uint256", "uint8", "bytes32", "address"],
            [dispute_id, int(verdict), salt, Web3.to_checksum_address(validator)],
        )
    )


@dataclass(frozen=True)
class ValidationRecord:
    """An agent's validation record: disputes opened against it (cancelled ones aside), decided as cheats (it
    lost), decided as not cheats (it won); the rest are still open.

    Example:
        >>> ValidationRecord(agent_id=3, disputes=4, cheats=1, rejected=2).open
        1
    """

    agent_id: int
    disputes: int
    cheats: int
    rejected: int

    @property
    def open(self) -> int:
        """Disputes against the agent not decided yet."""
        return self.disputes - self.cheats - self.rejected


@dataclass(frozen=True)
class DisputeState:
    """One dispute as the Validation contract holds it.

    `model` is the disputed model's GGUF sha256 (64 lowercase hex digits). The deadlines are chain timestamps,
    0 before the draw. `validators` are the drawn validators in draw order, `committed` those that committed,
    `revealed` the verdicts revealed so far. `outcome` is `Verdict.CHEAT` (a confirmed cheat) or
    `Verdict.CONSISTENT` (not a cheat: inconclusive and silent validators count as "not cheat") once resolved,
    else None; `slashed` is the wei the agent lost.
    """

    dispute_id: int
    agent_id: int
    challenger: str
    model: str
    request_hash: bytes
    response_hash: bytes
    receipt_digest: bytes
    bond: int
    opened_block: int
    status: DisputeStatus
    commit_deadline: int
    reveal_deadline: int
    validators: tuple[str, ...]
    committed: tuple[str, ...]
    revealed: Mapping[str, Verdict] = field(default_factory=dict)
    cheat_votes: int = 0
    outcome: Verdict | None = None
    slashed: int = 0
    evidence_uri: str = ""

    @property
    def resolved(self) -> bool:
        """Whether the dispute was decided (`outcome` is set)."""
        return self.status == "resolved"

    @property
    def cheat(self) -> bool:
        """Whether the dispute was decided as a cheat."""
        return self.outcome == Verdict.CHEAT

    def commit_open(self, now: int) -> bool:
        """Whether drawn validators can still commit at chain time `now`."""
        return self.status == "voting" and now < self.commit_deadline

    def reveal_open(self, now: int) -> bool:
        """Whether committed validators can reveal at chain time `now`: every drawn validator committed, or
        the commit window is over, and the reveal window is not."""
        if self.status != "voting" or now >= self.reveal_deadline:
            return False
        return len(self.committed) == len(self.validators) or now >= self.commit_deadline

    def resolvable(self, now: int) -> bool:
        """Whether `resolve` is allowed at chain time `now`: the reveal window is over, or all revealed."""
        if self.status != "voting":
            return False
        return now >= self.reveal_deadline or len(self.revealed) == len(self.validators)

    def summary(self) -> str:
        """One sentence on where the dispute stands.

        Example:
            >>> DisputeState(7, 2, "0x" + "11" * 20, "ab" * 32, bytes(32), bytes(32), bytes(32), 10**15, 5,
            ...     "resolved", 100, 200, ("0xa", "0xb", "0xc"), ("0xa", "0xb", "0xc"), cheat_votes=2,
            ...     outcome=Verdict.CHEAT, slashed=5 * 10**17).summary()
            'dispute #7 against agent #2: a cheat, 2 of 3 validators said so; 0.5000 ETH slashed'
        """
        head = f"dispute #{self.dispute_id} against agent #{self.agent_id}"
        drawn = len(self.validators)
        if self.status == "drawing":
            return f"{head}: waiting for its validators to be drawn"
        if self.status == "cancelled":
            return f"{head}: cancelled at the draw (too few eligible validators, or drawn too late); bond refunded"
        if self.status == "voting":
            return f"{head}: {len(self.committed)} of {drawn} committed, {len(self.revealed)} revealed"
        if self.cheat:
            return (
                f"{head}: a cheat, {self.cheat_votes} of {drawn} validators said so; "
                f"{format_eth(self.slashed)} slashed"
            )
        return f"{head}: not a cheat ({self.cheat_votes} of {drawn} validators said cheat); the bond is forfeited"


class Disputes:
    """The Validation contract of `chain`, acting as `account` (challenger, validator or bystander).

    `chain.contract("Validation")` deploys it with `chain.settings.disputes` on first use and names it as the
    agent registry's slasher.
    """

    def __init__(self, chain: Chain, account: LocalAccount) -> None:
        self.chain = chain
        self.account = account
        self.contract: Contract = chain.contract("Validation")
        self._scanned = 0  # disputes up to this id were looked at by `assigned`
        self._pending: set[int] = set()  # disputes drawing or voting when last looked at
        self._uris: dict[int, str] = {}  # evidence URIs read from the logs, by dispute

    def __repr__(self) -> str:
        return f"Disputes(contract={self.contract.address!r}, account={self.account.address!r})"

    # -- validators -----------------------------------------------------------------------------------

    def register_validator(self, models: Sequence[str], stake: int) -> None:
        """Register this account as a validator of `models` (GGUF sha256, hex) with `stake` wei (added to any
        stake it has; the models replace those it declared). The total stake must reach
        `settings.disputes.min_validator_stake`. Raises `ValueError` for a malformed model hash and
        `DisputeError` when the contract refuses."""
        if isinstance(models, str):
            raise ValueError("models is one string: give a list of GGUF sha256 hashes")
        hashes = [_model_bytes(model) for model in models]
        if not hashes:
            raise ValueError("no models: give the GGUF sha256 of each model this validator can run")
        self._send(
            self.contract.functions.register_validator(hashes), "registering as a validator", value=stake
        )

    def validator_stake(self, address: str) -> int:
        """The validator stake of `address` (0 when it is not a validator)."""
        return int(self.contract.functions.validators(Web3.to_checksum_address(address)).call()[0])

    def request_leave(self) -> int:
        """Stop being drawn; returns the chain time from which `leave` returns the stake."""
        receipt = self._send(self.contract.functions.request_leave(), "asking to leave as a validator")
        (event,) = self.contract.events.ValidatorLeaving().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["leaving_at"])

    def leave(self) -> int:
        """Credit this validator's stake to its balance (then `withdraw`); refused before the delay and while a
        dispute it was drawn for is unresolved. Returns the stake credited."""
        receipt = self._send(self.contract.functions.leave(), "leaving as a validator")
        (event,) = self.contract.events.ValidatorLeft().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["stake"])

    # -- disputes -------------------------------------------------------------------------------------

    def open(
        self,
        agent_id: int,
        receipt: Receipt,
        model_sha256: str,
        evidence_uri: str,
        *,
        bond: int | None = None,
    ) -> int:
        """Dispute agent `agent_id`'s `receipt` as a cheat, then draw the validators; returns the dispute id.

        `bond` defaults to `settings.disputes.bond` (the contract takes exactly that). Raises `DisputeError`
        when the receipt is not of this chain's channels contract, when the contract refuses (the receipt is
        not signed by the agent's payout, was disputed already, ...), and when the draw cancels the dispute
        (too few validators declare the model): the bond is then refunded to this account at once.
        """
        channels = self.chain.contract("PaymentChannels").address
        if receipt.domain.chain_id != self.chain.chain_id or receipt.domain.contract != channels:
            raise DisputeError(
                f"the receipt is for chain {receipt.domain.chain_id} channels {receipt.domain.contract}, but this "
                f"chain is {self.chain.chain_id} with channels {channels}: dispute it on its own chain"
            )
        size = len(evidence_uri.encode())
        if not 0 < size <= MAX_EVIDENCE_URI:
            raise DisputeError(
                f"the evidence URI is {size} bytes; the validation contract takes 1 to {MAX_EVIDENCE_URI}: "
                "host larger evidence and give its https URI"
            )
        value = self.chain.settings.disputes.bond if bond is None else bond
        call = self.contract.functions.open_dispute(
            agent_id, receipt.struct(), receipt.signature, _model_bytes(model_sha256), evidence_uri
        )
        tx = self._send(
            call,
            f"disputing agent #{agent_id}'s receipt (channel {hex(receipt.channel_id)} seq {receipt.seq})",
            value=value,
        )
        (event,) = self.contract.events.DisputeOpened().process_receipt(tx, errors=DISCARD)
        dispute_id = int(event["args"]["dispute_id"])
        # The draw reads the hash of the dispute's block, so it must run in a later one (anvil and nodes
        # estimate its gas against the latest block).
        self.chain.wait_for_block_after(int(tx["blockNumber"]))
        self.draw(dispute_id, evidence_uri)
        state = self.state(dispute_id)
        if state.status == "cancelled":
            refunded = self.withdraw()
            raise DisputeError(
                f"dispute #{dispute_id} was cancelled at the draw: fewer than "
                f"{self.chain.settings.disputes.validators_per_dispute} eligible validators declare model "
                f"{state.model}; the bond ({refunded} wei credited) was withdrawn to {self.account.address}"
            )
        return dispute_id

    def draw(self, dispute_id: int, evidence_uri: str | None = None) -> tuple[str, ...]:
        """Draw a dispute's validators (anyone can, from the block after its opening; `open` does it). Returns
        them, or () when the draw cancelled the dispute. The contract wants the evidence URI again (it keeps
        only its hash); without `evidence_uri` it is read from the dispute's `DisputeOpened` log."""
        if evidence_uri is None:
            evidence_uri = self._evidence_uri(
                dispute_id, int(self.contract.functions.disputes(dispute_id).call()[7])
            )
        receipt = self._send(
            self.contract.functions.draw(dispute_id, evidence_uri),
            f"drawing validators for dispute #{dispute_id}",
        )
        events = self.contract.events.ValidatorsDrawn().process_receipt(receipt, errors=DISCARD)
        if not events:
            return ()
        return tuple(Web3.to_checksum_address(v) for v in events[0]["args"]["validators"])

    def commit(self, dispute_id: int, verdict: Verdict, salt: bytes) -> None:
        """Commit this (drawn) validator's `verdict` hidden under a 32-byte secret `salt`; keep both to reveal."""
        hidden = commitment(dispute_id, verdict, salt, self.account.address)
        self._send(
            self.contract.functions.commit(dispute_id, hidden),
            f"committing a verdict on dispute #{dispute_id}",
        )

    def reveal(self, dispute_id: int, verdict: Verdict, salt: bytes) -> None:
        """Reveal the committed verdict (same `verdict` and `salt` as the commitment)."""
        _check_salt(salt)
        self._send(
            self.contract.functions.reveal(dispute_id, int(Verdict(verdict)), salt),
            f"revealing a verdict on dispute #{dispute_id}",
        )

    def resolve(self, dispute_id: int) -> DisputeState:
        """Decide and settle a dispute (anyone can, after the reveal window or once all revealed); returns its
        final state."""
        self._send(self.contract.functions.resolve(dispute_id), f"resolving dispute #{dispute_id}")
        return self.state(dispute_id)

    def state(self, dispute_id: int) -> DisputeState:
        """Dispute `dispute_id` as the contract holds it; `DisputeError` when there is none."""
        count = int(self.contract.functions.dispute_count().call())
        if not 1 <= dispute_id <= count:
            raise DisputeError(
                f"no dispute #{dispute_id} on the validation contract {self.contract.address} "
                f"(it has {count}; ids run from 1)"
            )
        fns = self.contract.functions
        d = fns.disputes(dispute_id).call()
        validators = tuple(Web3.to_checksum_address(v) for v in fns.drawn(dispute_id).call())
        committed: list[str] = []
        revealed: dict[str, Verdict] = {}
        for validator in validators:
            hidden, verdict = fns.votes(dispute_id, validator).call()
            if bytes(hidden) != _ZERO32:
                committed.append(validator)
            if verdict:
                revealed[validator] = Verdict(verdict)
        return DisputeState(
            dispute_id=dispute_id,
            agent_id=int(d[0]),
            challenger=Web3.to_checksum_address(d[1]),
            model=bytes(d[2]).hex(),
            request_hash=bytes(d[3]),
            response_hash=bytes(d[4]),
            receipt_digest=bytes(d[5]),
            bond=int(d[6]),
            opened_block=int(d[7]),
            status=_STATUSES[int(d[8])],
            commit_deadline=int(d[9]),
            reveal_deadline=int(d[10]),
            validators=validators,
            committed=tuple(committed),
            revealed=revealed,
            cheat_votes=int(d[13]),
            outcome=Verdict(int(d[14])) if int(d[14]) else None,
            slashed=int(d[15]),
            evidence_uri=self._evidence_uri(dispute_id, int(d[7])),
        )

    def assigned(self, validator: str) -> list[int]:
        """The unresolved disputes (drawn, not resolved) `validator` was drawn for, oldest first."""
        address = Web3.to_checksum_address(validator)
        fns = self.contract.functions
        count = int(fns.dispute_count().call())
        self._pending.update(range(self._scanned + 1, count + 1))
        self._scanned = max(self._scanned, count)
        unresolved = int(fns.validators(address).call()[2])  # how many the contract counts
        found: list[int] = []
        for dispute_id in sorted(self._pending):
            if len(found) == unresolved:
                break
            status = int(fns.disputes(dispute_id).call()[8])
            if status in (3, 4):  # resolved or cancelled: never again assigned
                self._pending.discard(dispute_id)
            elif status == 2 and address in (
                Web3.to_checksum_address(v) for v in fns.drawn(dispute_id).call()
            ):
                found.append(dispute_id)
        return found

    # -- money and records ----------------------------------------------------------------------------

    def withdraw(self) -> int:
        """Send this account its credited balance (bond refunds, rewards, fees, a leaving validator's stake);
        returns the wei sent (0, and no transaction, when there is none)."""
        amount = self.balance(self.account.address)
        if amount == 0:
            return 0
        self._send(self.contract.functions.withdraw(), "withdrawing from the validation contract")
        return amount

    def balance(self, address: str) -> int:
        """The wei credited to `address` on the contract, withdrawable."""
        return int(self.contract.functions.balances(Web3.to_checksum_address(address)).call())

    def record(self, agent_id: int) -> ValidationRecord:
        """Agent `agent_id`'s validation record."""
        disputes, cheats, rejected = self.contract.functions.record(agent_id).call()
        return ValidationRecord(agent_id, int(disputes), int(cheats), int(rejected))

    # -- helpers --------------------------------------------------------------------------------------

    def _evidence_uri(self, dispute_id: int, block: int) -> str:
        """The evidence URI `DisputeOpened` logged for a dispute opened in `block` ("" when the node no longer
        has that log)."""
        if dispute_id not in self._uris:
            event = self.contract.events.DisputeOpened()
            logs = event.get_logs(
                from_block=block, to_block=block, argument_filters={"dispute_id": dispute_id}
            )
            if not logs:
                return ""
            self._uris[dispute_id] = str(logs[0]["args"]["evidence_uri"])
        return self._uris[dispute_id]

    def _send(self, call: Any, action: str, *, value: int = 0) -> TxReceipt:
        try:
            return self.chain.send(call, sender=self.account, value=value, action=action)
        except TransactionReverted as exc:
            raise DisputeError(
                f"{action}: the validation contract refused ({exc.reason or 'no reason given'})"
            ) from exc


def _model_bytes(model: str) -> bytes:
    if not isinstance(model, str) or not _SHA256.fullmatch(model):
        raise ValueError(f"model {model!r} is not a GGUF sha256: give 64 hex digits")
    return bytes.fromhex(model.removeprefix("0x"))


def _check_salt(salt: bytes) -> None:
    if not isinstance(salt, bytes | bytearray) or len(salt) != 32:
        raise ValueError("the salt is 32 secret random bytes (secrets.token_bytes(32)); keep it to reveal")
