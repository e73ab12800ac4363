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

        Invariants (docs/protocol.md; a stateful test checks them after
        every step): per channel, redeemed + refunded is at most the
        deposit; for each asset the contract holds exactly what it still
        owes (`total_owed`); a voucher pays only above the redeemed amount;
        a settled channel accepts nothing more. State changes happen before
        every transfer and every state-changing entry point holds the
        reentrancy lock.

        Batches (`redeem_many`) never fail for one voucher: an invalid one
        is skipped with `VoucherRejected`. A payout that cannot be pushed
        (a receiver that rejects the native coin or burns the gas, a token
        that refuses the transfer) is credited to the receiver's balance
        here with `PayoutCredited`; `withdraw_to` sends a balance to another
        address, so a contract wallet that rejects the coin recovers it.

        Delegation (docs/protocol.md): a wallet keeps a balance here and
        signs an EIP-712 `Delegation` to a session key: asset, cap, a
        validity window, allowed capabilities and a nonce. Anyone registers
        the signed delegation (ECDSA for an account, ERC-1271 for a contract
        wallet). The session key then opens channels funded from the
        wallet's balance, only to agents registered in `REGISTRY` with a
        delegated capability (never to itself or the delegator), and signs
        their vouchers. The cap is consumed when money is placed in a
        delegated channel (open and top-up), summed over all its channels;
        revocation and expiry stop new channels and top-ups, never the
        redemption of money already placed.
