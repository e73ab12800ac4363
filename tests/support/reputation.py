"""The reputation tests' world: an embedded chain, agents in the registry, payers with real channels.

Everything is real: channels are opened, paid and redeemed through `ChannelClient`, receipts are signed by the
agent's payout key with `ReceiptSigner`, feedback goes to the deployed `Reputation` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from motet.chain import Chain
from motet.payments import (
    ChannelClient,
    Delegation,
    DelegationClient,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    content_hash,
    request_hash,
)
from motet.payments._eip712 import sign_typed
from motet.registry import Registry

CAPABILITY = "summarize"
AGENT_PRICE = 1_000
"""The price each agent registers (the receipts of a test name their own prices)."""


@dataclass
class Paid:
    """A channel a payer opened to an agent, and what was redeemed on it."""

    channel_id: int
    payer: ChannelClient
    payee: ChannelClient
    cumulative: int = 0

    def pay(self, amount: int) -> None:
        """Pay `amount` more on the channel (a voucher the payee receives; not yet redeemed)."""
        self.cumulative += amount
        self.payee.receive(self.payer.sign(self.channel_id, self.cumulative))

    def redeem(self) -> None:
        """Redeem what the payee received so far (one transaction)."""
        self.payee.redeem()

    @property
    def redeemed(self) -> int:
        return self.payee.channel(self.channel_id).redeemed


@dataclass
class World:
    """The chain, the contracts and the roles. Agent A is paid at `payout`, agent B at `payout_b`."""

    chain: Chain
    reputation: Contract
    registry: Registry
    owner: LocalAccount
    """Owns both agents."""
    payout: LocalAccount
    payout_b: LocalAccount
    payer: LocalAccount
    payer2: LocalAccount
    stranger: LocalAccount
    session_key: LocalAccount
    agent: int = 0
    agent_b: int = 0
    snapshot: Any = field(default=None, repr=False)

    @property
    def domain(self) -> ReceiptDomain:
        return ReceiptDomain(self.chain.chain_id, self.chain.contract("PaymentChannels").address)

    def open(
        self,
        payer: LocalAccount,
        payee: LocalAccount | None = None,
        *,
        deposit: int = 10**15,
        paid: int = 0,
        redeem: bool = True,
    ) -> Paid:
        """A channel from `payer` to `payee` (agent A's payout by default); `paid` is paid and (by default)
        redeemed."""
        payee = payee or self.payout
        payer_client = ChannelClient(self.chain, payer)
        channel = payer_client.open(payee.address, deposit)
        opened = Paid(channel.channel_id, payer_client, ChannelClient(self.chain, payee))
        if paid:
            opened.pay(paid)
            if redeem:
                opened.redeem()
        return opened

    def open_delegated(
        self,
        *,
        deposit: int = 10**15,
        paid: int = 0,
        agent: int | None = None,
        payee: LocalAccount | None = None,
    ) -> tuple[Paid, bytes]:
        """A channel from `payer` (the delegator) to `agent` (A by default, paid at `payee`), opened and paid by
        `session_key` under a delegation; returns it and the delegation id."""
        agent = self.agent if agent is None else agent
        payee = payee or self.payout
        now = self.chain.timestamp()
        delegation = Delegation(
            delegator=self.payer.address,
            session_key=self.session_key.address,
            cap=deposit,
            valid_after=0,
            expiry=now + 86_400,
            capabilities=(CAPABILITY,),
            nonce=now,
        )
        wallet = DelegationClient(self.chain, self.payer)
        wallet.deposit(deposit)
        signature = sign_typed(bytes(self.payer.key), delegation.digest(wallet.domain))
        delegation_id = wallet.register(delegation, signature)
        session = ChannelClient(self.chain, self.session_key)
        channel = session.open(
            payee.address, deposit, delegation=delegation_id, agent_id=agent, capability=CAPABILITY
        )
        opened = Paid(channel.channel_id, session, ChannelClient(self.chain, payee))
        if paid:
            opened.pay(paid)
            opened.redeem()
        return opened, delegation_id

    def receipt(
        self, channel_id: int, seq: int, price: int, *, signer: LocalAccount | None = None
    ) -> Receipt:
        """The receipt of call `seq` on `channel_id` at `price`, signed by `signer` (agent A's payout)."""
        key = bytes((signer or self.payout).key)
        return ReceiptSigner(key, self.domain).sign(
            request_hash=request_hash(CAPABILITY, {"text": f"call {seq}"}, channel_id=channel_id, seq=seq),
            response_hash=content_hash({"summary": f"answer {seq}"}),
            price=price,
            channel_id=channel_id,
            seq=seq,
            model_ref=content_hash("model"),
        )

    def give(
        self,
        sender: LocalAccount,
        receipt: Receipt,
        score: int,
        *,
        agent: int | None = None,
        tag: bytes = bytes(32),
        uri: str = "",
        signature: bytes | None = None,
    ) -> TxReceipt:
        """Send `give_feedback` straight to the contract (not through the client) as `sender`."""
        call = self.reputation.functions.give_feedback(
            self.agent if agent is None else agent,
            fields(receipt),
            receipt.signature if signature is None else signature,
            score,
            tag,
            uri,
        )
        return self.chain.send(call, sender=sender, action="giving feedback")

    def feedback_events(self, tx: TxReceipt) -> list[dict[str, Any]]:
        return [
            dict(e["args"]) for e in self.reputation.events.NewFeedback().process_receipt(tx, errors=DISCARD)
        ]

    def totals(self, agent: int | None = None) -> tuple[int, int, int]:
        count, weight, weighted = self.reputation.functions.totals(
            self.agent if agent is None else agent
        ).call()
        return int(count), int(weight), int(weighted)


def send_fast(
    chain: Chain, call: Any, sender: LocalAccount, *, value: int = 0, gas: int = 1_000_000
) -> TxReceipt:
    """Send `call` with a fixed gas limit and assert that it succeeded.

    It skips the gas estimate, which py-evm runs as a binary search of a dozen executions: for the many
    transactions of a dispute whose outcome the test reads back afterwards (opening, drawing, commits, reveals), several times faster
    than `Chain.send`.
    """
    w3 = chain.w3
    tx = call.build_transaction(
        {
            "from": sender.address,
            "value": value,
            "gas": gas,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": chain.chain_id,
            "maxFeePerGas": 10**12,
            "maxPriorityFeePerGas": 1,
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1, f"{call.fn_name} failed on chain"
    return receipt


def fields(receipt: Receipt) -> tuple[Any, ...]:
    """A receipt as the contract's `Receipt` struct argument."""
    return (
        receipt.request_hash,
        receipt.response_hash,
        receipt.price,
        receipt.channel_id,
        receipt.seq,
        receipt.model_ref,
    )


def build_world() -> World:
    """Deploy everything on a fresh embedded chain and register agents A and B (owned by account 0)."""
    chain = Chain.embedded(accounts=10)
    a = chain.accounts
    registry = Registry(chain, index_path=None, owner=a[0])
    world = World(
        chain=chain,
        reputation=chain.contract("Reputation"),
        registry=registry,
        owner=a[0],
        payout=a[1],
        payout_b=a[2],
        payer=a[3],
        payer2=a[4],
        stranger=a[5],
        session_key=a[6],
    )
    world.agent = registry.register(
        "https://agents.example/a.json", [CAPABILITY], AGENT_PRICE, payout=a[1].address, stake=2 * 10**15
    )
    world.agent_b = registry.register(
        "https://agents.example/b.json", [CAPABILITY], AGENT_PRICE, payout=a[2].address
    )
    chain.contract("Validation")  # deployed before the tests' snapshots, which would otherwise undo it
    world.snapshot = chain.snapshot()
    return world
