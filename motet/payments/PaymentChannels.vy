# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title motet payment channels
@custom:contract-name PaymentChannels
@license MIT
@notice Unidirectional payment channels in the native coin or any ERC-20.
        A payer opens a channel to a payee with a deposit, then pays each
        delivered call off chain with an EIP-712 voucher that carries the
        cumulative amount owed. The payee redeems the latest voucher at any
        time (alone or in a batch) and receives the increase over what was
        already redeemed, never more than the deposit. The payer leaves only
        through close -> challenge period -> settle, and the payee can still
        redeem during the challenge period.

        Invariants (see INVARIANTS.md): per channel, redeemed + refunded is
        at most the deposit; for each asset the contract holds exactly what
        it still owes (`total_owed`); a voucher pays only above the redeemed
        amount; a settled channel accepts nothing more. State changes happen
        before every transfer and every state-changing entry point holds the
        reentrancy lock.
"""

from ethereum.ercs import IERC20

# @dev Audited building blocks from snekmate: the EIP-712 domain
# (with the cached separator and EIP-5267 `eip712Domain`) and ECDSA
# recovery with the low-s check.
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator
initializes: eip712_domain_separator

exports: eip712_domain_separator.eip712Domain


# @dev The EIP-712 voucher type. The Python signer builds the same
# string (motet.payments.vouchers.VOUCHER_TYPE) and a test compares them.
VOUCHER_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Voucher(uint256 channelId,uint256 cumulativeAmount)"
)

# @dev Largest batch accepted by `redeem_many`.
MAX_BATCH: constant(uint256) = 256

# @dev The native coin is recorded as the zero address in `Channel.token`.
NATIVE: constant(address) = empty(address)


struct Channel:
    payer: address
    payee: address
    token: address
    deposit: uint256
    redeemed: uint256
    closes_at: uint256
    settled: bool


struct SignedVoucher:
    channel_id: uint256
    cumulative_amount: uint256
    signature: Bytes[65]


event ChannelOpened:
    channel_id: indexed(uint256)
    payer: indexed(address)
    payee: indexed(address)
    token: address
    deposit: uint256


event ChannelToppedUp:
    channel_id: indexed(uint256)
    amount: uint256
    deposit: uint256


event VoucherRedeemed:
    channel_id: indexed(uint256)
    payee: indexed(address)
    cumulative_amount: uint256
    paid: uint256
    redeemed: uint256


event ChannelClosing:
    channel_id: indexed(uint256)
    closes_at: uint256


event ChannelSettled:
    channel_id: indexed(uint256)
    redeemed: uint256
    refunded: uint256


# @dev Seconds between `close` and the earliest `settle`.
CHALLENGE_PERIOD: public(immutable(uint256))

# @dev A channel lives in four packed slots (gas: one paid call must cost
# well under 200 gas at 1,000 calls per channel). `channels(id)` unpacks.
#   _payer[id]    payer address
#   _payee[id]    payee (bits 0-159) | closes_at (160-223) | settled (224)
#   _token[id]    token address (zero for the native coin; never written then)
#   _amounts[id]  deposit (bits 0-127) | redeemed (128-255)
_payer: HashMap[uint256, address]
_payee: HashMap[uint256, uint256]
_token: HashMap[uint256, address]
_amounts: HashMap[uint256, uint256]
channel_count: public(uint256)

_MASK_128: constant(uint256) = 2**128 - 1
_MASK_160: constant(uint256) = 2**160 - 1
_MASK_64: constant(uint256) = 2**64 - 1

# @dev What the contract still owes, per asset (deposits not yet paid
# out or refunded). Equal to the contract's balance of that asset.
total_owed: public(HashMap[address, uint256])


@deploy
def __init__(challenge_period: uint256):
    """
    @dev Sets the EIP-712 domain ("motet-channels", "1") and the
         challenge period.
    @param challenge_period Seconds the payee has to redeem after the
           payer starts to close a channel. Must be positive and at
           most 2**32 - 1 (about 136 years).
    """
    assert challenge_period > 0, "channels: challenge period is zero"
    # `closes_at` is packed into 64 bits of `_payee`: an unbounded period
    # would carry into the settled bit (locking the deposit) or wrap to
    # an early deadline (cutting the payee's window short).
    assert challenge_period <= convert(max_value(uint32), uint256), "channels: challenge period too long"
    CHALLENGE_PERIOD = challenge_period
    eip712_domain_separator.__init__("motet-channels", "1")


@external
@payable
@nonreentrant
def open(payee: address, token: address, amount: uint256) -> uint256:
    """
    @dev Opens a channel from `msg.sender` to `payee` with a deposit.
    @param payee The address the vouchers pay.
    @param token The ERC-20 of the deposit, or the zero address for the
           native coin (then the deposit is `msg.value`).
    @param amount The ERC-20 deposit; ignored for the native coin.
    @return uint256 The new channel id.
    """
    assert payee != empty(address), "channels: payee is the zero address"
    assert payee != msg.sender, "channels: payer and payee are the same"
    deposit: uint256 = self._pull(token, msg.sender, amount, msg.value)

    channel_id: uint256 = self.channel_count + 1
    self.channel_count = channel_id
    self._payer[channel_id] = msg.sender
    self._payee[channel_id] = convert(payee, uint256)
    if token != NATIVE:
        self._token[channel_id] = token
    self._amounts[channel_id] = deposit
    log ChannelOpened(channel_id=channel_id, payer=msg.sender, payee=payee, token=token, deposit=deposit)
    return channel_id


@external
@payable
@nonreentrant
def topup(channel_id: uint256, amount: uint256):
    """
    @dev Adds to the deposit of an open channel. Only the payer can.
    @param channel_id The channel.
    @param amount The ERC-20 amount; ignored for the native coin
           (then `msg.value` is added).
    """
    channel: Channel = self._existing(channel_id)
    assert msg.sender == channel.payer, "channels: caller is not the payer"
    assert channel.closes_at == 0, "channels: channel is closing"
    added: uint256 = self._pull(channel.token, msg.sender, amount, msg.value)
    assert channel.deposit + added <= _MASK_128, "channels: deposit too large"
    self._amounts[channel_id] = self._pack_amounts(channel.deposit + added, channel.redeemed)
    log ChannelToppedUp(channel_id=channel_id, amount=added, deposit=channel.deposit + added)


@external
@nonreentrant
def redeem(channel_id: uint256, cumulative_amount: uint256, signature: Bytes[65]) -> uint256:
    """
    @dev Pays the channel's payee what the voucher adds over the redeemed
         amount, capped by the remaining deposit. Anyone may submit it;
         the money always goes to the payee.
    @param channel_id The channel named in the voucher.
    @param cumulative_amount The cumulative amount in the voucher.
    @param signature The payer's 65-byte signature (r, s, v).
    @return uint256 The amount paid.
    """
    return self._redeem(channel_id, cumulative_amount, signature)


@external
@nonreentrant
def redeem_many(vouchers: DynArray[SignedVoucher, MAX_BATCH]) -> uint256:
    """
    @dev Redeems many vouchers, on any channels, in one transaction.
         All or nothing: one invalid voucher reverts the batch.
    @param vouchers The signed vouchers.
    @return uint256 The total paid.
    """
    assert len(vouchers) > 0, "channels: empty batch"
    total: uint256 = 0
    for voucher: SignedVoucher in vouchers:
        total += self._redeem(voucher.channel_id, voucher.cumulative_amount, voucher.signature)
    return total


@external
@nonreentrant
def close(channel_id: uint256):
    """
    @dev Starts the challenge period. Only the payer can.
    @param channel_id The channel.
    """
    channel: Channel = self._existing(channel_id)
    assert msg.sender == channel.payer, "channels: caller is not the payer"
    assert channel.closes_at == 0, "channels: channel is closing"
    closes_at: uint256 = block.timestamp + CHALLENGE_PERIOD
    self._payee[channel_id] = convert(channel.payee, uint256) | (closes_at << 160)
    log ChannelClosing(channel_id=channel_id, closes_at=closes_at)


@external
@nonreentrant
def settle(channel_id: uint256) -> uint256:
    """
    @dev Refunds the unredeemed deposit to the payer once the challenge
         period is over. Anyone may call it; the refund goes to the payer.
    @param channel_id The channel.
    @return uint256 The amount refunded.
    """
    channel: Channel = self._existing(channel_id)
    assert channel.closes_at != 0, "channels: channel is not closing"
    assert block.timestamp >= channel.closes_at, "channels: challenge period not over"
    refund: uint256 = channel.deposit - channel.redeemed
    self._payee[channel_id] = self._payee[channel_id] | (1 << 224)
    self.total_owed[channel.token] -= refund
    log ChannelSettled(channel_id=channel_id, redeemed=channel.redeemed, refunded=refund)
    self._push(channel.token, channel.payer, refund)
    return refund


@external
@view
def channels(channel_id: uint256) -> Channel:
    """
    @dev A channel's state; an unknown id gives an all-zero channel.
    @param channel_id The channel.
    @return Channel payer, payee, token, deposit, redeemed, closes_at
            (0 while open) and settled.
    """
    return self._load(channel_id)


@external
@view
def voucher_digest(channel_id: uint256, cumulative_amount: uint256) -> bytes32:
    """
    @dev The EIP-712 digest a payer signs for a voucher.
    @param channel_id The channel.
    @param cumulative_amount The cumulative amount.
    @return bytes32 The digest.
    """
    return self._voucher_digest(channel_id, cumulative_amount)


@external
@view
def domain_separator() -> bytes32:
    """
    @dev The EIP-712 domain separator of this contract on this chain.
    @return bytes32 The separator.
    """
    return eip712_domain_separator._domain_separator_v4()


@internal
@view
def _voucher_digest(channel_id: uint256, cumulative_amount: uint256) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(VOUCHER_TYPEHASH, channel_id, cumulative_amount))
    )


@internal
@view
def _load(channel_id: uint256) -> Channel:
    payee_word: uint256 = self._payee[channel_id]
    amounts: uint256 = self._amounts[channel_id]
    return Channel(
        payer=self._payer[channel_id],
        payee=convert(payee_word & _MASK_160, address),
        token=self._token[channel_id],
        deposit=amounts & _MASK_128,
        redeemed=amounts >> 128,
        closes_at=(payee_word >> 160) & _MASK_64,
        settled=(payee_word >> 224) & 1 == 1,
    )


@internal
@pure
def _pack_amounts(deposit: uint256, redeemed: uint256) -> uint256:
    return deposit | (redeemed << 128)


@internal
@view
def _existing(channel_id: uint256) -> Channel:
    channel: Channel = self._load(channel_id)
    assert channel.payer != empty(address), "channels: unknown channel"
    assert not channel.settled, "channels: channel is settled"
    return channel


@internal
def _redeem(channel_id: uint256, cumulative_amount: uint256, signature: Bytes[65]) -> uint256:
    channel: Channel = self._existing(channel_id)
    if channel.closes_at != 0:
        assert block.timestamp < channel.closes_at, "channels: challenge period over"
    assert cumulative_amount > channel.redeemed, "channels: voucher not above redeemed"
    assert channel.redeemed < channel.deposit, "channels: deposit exhausted"

    assert len(signature) == 65, "channels: signature is not 65 bytes"
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert v == 27 or v == 28, "channels: signature v is not 27 or 28"
    # snekmate rejects high-s values and a zero recovered address.
    signer: address = ecdsa._recover_sig(self._voucher_digest(channel_id, cumulative_amount), signature)
    assert signer == channel.payer, "channels: voucher not signed by payer"

    pay: uint256 = min(cumulative_amount, channel.deposit) - channel.redeemed
    self._amounts[channel_id] = self._pack_amounts(channel.deposit, channel.redeemed + pay)
    self.total_owed[channel.token] -= pay
    log VoucherRedeemed(
        channel_id=channel_id,
        payee=channel.payee,
        cumulative_amount=cumulative_amount,
        paid=pay,
        redeemed=channel.redeemed + pay,
    )
    self._push(channel.token, channel.payee, pay)
    return pay


@internal
def _pull(token: address, payer: address, amount: uint256, native_value: uint256) -> uint256:
    """
    @dev Takes a deposit and returns what actually arrived: `msg.value`
         (passed in as `native_value`) for the native coin, the balance increase for an ERC-20 (so a
         fee-on-transfer token cannot make the books exceed the balance).
    """
    received: uint256 = 0
    if token == NATIVE:
        received = native_value
    else:
        assert native_value == 0, "channels: native value sent with a token deposit"
        before: uint256 = staticcall IERC20(token).balanceOf(self)
        assert extcall IERC20(token).transferFrom(payer, self, amount, default_return_value=True), "channels: token transfer failed"
        received = staticcall IERC20(token).balanceOf(self) - before
    assert received > 0, "channels: deposit is zero"
    assert received <= _MASK_128, "channels: deposit too large"
    self.total_owed[token] += received
    return received


@internal
def _push(token: address, receiver: address, amount: uint256):
    if amount == 0:
        return
    if token == NATIVE:
        # raw_call forwards all gas so contract wallets can receive.
        raw_call(receiver, b"", value=amount)
    else:
        assert extcall IERC20(token).transfer(receiver, amount, default_return_value=True), "channels: token transfer failed"
