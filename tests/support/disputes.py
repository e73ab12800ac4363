"""The dispute tests' environment: the registry, channels and Validation contracts on one embedded chain, an
agent whose payout key signs receipts, a challenger, five validators of one model, and helpers.

`build()` deploys everything once (short commit and reveal windows, the published economics otherwise) and
takes a snapshot; a test module's fixture reverts to it after each test.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from motet.chain import Chain
from motet.errors import TransactionReverted
from motet.payments import Receipt, ReceiptDomain, ReceiptSigner
from motet.payments._eip712 import keccak
from motet.settings import DisputeSettings, Settings
from motet.trust import Verdict

MODEL = "ab" * 32
"""The model (GGUF sha256) the agent's receipts claim and the five validators declare."""
OTHER_MODEL = "cd" * 32
"""A model only two validators declare: too few for a draw of three."""
NATIVE = "0x" + "00" * 20
COMMIT_WINDOW = 60
REVEAL_WINDOW = 60
AGENT_STAKE = 10**18
VALIDATOR_STAKES = (4 * 10**15, 3 * 10**15, 2 * 10**15, 10**15, 10**15)
"""The five validators' stakes (they weigh the draw)."""
EVIDENCE_URI = "data:,evidence"
SETTINGS = DisputeSettings(commit_window=COMMIT_WINDOW, reveal_window=REVEAL_WINDOW)


@dataclass
class DisputeEnv:
    """The deployed contracts, the roles, and helpers that keep the tests short."""

    chain: Chain
    registry: Contract
    channels: Contract
    validation: Contract
    deployer: LocalAccount
    owner: LocalAccount
    payout: LocalAccount
    challenger: LocalAccount
    validators: list[LocalAccount]
    stranger: LocalAccount
    agent_id: int
    signer: ReceiptSigner
    snapshot: Any = field(default=None, repr=False)
    _seq: int = 0

    @property
    def settings(self) -> DisputeSettings:
        return self.chain.settings.disputes

    # -- receipts ------------------------------------------------------------------------------------------

    def receipt(self, *, signer: ReceiptSigner | None = None, seq: int | None = None) -> Receipt:
        """A fresh receipt (a new seq each time) signed by the agent's payout, or by `signer`."""
        if seq is None:
            self._seq += 1
            seq = self._seq
        return (signer or self.signer).sign(
            request_hash=keccak(f"request {seq}".encode()),
            response_hash=keccak(f"response {seq}".encode()),
            price=1_000,
            channel_id=7,
            seq=seq,
            model_ref=keccak(b"profile"),
        )

    @staticmethod
    def fields(receipt: Receipt) -> tuple[bytes, bytes, int, int, int, bytes]:
        return (
            receipt.request_hash,
            receipt.response_hash,
            receipt.price,
            receipt.channel_id,
            receipt.seq,
            receipt.model_ref,
        )

    # -- disputes ------------------------------------------------------------------------------------------

    def open_call(
        self,
        receipt: Receipt,
        *,
        signature: bytes | None = None,
        model: str = MODEL,
        agent_id: int | None = None,
    ) -> Any:
        return self.validation.functions.open_dispute(
            self.agent_id if agent_id is None else agent_id,
            self.fields(receipt),
            receipt.signature if signature is None else signature,
            bytes.fromhex(model),
            EVIDENCE_URI,
        )

    def open(
        self, receipt: Receipt | None = None, *, sender: LocalAccount | None = None, model: str = MODEL
    ) -> tuple[int, TxReceipt]:
        """Open a dispute (not drawn yet); returns its id and the transaction receipt."""
        tx = self.send(
            self.open_call(receipt or self.receipt(), model=model),
            sender or self.challenger,
            self.settings.bond,
        )
        (event,) = self.events(tx, "DisputeOpened")
        return int(event["dispute_id"]), tx

    def draw(self, dispute_id: int) -> TxReceipt:
        return self.send(self.validation.functions.draw(dispute_id, EVIDENCE_URI), self.stranger)

    def open_and_draw(
        self, receipt: Receipt | None = None, *, model: str = MODEL
    ) -> tuple[int, list[LocalAccount]]:
        """Open and draw a dispute; returns its id and the drawn validators' accounts, in draw order."""
        dispute_id, _ = self.open(receipt, model=model)
        self.draw(dispute_id)
        return dispute_id, [self.account(v) for v in self.validation.functions.drawn(dispute_id).call()]

    def commitment(self, dispute_id: int, verdict: int, salt: bytes, validator: str) -> bytes:
        return keccak(
            abi_encode(["uint256", "uint8", "bytes32", "address"], [dispute_id, verdict, salt, validator])
        )

    def commit(self, dispute_id: int, validator: LocalAccount, verdict: int) -> bytes:
        """Commit `verdict` for `validator`; returns the salt."""
        salt = secrets.token_bytes(32)
        hidden = self.commitment(dispute_id, verdict, salt, validator.address)
        self.send(self.validation.functions.commit(dispute_id, hidden), validator)
        return salt

    def reveal(self, dispute_id: int, validator: LocalAccount, verdict: int, salt: bytes) -> TxReceipt:
        return self.send(self.validation.functions.reveal(dispute_id, verdict, salt), validator)

    def vote(self, dispute_id: int, drawn: list[LocalAccount], verdicts: list[Verdict | None]) -> None:
        """Each drawn validator commits its verdict, then reveals it (None: commits CHEAT, never reveals)."""
        salts = [
            self.commit(dispute_id, v, int(verdict or Verdict.CHEAT))
            for v, verdict in zip(drawn, verdicts, strict=True)
        ]
        for validator, verdict, salt in zip(drawn, verdicts, salts, strict=True):
            if verdict is not None:
                self.reveal(dispute_id, validator, int(verdict), salt)

    def resolve(self, dispute_id: int) -> TxReceipt:
        return self.send(self.validation.functions.resolve(dispute_id), self.stranger)

    def send(self, call: Any, sender: LocalAccount, value: int = 0) -> TxReceipt:
        """Send `call` with a fixed gas limit and assert it succeeded: it skips py-evm's gas estimate (a binary
        search of a dozen executions), several times faster than `Chain.send` for a call that must pass. Send
        through `reverts` to see a revert string."""
        w3 = self.chain.w3
        tx = call.build_transaction(
            {
                "from": sender.address,
                "value": value,
                "gas": 3_000_000,
                "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
                "chainId": self.chain.chain_id,
                "maxFeePerGas": 10**12,
                "maxPriorityFeePerGas": 1,
            }
        )
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, f"{call.fn_name} failed on chain; the test expected it to pass"
        return receipt

    # -- reading -------------------------------------------------------------------------------------------

    def events(self, receipt: TxReceipt, name: str, contract: Contract | None = None) -> list[Any]:
        found = (contract or self.validation).events[name]().process_receipt(receipt, errors=DISCARD)
        return [event["args"] for event in found]

    def account(self, address: str) -> LocalAccount:
        for account in self.chain.accounts:
            if account.address == Web3.to_checksum_address(address):
                return account
        raise LookupError(address)

    def stake(self) -> int:
        return int(self.registry.functions.agents(self.agent_id).call()[3])

    def validator_stake(self, validator: LocalAccount) -> int:
        return int(self.validation.functions.validators(validator.address).call()[0])

    def credited(self, who: LocalAccount) -> int:
        return int(self.validation.functions.balances(who.address).call())

    def reverts(self, reason: str, call: Any, sender: LocalAccount, value: int = 0) -> None:
        """Send `call` and assert that it reverts with exactly `reason`."""
        with pytest.raises(TransactionReverted) as caught:
            self.chain.send(call, sender=sender, value=value)
        assert caught.value.reason == reason

    def check_books(self) -> None:
        """The contract holds exactly the credited balances, the validator stakes, the bonds of open disputes
        and the sink."""
        fns = self.validation.functions
        owed = sum(int(fns.balances(a.address).call()) for a in self.chain.accounts)
        staked = sum(int(fns.validators(a.address).call()[0]) for a in self.chain.accounts)
        bonds = 0
        for dispute_id in range(1, int(fns.dispute_count().call()) + 1):
            dispute = fns.disputes(dispute_id).call()
            if dispute[8] in (1, 2):
                bonds += int(dispute[6])
        assert self.chain.balance(self.validation.address) == owed + staked + bonds + int(fns.sunk().call())


