# pragma version ~=0.4.3
"""
@title Batched reads of PaymentChannels
@custom:contract-name ChannelsLens
@license MIT
@notice Reads every channel, `total_owed` of two assets and the balances
        that must match them, in one call (and, in a second, the owners'
        balances in the contract and the delegations' `spent`). The stateful test checks the
        whole chain against its model after every step; one `eth_call`
        instead of a dozen keeps that affordable. It reads only the public
        views, so it sees what any client sees.
"""

# @dev The most channels one call returns.
MAX_CHANNELS: constant(uint256) = 64


# @dev A channel as `PaymentChannels.channels(id)` returns it.
struct Channel:
    payer: address
    payee: address
    token: address
    deposit: uint256
    redeemed: uint256
    closes_at: uint256
    settled: bool


# @dev A delegation as `PaymentChannels.delegations(id)` returns it.
struct DelegationState:
    delegator: address
    session_key: address
    asset: address
    cap: uint256
    valid_after: uint256
    expiry: uint256
    spent: uint256


# @dev The views of PaymentChannels this lens reads.
interface IChannels:
    def channels(channel_id: uint256) -> Channel: view
    def channel_count() -> uint256: view
    def total_owed(token: address) -> uint256: view
    def balances(owner: address, token: address) -> uint256: view
    def delegations(delegation_id: bytes32) -> DelegationState: view


# @dev The ERC-20 balance view.
interface IBalance:
    def balanceOf(owner: address) -> uint256: view


@external
@view
def read(
    channels: address, token: address
) -> (DynArray[Channel, MAX_CHANNELS], uint256, uint256, uint256, uint256):
    """
    @dev Every channel (ids 1 to `channel_count`), then `total_owed` of the
         native coin and of `token`, then the contract's native balance
         and its `token` balance.
    @param channels The PaymentChannels contract.
    @param token The ERC-20 to account for.
    @return DynArray The channels, in id order.
    @return uint256 `total_owed` of the native coin.
    @return uint256 `total_owed` of `token`.
    @return uint256 The native balance of `channels`.
    @return uint256 The `token` balance of `channels`.
    """
    return self._read(channels, token)


@internal
@view
def _read(
    channels: address, token: address
) -> (DynArray[Channel, MAX_CHANNELS], uint256, uint256, uint256, uint256):
    """
    @dev Every channel (ids 1 to `channel_count`), then `total_owed` of the
         native coin and of `token`, then the contract's native balance
         and its `token` balance.
    @param channels The PaymentChannels contract.
    @param token The ERC-20 to account for.
    @return DynArray The channels, in id order.
    @return uint256 `total_owed` of the native coin.
    @return uint256 `total_owed` of `token`.
    @return uint256 The native balance of `channels`.
    @return uint256 The `token` balance of `channels`.
    """
    count: uint256 = staticcall IChannels(channels).channel_count()
    assert count <= MAX_CHANNELS, "lens: too many channels"
    found: DynArray[Channel, MAX_CHANNELS] = []
    for channel_id: uint256 in range(1, MAX_CHANNELS + 1):
        if channel_id > count:
            break
        found.append(staticcall IChannels(channels).channels(channel_id))
    return (
        found,
        staticcall IChannels(channels).total_owed(empty(address)),
        staticcall IChannels(channels).total_owed(token),
        channels.balance,
        staticcall IBalance(token).balanceOf(channels),
    )


@external
@view
def books(
    channels: address, token: address, owners: DynArray[address, 4], delegation_ids: DynArray[bytes32, 4]
) -> (DynArray[Channel, MAX_CHANNELS], uint256, uint256, uint256, uint256, DynArray[uint256, 8], DynArray[uint256, 4]):
    """
    @dev What `read` returns, then the balances of some owners in the
         contract (native coin, then `token`, per owner) and the `spent`
         of some delegations, in one call.
    @param channels The PaymentChannels contract.
    @param token The ERC-20 to account for.
    @param owners Whose balances.
    @param delegation_ids Which delegations.
    @return DynArray The channels, in id order.
    @return uint256 `total_owed` of the native coin.
    @return uint256 `total_owed` of `token`.
    @return uint256 The native balance of `channels`.
    @return uint256 The `token` balance of `channels`.
    @return DynArray The balances, two per owner.
    @return DynArray The delegations' `spent`, in order.
    """
    found: DynArray[Channel, MAX_CHANNELS] = []
    owed_native: uint256 = 0
    owed_token: uint256 = 0
    held_native: uint256 = 0
    held_token: uint256 = 0
    found, owed_native, owed_token, held_native, held_token = self._read(channels, token)
    balances: DynArray[uint256, 8] = []
    for owner: address in owners:
        balances.append(staticcall IChannels(channels).balances(owner, empty(address)))
        balances.append(staticcall IChannels(channels).balances(owner, token))
    spent: DynArray[uint256, 4] = []
    for delegation_id: bytes32 in delegation_ids:
        spent.append((staticcall IChannels(channels).delegations(delegation_id)).spent)
    return found, owed_native, owed_token, held_native, held_token, balances, spent