"""

# @dev We import the `IERC20` interface, which is a built-in
# interface of the Vyper compiler, to move ERC-20 deposits.
from ethereum.ercs import IERC20


# @dev The agent registry's view that `open_delegated` asks: the payout
# of an active agent that declares the capability, else the zero address.
interface AgentRegistry:
    def payee_for(agent_id: uint256, capability: bytes32) -> address: view


# @dev We import the `ecdsa` module: ECDSA recovery with the
# low-s check. It is stateless, so it needs no `uses`.
from snekmate.utils import ecdsa


# @dev We import and initialise the `eip712_domain_separator`
# module: the EIP-712 domain, with the cached separator.
from snekmate.utils import eip712_domain_separator
initializes: eip712_domain_separator


# @dev We export the EIP-5267 `eip712Domain` getter.
exports: eip712_domain_separator.eip712Domain


# @dev The EIP-712 voucher type. The Python signer builds the same
# string (motet.payments.VOUCHER_TYPE) and a test compares them.
VOUCHER_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Voucher(uint256 channelId,uint256 cumulativeAmount)"
)


# @dev The EIP-712 delegation type. `capabilities` is a `string[]`; the
# contract takes the keccak256 of each name and computes the array's
# EIP-712 hash itself, so the signature covers the list it stores.
DELEGATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Delegation(address delegator,address sessionKey,address asset,uint256 cap,uint256 validAfter,uint256 expiry,string[] capabilities,uint256 nonce)"
)


# @dev `isValidSignature(bytes32,bytes)` answers this for a good signature.
ERC1271_MAGIC: constant(bytes4) = 0x1626ba7e


# @dev The longest delegation signature accepted (contract wallets may
# pack several signatures).
MAX_SIGNATURE: constant(uint256) = 1024


# @dev Bit 225 of `_payee[id]` marks a channel opened under a delegation.
_DELEGATED_BIT: constant(uint256) = 1 << 225


# @dev Largest batch accepted by `redeem_many`.
MAX_BATCH: constant(uint256) = 256


# @dev Most capabilities one delegation may list.
MAX_DELEGATED_CAPABILITIES: constant(uint256) = 32


# @dev keccak256("*"): a delegation listing it allows any capability.
ANY_CAPABILITY: constant(bytes32) = keccak256("*")


# @dev Gas given to each payout push in `redeem`, `redeem_many` and
# `settle`: enough for a contract wallet or a token transfer, bounded so
# that one receiver cannot burn a batch's gas. A push that fails is
# credited to the receiver's balance instead.
PUSH_GAS: constant(uint256) = 100_000


# @dev Why `redeem_many` skipped a voucher (`VoucherRejected.reason`).
REJECT_UNKNOWN_CHANNEL: constant(uint256) = 1
REJECT_SETTLED: constant(uint256) = 2
REJECT_PERIOD_OVER: constant(uint256) = 3
REJECT_NOT_ABOVE_REDEEMED: constant(uint256) = 4
REJECT_DEPOSIT_EXHAUSTED: constant(uint256) = 5
REJECT_SIGNATURE_LENGTH: constant(uint256) = 6
REJECT_SIGNATURE_V: constant(uint256) = 7
REJECT_SIGNATURE_S: constant(uint256) = 8
REJECT_SIGNATURE_INVALID: constant(uint256) = 9
REJECT_NOT_PAYER: constant(uint256) = 10
REJECT_NOT_SESSION_KEY: constant(uint256) = 11


# @dev Half the secp256k1 order: a larger `s` is the malleable twin.
_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168


# @dev The native coin is recorded as the zero address in `Channel.token`.
NATIVE: constant(address) = empty(address)


# @dev Masks that unpack the channel slots (see `_payee` and `_amounts`).
_MASK_128: constant(uint256) = 2**128 - 1
_MASK_160: constant(uint256) = 2**160 - 1
_MASK_64: constant(uint256) = 2**64 - 1


# @dev A channel, as `channels(id)` returns it (unpacked from storage).
# `closes_at` is 0 while the channel is open.
struct Channel:
    payer: address
    payee: address
    token: address
    deposit: uint256
    redeemed: uint256
    closes_at: uint256
    settled: bool


# @dev A delegation as its delegator signs it, `capabilities` given as
# the keccak256 of each name (the contract computes the `string[]` hash).
struct Delegation:
    delegator: address
    session_key: address
    asset: address
    cap: uint256
    valid_after: uint256
    expiry: uint256
    capabilities: DynArray[bytes32, MAX_DELEGATED_CAPABILITIES]
    nonce: uint256


# @dev A registered delegation: its terms and what was placed in its
# channels so far (deposits and top-ups), over all its channels.
struct DelegationState:
    delegator: address
    session_key: address
    asset: address
    cap: uint256
    valid_after: uint256
    expiry: uint256
    spent: uint256


# @dev One voucher of a `redeem_many` batch.
struct SignedVoucher:
    channel_id: uint256
    cumulative_amount: uint256
    signature: Bytes[65]


# @dev Seconds between `close` and the earliest `settle`.
CHALLENGE_PERIOD: public(immutable(uint256))


# @dev The agent registry delegated channels must pay into.
REGISTRY: public(immutable(address))


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


# @dev Returns how many channels were ever opened; ids run from 1.
channel_count: public(uint256)


# @dev What the contract still owes, per asset (deposits not yet paid
# out or refunded). Equal to the contract's balance of that asset.
total_owed: public(HashMap[address, uint256])


# @dev Deposited and not yet committed to a channel: owner -> asset -> amount.
# Delegated channels are funded from here.
balances: public(HashMap[address, HashMap[address, uint256]])


# @dev Registered delegations by id (their EIP-712 digest).
delegations: public(HashMap[bytes32, DelegationState])


# @dev delegator -> delegation id -> revoked. A delegator can revoke an id
# before it is registered, and only under their own address.
revoked: public(HashMap[address, HashMap[bytes32, bool]])


# @dev The delegation a channel was opened under (only for flagged channels).
channel_delegation: public(HashMap[uint256, bytes32])


# @dev The capabilities (keccak256 of each name) a registered delegation allows.
_delegation_capabilities: HashMap[bytes32, DynArray[bytes32, MAX_DELEGATED_CAPABILITIES]]


# @dev Emitted when a channel opens, plain or delegated (then `payer`
# is the delegator).
event ChannelOpened:
    channel_id: indexed(uint256)
    payer: indexed(address)
    payee: indexed(address)
    token: address
    deposit: uint256


# @dev Emitted when a channel's deposit grows by `amount` to `deposit`.
event ChannelToppedUp:
    channel_id: indexed(uint256)
    amount: uint256
    deposit: uint256


# @dev Emitted for each voucher that pays: `paid` is the increase,
# `redeemed` the channel's new total.
event VoucherRedeemed:
    channel_id: indexed(uint256)
    payee: indexed(address)
    cumulative_amount: uint256
    paid: uint256
    redeemed: uint256


# @dev Emitted for each voucher `redeem_many` skips; `reason` is one of
# the `REJECT_*` codes.
event VoucherRejected:
    channel_id: indexed(uint256)
    cumulative_amount: uint256
    reason: uint256


# @dev Emitted when a payout or refund could not be pushed and was
# credited to the receiver's balance instead (see `withdraw_to`).
event PayoutCredited:
    receiver: indexed(address)
    token: indexed(address)
    amount: uint256
    balance: uint256


# @dev Emitted when an owner's balance grows (`deposit`, `deposit_for`).
event Deposited:
    owner: indexed(address)
    token: indexed(address)
    amount: uint256
    balance: uint256


# @dev Emitted when an owner takes part of its balance back.
event Withdrawn:
    owner: indexed(address)
    token: indexed(address)
    amount: uint256
    balance: uint256


# @dev Emitted when a signed delegation is registered.
event DelegationRegistered:
    delegation_id: indexed(bytes32)
    delegator: indexed(address)
    session_key: indexed(address)
    asset: address
    cap: uint256
    valid_after: uint256
    expiry: uint256


# @dev Emitted when a delegator revokes a delegation id.
event DelegationRevoked:
    delegation_id: indexed(bytes32)
    delegator: indexed(address)


# @dev Emitted, after `ChannelOpened`, for a channel opened under a delegation.
event ChannelDelegated:
    channel_id: indexed(uint256)
    delegation_id: indexed(bytes32)


# @dev Emitted when money is placed in a delegated channel (open or
# top-up): `spent` is the delegation's new total over all its channels.
event DelegationSpent:
    delegation_id: indexed(bytes32)
    channel_id: indexed(uint256)
    paid: uint256
    spent: uint256


# @dev Emitted when `close` starts the challenge period.
event ChannelClosing:
    channel_id: indexed(uint256)
    closes_at: uint256


# @dev Emitted when `settle` refunds the payer and ends the channel.
event ChannelSettled:
    channel_id: indexed(uint256)
    redeemed: uint256
    refunded: uint256


@deploy
def __init__(challenge_period: uint256, registry: address):
    """
    @dev Sets the EIP-712 domain ("motet-channels", "1"), the challenge
         period and the agent registry.
    @param challenge_period Seconds the payee has to redeem after the
           payer starts to close a channel. Must be positive and at
           most 2**32 - 1 (about 136 years).
    @param registry The AgentRegistry that delegated channels pay into.
    """
    assert registry.is_contract, "channels: registry is not a contract"
    REGISTRY = registry
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
    @dev Adds to the deposit of an open channel: the payer, from what it
         sends, or the session key of the channel's delegation, from the
         delegator's balance.
    @param channel_id The channel.
    @param amount The ERC-20 amount; ignored for the native coin
           (then `msg.value` is added) unless drawn from a balance.
    """
    channel: Channel = self._existing(channel_id)
    added: uint256 = 0
    if msg.sender == channel.payer:
        assert channel.closes_at == 0, "channels: channel is closing"
        added = self._pull(channel.token, msg.sender, amount, msg.value)
    else:
        # The session key tops up from the delegator's balance, within the cap.
        assert self._payee[channel_id] & _DELEGATED_BIT != 0, "channels: caller is not the payer"
        delegation_id: bytes32 = self.channel_delegation[channel_id]
        state: DelegationState = self._check_session_key(delegation_id, msg.sender)
        assert channel.closes_at == 0, "channels: channel is closing"
        assert msg.value == 0, "channels: native value sent with a delegated top-up"
        self._place(delegation_id, state, channel_id, amount)
        self._draw(channel.payer, channel.token, amount)
        added = amount
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
    return self._redeem(channel_id, cumulative_amount, signature, True)


