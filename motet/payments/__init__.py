"""Payment channels: EIP-712 vouchers, the channel client, and the ledger of vouchers."""

from motet.payments.channels import Amount, ChannelClient, ChannelState, Redemption
from motet.payments.ledger import Ledger
from motet.payments.vouchers import (
    VOUCHER_TYPE,
    ChannelDomain,
    Voucher,
    VoucherSigner,
    VoucherVerifier,
    recover_signer,
)

__all__ = [
    "VOUCHER_TYPE",
    "Amount",
    "ChannelClient",
    "ChannelDomain",
    "ChannelState",
    "Ledger",
    "Redemption",
    "Voucher",
    "VoucherSigner",
    "VoucherVerifier",
    "recover_signer",
]
