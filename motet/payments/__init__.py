"""Payments: channels paid by EIP-712 vouchers, agents' signed receipts, and wallet delegations.

- `ChannelClient` opens, funds, pays through, redeems and closes channels; the `Ledger` keeps every voucher.
- `Voucher`, `VoucherSigner`, `VoucherVerifier`: the off-chain promise that pays a call, on the fast path.
- `Receipt`, `ReceiptSigner`, `ReceiptVerifier`, `verify_receipt`: what an agent signs for each answer.
- `Delegation`, `TaskOrder`, `DelegationClient`: a wallet's capped grant to a session key, and its tasks.

Example:
    >>> from motet.chain import Chain
    >>> chain = Chain.embedded()
    >>> payer = ChannelClient(chain, chain.accounts[0])
    >>> channel = payer.open(chain.accounts[1].address, deposit=10**15)
    >>> payer.pay(channel.channel_id, 1_000).cumulative_amount
    1000
"""

from motet.payments._calls import CALL_TYPE, Call, CallSigner, recover_call_signer
from motet.payments._channels import Amount, ChannelClient, ChannelState, Redemption, Rejection
from motet.payments._delegation import (
    ANY_CAPABILITY,
    DELEGATION_TYPE,
    TASK_ORDER_TYPE,
    Delegation,
    DelegationClient,
    DelegationState,
    TaskOrder,
    parse_signature,
)
from motet.payments._eip712 import eip712_fields, sign_typed
from motet.payments._ledger import Ledger
from motet.payments._receipts import (
    RECEIPT_TYPE,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    ReceiptVerifier,
    canonical_json,
    content_hash,
    model_ref_hash,
    recover_receipt_signer,
    request_hash,
    verify_receipt,
)
from motet.payments._vouchers import (
    VOUCHER_TYPE,
    ChannelDomain,
    Voucher,
    VoucherSigner,
    VoucherVerifier,
    recover_signer,
)

__all__ = [
    "ANY_CAPABILITY",
    "CALL_TYPE",
    "DELEGATION_TYPE",
    "RECEIPT_TYPE",
    "TASK_ORDER_TYPE",
    "VOUCHER_TYPE",
    "Amount",
    "Call",
    "CallSigner",
    "ChannelClient",
    "ChannelDomain",
    "ChannelState",
    "Delegation",
    "DelegationClient",
    "DelegationState",
    "Ledger",
    "Receipt",
    "ReceiptDomain",
    "ReceiptSigner",
    "ReceiptVerifier",
    "Redemption",
    "Rejection",
    "TaskOrder",
    "Voucher",
    "VoucherSigner",
    "VoucherVerifier",
    "canonical_json",
    "content_hash",
    "eip712_fields",
    "model_ref_hash",
    "parse_signature",
    "recover_call_signer",
    "recover_receipt_signer",
    "recover_signer",
    "request_hash",
    "sign_typed",
    "verify_receipt",
]