@external
@nonreentrant
def redeem_many(vouchers: DynArray[SignedVoucher, MAX_BATCH]) -> uint256:
    """
    @dev Redeems many vouchers, on any channels, in one transaction.
         A voucher that cannot pay (unknown or settled channel, past the
         challenge period, not above the redeemed amount, exhausted
         deposit, bad signature) is skipped with `VoucherRejected`; the
         others pay.
    @param vouchers The signed vouchers.
    @return uint256 The total paid.
    """
    assert len(vouchers) > 0, "channels: empty batch"
    total: uint256 = 0
    for voucher: SignedVoucher in vouchers:
        total += self._redeem(voucher.channel_id, voucher.cumulative_amount, voucher.signature, False)
    return total


@external
@nonreentrant
def close(channel_id: uint256):
    """
    @dev Starts the challenge period. The payer can, and so can the
         session key of a delegated channel's (registered) delegation.
    @param channel_id The channel.
    """
    channel: Channel = self._existing(channel_id)
    if msg.sender != channel.payer:
        assert self._payee[channel_id] & _DELEGATED_BIT != 0, "channels: caller is not the payer"
        session_key: address = self.delegations[self.channel_delegation[channel_id]].session_key
        assert msg.sender == session_key, "channels: caller is not the payer or its session key"
    assert channel.closes_at == 0, "channels: channel is closing"
    closes_at: uint256 = block.timestamp + CHALLENGE_PERIOD
    self._payee[channel_id] = self._payee[channel_id] | (closes_at << 160)
    log ChannelClosing(channel_id=channel_id, closes_at=closes_at)


