# pragma version ~=0.4.3
"""
@title Batched reads of PaymentChannels
@custom:contract-name ChannelsLens
@license MIT
@notice Reads every channel, `total_owed` of two assets and the balances
        that must match them, in one call. The stateful test checks the
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


# @dev The views of PaymentChannels this lens reads.
interface IChannels:
    def channels(channel_id: uint256) -> Channel: view
    def channel_count() -> uint256: view
    def total_owed(token: address) -> uint256: view


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
