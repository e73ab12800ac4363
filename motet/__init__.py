"""motet: compose AI agents on open-source models, discovered on an EVM chain and paid per call.

The names a user needs; everything else lives in the sub-packages.
"""

from motet.chain import Chain, Wei
from motet.errors import MotetError
from motet.payments import Amount, ChannelClient, ChannelState, Ledger, Voucher, VoucherSigner
from motet.registry import AgentRecord, Registry
from motet.settings import Settings

__all__ = [
    "AgentRecord",
    "Amount",
    "Chain",
    "ChannelClient",
    "ChannelState",
    "Ledger",
    "MotetError",
    "Registry",
    "Settings",
    "Voucher",
    "VoucherSigner",
    "Wei",
]
