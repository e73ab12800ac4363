# pragma version ~=0.4.3
"""
@title Contract wallet that rejects the native coin
@custom:contract-name RejectingWallet
@license MIT
@notice A contract account with one owner key that runs the calls its owner
        sends through `execute` but reverts on every plain transfer of the
        native coin (as some multisigs and smart accounts do). A channel
        that pushes the coin to it must credit it instead.
"""

# @dev The key whose calls the wallet runs.
owner: public(address)


@deploy
def __init__(owner: address):
    """
    @dev Sets the wallet's owner key.
    @param owner The owner.
    """
    self.owner = owner


@external
@payable
def execute(target: address, amount: uint256, data: Bytes[1024]) -> Bytes[1024]:
    """
    @dev Calls `target` with `data` and `amount` of the native coin (sent
         along with this call by the owner).
    @notice Only the owner can; the call's failure reverts.
    @param target The contract called.
    @param amount The native coin sent with the call.
    @param data The calldata.
    @return Bytes The call's return data.
    """
    assert msg.sender == self.owner, "wallet: caller is not the owner"
    return raw_call(target, data, value=amount, max_outsize=1024)


@external
@payable
def __default__():
    """
    @dev Rejects the native coin.
    """
    raise "wallet: no native coin, thanks"