def build(tmp_home: Any) -> DisputeEnv:
    """Deploy the contracts, register the agent (stake `AGENT_STAKE`) and five validators of `MODEL` (two of
    them also of `OTHER_MODEL`), and take the snapshot tests return to."""
    chain = Chain.embedded(accounts=14, settings=Settings(home=tmp_home, disputes=SETTINGS))
    accounts = chain.accounts
    deployer, owner, payout, challenger, stranger = (
        accounts[0],
        accounts[1],
        accounts[2],
        accounts[3],
        accounts[4],
    )
    validators = accounts[5:10]
    registry = chain.contract("AgentRegistry")
    channels = chain.contract("PaymentChannels")
    validation = chain.contract("Validation")
    tx = chain.send(
        registry.functions.register(
            "data:,agent", payout.address, NATIVE, 1_000, [keccak(b"text.summarize")]
        ),
        sender=owner,
        value=AGENT_STAKE,
    )
    (registered,) = registry.events.AgentRegistered().process_receipt(tx, errors=DISCARD)
    signer = ReceiptSigner(payout.key, ReceiptDomain(chain.chain_id, channels.address))
    env = DisputeEnv(
        chain=chain,
        registry=registry,
        channels=channels,
        validation=validation,
        deployer=deployer,
        owner=owner,
        payout=payout,
        challenger=challenger,
        validators=list(validators),
        stranger=stranger,
        agent_id=int(registered["args"]["agent_id"]),
        signer=signer,
    )
    for i, (validator, stake) in enumerate(zip(validators, VALIDATOR_STAKES, strict=True)):
        models = [bytes.fromhex(MODEL)] + ([bytes.fromhex(OTHER_MODEL)] if i < 2 else [])
        chain.send(validation.functions.register_validator(models), sender=validator, value=stake)
    env.snapshot = chain.snapshot()
    return env
