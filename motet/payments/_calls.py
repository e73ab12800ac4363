"""EIP-712 call signatures: who may be served on a channel, and in what order (O6).

Every paid call to an agent carries the signature of its channel's payer (or, for a channel opened under a
delegation, of the delegation's session key) over

    Call(uint256 channelId,uint256 seq,bytes32 requestHash)

in the channels' own domain (`motet-channels`, version 1, the chain, the `PaymentChannels` address): the same
key that signs the channel's vouchers signs its calls. `requestHash` is `request_hash(capability, input,
channelId, seq)`, the hash the agent's receipt names, and `seq` is the channel's next call number (one more
than the last delivered call), so a signature serves exactly one request, once: a stranger who knows a
channel id can neither spend the channel nor read what was delivered on it, and a recorded call cannot be
replayed. The contract never sees a call, so this struct has no on-chain twin; it shares the vouchers' domain
so that a wallet shows one familiar domain, and its own type keeps a call signature from ever being a voucher.

Example:
    >>> from motet.payments import ChannelDomain, request_hash
    >>> domain = ChannelDomain(chain_id=1, contract="0x" + "11" * 20)
    >>> signer = CallSigner("0x" + "01" * 32, domain)
    >>> digest = request_hash("echo", {"text": "hi"}, channel_id=7, seq=1)
    >>> signature = signer.sign(7, 1, digest)
    >>> recover_call_signer(domain, 7, 1, digest, signature) == signer.address
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from motet.errors import InvalidCallSignature
from motet.payments._eip712 import Signer, TypedStruct, recover_address
from motet.payments._fields import Fields
from motet.payments._vouchers import ChannelDomain

CALL_TYPE = "Call(uint256 channelId,uint256 seq,bytes32 requestHash)"
"""The EIP-712 type string of a call signature."""


@dataclass(frozen=True, slots=True)
class Call(TypedStruct):
    """One call on a channel, as its payer signs it: the channel, the call's number, and the request's hash."""

    TYPE: ClassVar[str] = CALL_TYPE
    FIELDS: ClassVar[Fields] = Fields.of("call", InvalidCallSignature)

    channel_id: int
    seq: int
    request_hash: bytes

    def __post_init__(self) -> None:
        self._check_fields()


class CallSigner(Signer):
    """Signs calls on the channels of one domain with the key that signs their vouchers.

    Example:
        >>> domain = ChannelDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> len(CallSigner("0x" + "01" * 32, domain).sign(7, 1, bytes(32)))
        65
    """

    __slots__ = ("domain",)

    def __init__(self, private_key: bytes | str, domain: ChannelDomain) -> None:
        super().__init__(private_key)
        self.domain = domain

    def sign(self, channel_id: int, seq: int, request_hash: bytes) -> bytes:
        """The 65-byte signature `r || s || v` of `Call(channel_id, seq, request_hash)` in this domain."""
        return self.sign_digest(Call(channel_id, seq, request_hash).digest(self.domain))

    def __repr__(self) -> str:
        return f"CallSigner(address={self.address!r}, domain={self.domain!r})"


def recover_call_signer(
    domain: ChannelDomain, channel_id: int, seq: int, request_hash: bytes, signature: bytes
) -> str:
    """The checksummed address that signed the call; raises `InvalidCallSignature` for a malformed signature
    (not 65 bytes, v not 27 or 28, high s) or fields out of range."""
    digest = Call(channel_id, seq, request_hash).digest(domain)
    return recover_address(digest, signature, InvalidCallSignature)