@external
@nonreentrant
def settle(channel_id: uint256) -> uint256:
    """
    @dev Refunds the unredeemed deposit to the payer once the challenge
         period is over. Anyone may call it; the refund goes to the payer
         (to its balance here when the channel was delegated, or when the
         push fails).
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
    if self._payee[channel_id] & _DELEGATED_BIT != 0:
        # Drawn from the delegator's balance: it goes back there.
        self._credit(channel.payer, channel.token, refund)
    else:
        self._pay_out(channel.token, channel.payer, refund)
    return refund


@external
@payable
@nonreentrant
def deposit(token: address, amount: uint256) -> uint256:
    """
    @dev Adds to the caller's balance, from which delegated channels are
         funded.
    @param token The ERC-20, or the zero address for the native coin
           (then the amount is `msg.value`).
    @param amount The ERC-20 amount; ignored for the native coin.
    @return uint256 The caller's new balance of that asset.
    """
    return self._deposit(msg.sender, token, amount, msg.value)


@external
@payable
@nonreentrant
def deposit_for(owner: address, token: address, amount: uint256) -> uint256:
    """
    @dev Adds to `owner`'s balance, paid by the caller (a treasury funding
         a team's wallets, a faucet on a dev chain). Only the owner can
         withdraw it or delegate it.
    @param owner Whose balance grows.
    @param token The ERC-20, or the zero address for the native coin.
    @param amount The ERC-20 amount; ignored for the native coin.
    @return uint256 The owner's new balance of that asset.
    """
    assert owner != empty(address), "channels: owner is the zero address"
    return self._deposit(owner, token, amount, msg.value)


@external
@nonreentrant
def withdraw(token: address, amount: uint256) -> uint256:
    """
    @dev Takes back part of the caller's balance (not what is in channels).
    @param token The asset, zero for the native coin.
    @param amount How much.
    @return uint256 The caller's new balance of that asset.
    """
    return self._withdraw(token, amount, msg.sender)


@external
@nonreentrant
def withdraw_to(token: address, amount: uint256, to: address) -> uint256:
    """
    @dev Sends part of the caller's balance to another address: how a
         contract wallet that rejects the native coin recovers a payout
         or refund that was credited to it.
    @param token The asset, zero for the native coin.
    @param amount How much.
    @param to Who receives it.
    @return uint256 The caller's new balance of that asset.
    """
    assert to != empty(address), "channels: receiver is the zero address"
    return self._withdraw(token, amount, to)


@external
@nonreentrant
def delegate(delegation: Delegation, signature: Bytes[MAX_SIGNATURE]) -> bytes32:
    """
    @dev Registers a delegation signed by its delegator. Anyone may submit
         it. Both bounds of the window are required: an expiry of 0 is
         refused, never read as "forever".
    @param delegation The delegation, its capabilities as the keccak256
           of each name.
    @param signature The delegator's signature: 65 bytes (r, s, v) from
           an account, or whatever the contract wallet's ERC-1271
           `isValidSignature` accepts.
    @return bytes32 The delegation id: its EIP-712 digest.
    """
    assert delegation.expiry != 0, "channels: delegation expiry is 0 (there is no 'forever')"
    assert delegation.valid_after < delegation.expiry, "channels: delegation ends before it starts"
    assert block.timestamp < delegation.expiry, "channels: delegation expired"
    assert delegation.cap > 0, "channels: delegation cap is zero"
    assert delegation.delegator != empty(address), "channels: delegator is the zero address"
    assert delegation.session_key != empty(address), "channels: session key is the zero address"
    assert delegation.session_key != delegation.delegator, "channels: session key is the delegator"
    assert len(delegation.capabilities) > 0, "channels: delegation lists no capability"
    delegation_id: bytes32 = self._delegation_digest(delegation)
    assert self.delegations[delegation_id].delegator == empty(address), "channels: delegation already registered"
    assert not self.revoked[delegation.delegator][delegation_id], "channels: delegation revoked"
    assert self._is_valid_signature(delegation.delegator, delegation_id, signature), "channels: delegation not signed by the delegator"
    self.delegations[delegation_id] = DelegationState(
        delegator=delegation.delegator,
        session_key=delegation.session_key,
        asset=delegation.asset,
        cap=delegation.cap,
        valid_after=delegation.valid_after,
        expiry=delegation.expiry,
        spent=0,
    )
    self._delegation_capabilities[delegation_id] = delegation.capabilities
    log DelegationRegistered(
        delegation_id=delegation_id,
        delegator=delegation.delegator,
        session_key=delegation.session_key,
        asset=delegation.asset,
        cap=delegation.cap,
        valid_after=delegation.valid_after,
        expiry=delegation.expiry,
    )
    return delegation_id


@external
def revoke(delegation_id: bytes32):
    """
    @dev Revokes a delegation of the caller, registered or not: from now
         on no channel opens under it, no channel of it is topped up and it
         cannot be registered. Money already placed in its channels stays
         redeemable by their payees.
    @param delegation_id The delegation's id (its EIP-712 digest).
    """
    self.revoked[msg.sender][delegation_id] = True
    log DelegationRevoked(delegation_id=delegation_id, delegator=msg.sender)


@external
@nonreentrant
def open_delegated(
    delegation_id: bytes32, payee: address, agent_id: uint256, capability: bytes32, amount: uint256
) -> uint256:
    """
    @dev Opens a channel from the delegator to `payee`, funded from the
         delegator's balance. Only the delegation's session key can, only
         while the delegation is valid, within its cap (summed over all
         its channels), and only to the payout of an active agent of
         `REGISTRY` that declares `capability`, a capability the
         delegation allows; never to the session key or the delegator.
    @param delegation_id The registered delegation.
    @param payee The address the vouchers pay: the agent's payout.
    @param agent_id The agent in the registry.
    @param capability keccak256 of the capability the channel pays for.
    @param amount The deposit, drawn from the delegator's balance of the
           delegation's asset.
    @return uint256 The new channel id.
    """
    state: DelegationState = self._check_session_key(delegation_id, msg.sender)
    assert payee != empty(address), "channels: payee is the zero address"
    assert payee != state.delegator, "channels: payer and payee are the same"
    assert payee != state.session_key, "channels: payee is the session key"
    allowed: DynArray[bytes32, MAX_DELEGATED_CAPABILITIES] = self._delegation_capabilities[delegation_id]
    assert capability in allowed or ANY_CAPABILITY in allowed, "channels: capability not delegated"
    registered: address = staticcall AgentRegistry(REGISTRY).payee_for(agent_id, capability)
    assert registered == payee, "channels: payee is not an active agent registered with that capability"

    channel_id: uint256 = self.channel_count + 1
    self.channel_count = channel_id
    self._place(delegation_id, state, channel_id, amount)
    self._draw(state.delegator, state.asset, amount)
    self._payer[channel_id] = state.delegator
    self._payee[channel_id] = convert(payee, uint256) | _DELEGATED_BIT
    if state.asset != NATIVE:
        self._token[channel_id] = state.asset
    self._amounts[channel_id] = amount
    self.channel_delegation[channel_id] = delegation_id
    log ChannelOpened(channel_id=channel_id, payer=state.delegator, payee=payee, token=state.asset, deposit=amount)
    log ChannelDelegated(channel_id=channel_id, delegation_id=delegation_id)
    return channel_id


@external
@view
def delegation_capabilities(delegation_id: bytes32) -> DynArray[bytes32, MAX_DELEGATED_CAPABILITIES]:
    """
    @dev The capabilities a registered delegation allows.
    @param delegation_id The delegation.
    @return DynArray keccak256 of each capability name (empty if unknown).
    """
    return self._delegation_capabilities[delegation_id]


@external
@view
def delegation_digest(delegation: Delegation) -> bytes32:
    """
    @dev The EIP-712 digest a delegator signs, which is also the id.
    @param delegation The delegation.
    @return bytes32 The digest.
    """
    return self._delegation_digest(delegation)


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
    """
    @dev The EIP-712 digest of a voucher under this contract's domain.
    @param channel_id The channel.
    @param cumulative_amount The cumulative amount.
    @return bytes32 The digest a payer (or session key) signs.
    """
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(VOUCHER_TYPEHASH, channel_id, cumulative_amount))
    )


@internal
@view
def _delegation_digest(delegation: Delegation) -> bytes32:
    """
    @dev The EIP-712 digest of a delegation under this contract's domain,
         which is also its id.
    @param delegation The delegation.
    @return bytes32 The digest.
    """
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                DELEGATION_TYPEHASH,
                delegation.delegator,
                delegation.session_key,
                delegation.asset,
                delegation.cap,
                delegation.valid_after,
                delegation.expiry,
                self._capabilities_hash(delegation.capabilities),
                delegation.nonce,
            )
        )
    )


@internal
@pure
def _capabilities_hash(capabilities: DynArray[bytes32, MAX_DELEGATED_CAPABILITIES]) -> bytes32:
    """
    @dev The EIP-712 hash of a `string[]` given the keccak256 of each
         string: keccak256 of their concatenation.
    @param capabilities keccak256 of each name.
    @return bytes32 The array's EIP-712 hash.
    """
    # abi_encode writes the offset, the length, then the words themselves.
    encoded: Bytes[32 * (MAX_DELEGATED_CAPABILITIES + 2)] = abi_encode(capabilities)
    return keccak256(slice(encoded, 64, 32 * len(capabilities)))


@internal
def _place(delegation_id: bytes32, state: DelegationState, channel_id: uint256, amount: uint256):
    """
    @dev Consumes `amount` of a delegation's cap, placed in one of its
         channels (D1: the sum placed never exceeds the cap).
    @param delegation_id The delegation.
    @param state Its registered state.
    @param channel_id The channel the money goes to.
    @param amount How much.
    """
    assert state.spent + amount <= state.cap, "channels: delegation cap exceeded"
    self.delegations[delegation_id].spent = state.spent + amount
    log DelegationSpent(delegation_id=delegation_id, channel_id=channel_id, paid=amount, spent=state.spent + amount)


@internal
@view
def _active(delegation_id: bytes32) -> DelegationState:
    """
    @dev Loads a delegation and reverts unless it is registered, not
         revoked and `valid_after <= now < expiry`.
    @param delegation_id The delegation.
    @return DelegationState Its registered state.
    """
    state: DelegationState = self.delegations[delegation_id]
    assert state.delegator != empty(address), "channels: unknown delegation"
    assert not self.revoked[state.delegator][delegation_id], "channels: delegation revoked"
    assert block.timestamp >= state.valid_after, "channels: delegation not yet valid"
    assert block.timestamp < state.expiry, "channels: delegation expired"
    return state


@internal
@view
def _check_session_key(delegation_id: bytes32, caller: address) -> DelegationState:
    """
    @dev Like `_active`, and also reverts unless `caller` is the
         delegation's session key.
    @param delegation_id The delegation.
    @param caller The address acting under it.
    @return DelegationState Its registered state.
    """
    state: DelegationState = self._active(delegation_id)
    assert caller == state.session_key, "channels: caller is not the delegation's session key"
    return state


@internal
def _deposit(owner: address, token: address, amount: uint256, native_value: uint256) -> uint256:
    """
    @dev Takes a deposit from `msg.sender` and adds what arrived to
         `owner`'s balance.
    @param owner Whose balance grows.
    @param token The ERC-20, or the zero address for the native coin.
    @param amount The ERC-20 amount; ignored for the native coin.
    @param native_value The `msg.value` sent with the call.
    @return uint256 The owner's new balance of that asset.
    """
    received: uint256 = self._pull(token, msg.sender, amount, native_value)
    balance: uint256 = self.balances[owner][token] + received
    self.balances[owner][token] = balance
    log Deposited(owner=owner, token=token, amount=received, balance=balance)
    return balance


@internal
def _draw(owner: address, token: address, amount: uint256):
    """
    @dev Takes `amount` out of `owner`'s balance (for a channel deposit,
         a delegated top-up or a withdrawal).
    @notice Reverts on a zero amount, on more than fits in a channel's
            128-bit deposit, and on more than the balance.
    @param owner Whose balance shrinks.
    @param token The asset.
    @param amount How much.
    """
    assert amount > 0, "channels: deposit is zero"
    assert amount <= _MASK_128, "channels: deposit too large"
    balance: uint256 = self.balances[owner][token]
    assert balance >= amount, "channels: balance too low"
    self.balances[owner][token] = balance - amount


@internal
@view
def _is_valid_signature(signer: address, digest: bytes32, signature: Bytes[MAX_SIGNATURE]) -> bool:
    """
    @dev Whether `signer` signed `digest`: ERC-1271 `isValidSignature`
         when `signer` is a contract, otherwise a 65-byte ECDSA
         signature with `v` of 27 or 28 (and, through snekmate, a low `s`).
    @param signer The expected signer.
    @param digest The signed digest.
    @param signature The signature.
    @return bool True when the signature is valid.
    """
    if signer.is_contract:
        # ERC-1271: the contract wallet decides.
        success: bool = False
        response: Bytes[32] = b""
        success, response = raw_call(
            signer,
            abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
            max_outsize=32,
            is_static_call=True,
            revert_on_failure=False,
        )
        return success and len(response) == 32 and convert(slice(response, 0, 4), bytes4) == ERC1271_MAGIC
    if len(signature) != 65:
        return False
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v != 27 and v != 28:
        return False
    return ecdsa._recover_sig(digest, slice(signature, 0, 65)) == signer


@internal
@view
def _load(channel_id: uint256) -> Channel:
    """
    @dev Unpacks a channel from its four storage slots.
    @param channel_id The channel.
    @return Channel Its state (all zero for an unknown id).
    """
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
    """
    @dev Packs a deposit and a redeemed amount into one word: deposit in
         bits 0-127, redeemed in bits 128-255.
    @notice Callers keep both below 2**128 (the deposit is capped when it
            grows, and redeemed never exceeds it).
    @param deposit The deposit.
    @param redeemed The redeemed amount.
    @return uint256 The packed word for `_amounts`.
    """
    return deposit | (redeemed << 128)


@internal
@view
def _existing(channel_id: uint256) -> Channel:
    """
    @dev Loads a channel and reverts unless it exists and is not settled.
    @param channel_id The channel.
    @return Channel Its state.
    """
    channel: Channel = self._load(channel_id)
    assert channel.payer != empty(address), "channels: unknown channel"
    assert not channel.settled, "channels: channel is settled"
    return channel


@internal
def _redeem(channel_id: uint256, cumulative_amount: uint256, signature: Bytes[65], strict: bool) -> uint256:
    """
    @dev Checks a voucher and pays the payee what it adds over the
         redeemed amount, capped by the deposit.
    @notice A voucher is refused on an unknown or settled channel, after
            the challenge period, when not above the redeemed amount, on
            an exhausted deposit and on a bad signature: `strict` reverts
            with the reason, otherwise it logs `VoucherRejected` and pays
            nothing. On a delegated channel the voucher must be signed by
            the session key; nothing else about the delegation is checked
            (its money was placed, D5).
    @param channel_id The channel.
    @param cumulative_amount The cumulative amount in the voucher.
    @param signature The 65-byte signature (r, s, v).
    @param strict Whether a refused voucher reverts.
    @return uint256 The amount paid.
    """
    channel: Channel = self._load(channel_id)
    problem: uint256 = self._voucher_problem(channel_id, channel, cumulative_amount, signature)
    if problem != 0:
        if strict:
            self._refuse(problem)
        log VoucherRejected(channel_id=channel_id, cumulative_amount=cumulative_amount, reason=problem)
        return 0
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
    self._pay_out(channel.token, channel.payee, pay)
    return pay


@internal
@view
def _voucher_problem(
    channel_id: uint256, channel: Channel, cumulative_amount: uint256, signature: Bytes[65]
) -> uint256:
    """
    @dev Why a voucher cannot pay now: one of the `REJECT_*` codes, or 0
         when it pays.
    @param channel_id The channel.
    @param channel Its state.
    @param cumulative_amount The cumulative amount in the voucher.
    @param signature The 65-byte signature (r, s, v).
    @return uint256 The reason code, 0 for none.
    """
    if channel.payer == empty(address):
        return REJECT_UNKNOWN_CHANNEL
    if channel.settled:
        return REJECT_SETTLED
    if channel.closes_at != 0 and block.timestamp >= channel.closes_at:
        return REJECT_PERIOD_OVER
    if cumulative_amount <= channel.redeemed:
        return REJECT_NOT_ABOVE_REDEEMED
    if channel.redeemed >= channel.deposit:
        return REJECT_DEPOSIT_EXHAUSTED
    if len(signature) != 65:
        return REJECT_SIGNATURE_LENGTH
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v != 27 and v != 28:
        return REJECT_SIGNATURE_V
    s: uint256 = extract32(signature, 32, output_type=uint256)
    if s > _HALF_N:
        return REJECT_SIGNATURE_S
    r: uint256 = extract32(signature, 0, output_type=uint256)
    signer: address = ecrecover(self._voucher_digest(channel_id, cumulative_amount), v, r, s)
    if signer == empty(address):
        return REJECT_SIGNATURE_INVALID
    if self._payee[channel_id] & _DELEGATED_BIT == 0:
        if signer != channel.payer:
            return REJECT_NOT_PAYER
    elif signer != self.delegations[self.channel_delegation[channel_id]].session_key:
        return REJECT_NOT_SESSION_KEY
    return 0


@internal
@pure
def _refuse(problem: uint256):
    """
    @dev Reverts with the reason of a `REJECT_*` code.
    @param problem The code (not 0).
    """
    assert problem != REJECT_UNKNOWN_CHANNEL, "channels: unknown channel"
    assert problem != REJECT_SETTLED, "channels: channel is settled"
    assert problem != REJECT_PERIOD_OVER, "channels: challenge period over"
    assert problem != REJECT_NOT_ABOVE_REDEEMED, "channels: voucher not above redeemed"
    assert problem != REJECT_DEPOSIT_EXHAUSTED, "channels: deposit exhausted"
    assert problem != REJECT_SIGNATURE_LENGTH, "channels: signature is not 65 bytes"
    assert problem != REJECT_SIGNATURE_V, "channels: signature v is not 27 or 28"
    assert problem != REJECT_SIGNATURE_S, "ecdsa: invalid signature `s` value"
    assert problem != REJECT_SIGNATURE_INVALID, "ecdsa: invalid signature"
    assert problem != REJECT_NOT_PAYER, "channels: voucher not signed by payer"
    assert problem != REJECT_NOT_SESSION_KEY, "channels: voucher not signed by the delegation's session key"
    raise "channels: voucher refused"


@internal
def _withdraw(token: address, amount: uint256, to: address) -> uint256:
    """
    @dev Takes `amount` out of the caller's balance and sends it to `to`
         with all the gas (the caller chose the receiver); reverts when
         the transfer fails.
    @param token The asset.
    @param amount How much.
    @param to Who receives it.
    @return uint256 The caller's new balance of that asset.
    """
    assert amount > 0, "channels: withdrawal is zero"
    self._draw(msg.sender, token, amount)
    self.total_owed[token] -= amount
    balance: uint256 = self.balances[msg.sender][token]
    log Withdrawn(owner=msg.sender, token=token, amount=amount, balance=balance)
    self._push(token, to, amount)
    return balance


@internal
def _credit(receiver: address, token: address, amount: uint256):
    """
    @dev Adds money the contract already holds (and no longer counts as
         owed) back to `receiver`'s balance, owed again.
    @param receiver Whose balance grows.
    @param token The asset.
    @param amount How much; nothing when zero.
    """
    if amount == 0:
        return
    self.total_owed[token] += amount
    balance: uint256 = self.balances[receiver][token] + amount
    self.balances[receiver][token] = balance
    log PayoutCredited(receiver=receiver, token=token, amount=amount, balance=balance)


@internal
def _pay_out(token: address, receiver: address, amount: uint256):
    """
    @dev Pushes a payout or a refund with `PUSH_GAS`; when the push
         fails, credits it to the receiver's balance instead, so that one
         receiver can never block a batch or a settlement.
    @notice The books were already updated as if it had been sent; the
            credit makes it owed again.
    @param token The ERC-20, or the zero address for the native coin.
    @param receiver Who receives it.
    @param amount How much; nothing when zero.
    """
    if amount == 0:
        return
    sent: bool = False
    if token == NATIVE:
        sent = raw_call(receiver, b"", value=amount, gas=PUSH_GAS, revert_on_failure=False)
    else:
        response: Bytes[32] = b""
        sent, response = raw_call(
            token,
            abi_encode(receiver, amount, method_id=method_id("transfer(address,uint256)")),
            max_outsize=32,
            gas=PUSH_GAS,
            revert_on_failure=False,
        )
        if sent:
            if len(response) == 0:
                sent = token.is_contract
            else:
                sent = len(response) == 32 and convert(response, uint256) == 1
    if not sent:
        self._credit(receiver, token, amount)


@internal
def _pull(token: address, payer: address, amount: uint256, native_value: uint256) -> uint256:
    """
    @dev Takes a deposit and returns what actually arrived: `msg.value`
         (passed in as `native_value`) for the native coin, the balance
         increase for an ERC-20 (so a fee-on-transfer token cannot make
         the books exceed the balance). Adds it to `total_owed`.
    @notice Reverts when native value comes with an ERC-20 deposit, when
            nothing arrives and when more than 2**128 - 1 arrives.
    @param token The ERC-20, or the zero address for the native coin.
    @param payer Whose tokens `transferFrom` takes.
    @param amount The ERC-20 amount; ignored for the native coin.
    @param native_value The `msg.value` sent with the call.
    @return uint256 The amount received.
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
    """
    @dev Sends `amount` of an asset to `receiver`; nothing when zero.
    @notice The native coin goes through `raw_call` with all gas, so
            contract wallets can receive it.
    @param token The ERC-20, or the zero address for the native coin.
    @param receiver Who receives it.
    @param amount How much.
    """
    if amount == 0:
        return
    if token == NATIVE:
        # raw_call forwards all gas so contract wallets can receive.
        raw_call(receiver, b"", value=amount)
    else:
        assert extcall IERC20(token).transfer(receiver, amount, default_return_value=True), "channels: token transfer failed"
