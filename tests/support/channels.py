"""The PaymentChannels tests' environment: the deployed contracts, the roles, and helpers.

`tests/payments/conftest.py`'s `deployed` builds the chain once (the channels contract, a second channels contract, and the test tokens
in `tests/contracts/`), mints and approves for the payers, and takes a snapshot. `env` reverts to that
snapshot after each test, so tests are independent and the session pays for the deployments only once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt

from motet.chain import Chain
from motet.errors import TransactionReverted
from motet.payments import ChannelDomain, VoucherSigner
from motet.payments._eip712 import keccak

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
"""The test contracts: tokens that misbehave, a lens, a minimal ERC-1271 wallet."""
NATIVE = "0x" + "00" * 20
CHALLENGE_PERIOD = 3600
MAX_UINT256 = 2**256 - 1
TOKEN_SUPPLY = 10**30
"""Minted to every payer of every test token."""
AGENT_CAPABILITIES = ("summarize", "translate")
"""What the agents `deployed` registers for the payee and payee2 declare."""


@dataclass
class Env:
    """The deployed contracts and the roles of the dev accounts, with helpers that keep tests short."""

    chain: Chain
    channels: Contract
    other_channels: Contract
    token: Contract
    no_return: Contract
    false_return: Contract
    reentrant: Contract
    fee: Contract
    lens: Contract
    registry: Contract
    deployer: LocalAccount
    payer: LocalAccount
    payee: LocalAccount
    relayer: LocalAccount
    payer2: LocalAccount
    payee2: LocalAccount
    stranger: LocalAccount
    snapshot: Any = field(default=None, repr=False)
    agents: dict[str, int] = field(default_factory=dict)
    """Agent ids in `registry` by payout: `deployed` registers the payee and payee2 (see `AGENT_CAPABILITIES`)."""

    native: str = NATIVE
    challenge_period: int = CHALLENGE_PERIOD
    token_supply: int = TOKEN_SUPPLY

    @property
    def tokens(self) -> list[Contract]:
        return [self.token, self.no_return, self.false_return, self.reentrant, self.fee]

    def register_agent(
        self,
        payout: str,
        capabilities: tuple[str, ...] = AGENT_CAPABILITIES,
        owner: LocalAccount | None = None,
    ) -> int:
        """Register an agent paying `payout` in `registry` (owned by the deployer); returns its id."""
        call = self.registry.functions.register(
            "data:,agent", payout, NATIVE, 1, [keccak(c.encode()) for c in capabilities]
        )
        receipt = self.send(call, owner or self.deployer)
        (event,) = self.events(receipt, "AgentRegistered", self.registry)
        return int(event["agent_id"])

    # -- signing ---------------------------------------------------------------------------------------

    def domain(self, contract: Contract | None = None, chain_id: int | None = None) -> ChannelDomain:
        return ChannelDomain(
            self.chain.chain_id if chain_id is None else chain_id, (contract or self.channels).address
        )

    def signer(
        self, account: LocalAccount, contract: Contract | None = None, chain_id: int | None = None
    ) -> VoucherSigner:
        return VoucherSigner(bytes(account.key), self.domain(contract, chain_id))

    def sign(self, account: LocalAccount, channel_id: int, cumulative: int) -> bytes:
        return self.signer(account).sign(channel_id, cumulative).signature

    # -- transactions ----------------------------------------------------------------------------------

    def send(self, call: Any, sender: LocalAccount, value: int = 0) -> TxReceipt:
        return self.chain.send(call, sender=sender, value=value)

    def send_expecting_success(
        self, call: Any, sender: LocalAccount, value: int = 0, gas: int = 2_000_000
    ) -> TxReceipt:
        """Send `call` with a fixed gas limit and assert it succeeded.

        It skips the gas estimate, which py-evm runs as a binary search of a dozen executions: about four
        times faster than `Chain.send` for a transaction the caller knows will pass. A failure shows as a
        failed assertion on the receipt (no revert string; send through `send` or `reverts` for that).
        """
        w3 = self.chain.w3
        tx = call.build_transaction(
            {
                "from": sender.address,
                "value": value,
                "gas": gas,
                "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
                "chainId": self.chain.chain_id,
                "maxFeePerGas": 10**12,
                "maxPriorityFeePerGas": 1,
            }
        )
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, f"{call.fn_name} failed on chain, the model expected it to pass"
        return receipt

    def reverts(self, reason: str, call: Any, sender: LocalAccount, value: int = 0) -> None:
        """Send `call` and assert that it reverts with exactly `reason`."""
        with pytest.raises(TransactionReverted) as info:
            self.chain.send(call, sender=sender, value=value)
        assert info.value.reason == reason

    def open_native(
        self, deposit: int, payer: LocalAccount | None = None, payee: LocalAccount | None = None
    ) -> tuple[int, TxReceipt]:
        payer, payee = payer or self.payer, payee or self.payee
        receipt = self.send(self.channels.functions.open(payee.address, NATIVE, 0), payer, value=deposit)
        (event,) = self.events(receipt, "ChannelOpened")
        return int(event["channel_id"]), receipt

    def open_token(
        self,
        token: Contract,
        amount: int,
        payer: LocalAccount | None = None,
        payee: LocalAccount | None = None,
    ) -> tuple[int, TxReceipt]:
        payer, payee = payer or self.payer, payee or self.payee
        receipt = self.send(self.channels.functions.open(payee.address, token.address, amount), payer)
        (event,) = self.events(receipt, "ChannelOpened")
        return int(event["channel_id"]), receipt

    def redeem(
        self, channel_id: int, cumulative: int, signature: bytes, sender: LocalAccount | None = None
    ) -> TxReceipt:
        call = self.channels.functions.redeem(channel_id, cumulative, signature)
        return self.send(call, sender or self.relayer)

    # -- reading ---------------------------------------------------------------------------------------

    def channel(self, channel_id: int) -> tuple[Any, ...]:
        """`(payer, payee, token, deposit, redeemed, closes_at, settled)`."""
        return tuple(self.channels.functions.channels(channel_id).call(self._caller))

    def owed(self, token: Contract | str = NATIVE) -> int:
        address = token if isinstance(token, str) else token.address
        return int(self.channels.functions.total_owed(address).call(self._caller))

    def balance(self, who: LocalAccount | Contract | str, token: Contract | None = None) -> int:
        address = who if isinstance(who, str) else who.address
        if token is None:
            return int(self.chain.balance(address))
        return int(token.functions.balanceOf(address).call(self._caller))

    @property
    def _caller(self) -> TxParams:
        # Naming the caller saves web3 an eth_accounts round trip per call.
        return {"from": self.relayer.address}

    def events(self, receipt: TxReceipt, name: str, contract: Contract | None = None) -> list[dict[str, Any]]:
        """The arguments of every `name` event that `contract` (the channels by default) logged."""
        contract = contract or self.channels
        logs = contract.events[name]().process_receipt(receipt, errors=DISCARD)
        return [dict(log.args) for log in logs if log.address == contract.address]

    @staticmethod
    def gas_cost(receipt: TxReceipt) -> int:
        """What the sender paid for gas: a sender's native balance delta must add this back."""
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def pending_timestamp(self) -> int:
        """The timestamp the next transaction gets unless time is moved."""
        return int(self.chain.w3.eth.get_block("pending")["timestamp"])

    def block_timestamp(self, receipt: TxReceipt) -> int:
        return int(self.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
