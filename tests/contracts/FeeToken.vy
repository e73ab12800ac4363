# pragma version ~=0.4.3
"""
@title Fee-on-transfer token
@custom:contract-name FeeToken
@license MIT
@notice Every `transfer` and `transferFrom` burns 1% of the amount (rounded
        down) from the sender, so the receiver gets less than was sent.
        Otherwise it is snekmate's `erc20`.
"""

# @dev We import and initialise snekmate's `ownable` and `erc20` modules.
from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

# @dev The ERC-20 functions kept as they are; the transfers are below.
exports: (
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.approve,
    erc20.mint,
)

# @dev The fee, in basis points of the amount sent.
FEE_BPS: public(constant(uint256)) = 100


@deploy
def __init__():
    """
    @dev The deployer is the minter.
    """
    ownable.__init__()
    erc20.__init__("Fee Token", "FEE", 18, "Fee Token", "1")


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Sends `amount` minus the fee to `to` and burns the fee.
    @param to The receiver.
    @param amount The amount sent, fee included.
    @return bool Always True (it reverts on failure).
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Sends `amount` minus the fee from `owner` to `to` within the
         caller's allowance, and burns the fee.
    @param owner The sender.
    @param to The receiver.
    @param amount The amount sent, fee included.
    @return bool Always True (it reverts on failure).
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    self._move(owner, to, amount)
    return True


@internal
def _move(owner: address, to: address, amount: uint256):
    """
    @dev Burns the fee from `owner` and moves the rest to `to`.
    @param owner The sender.
    @param to The receiver.
    @param amount The amount sent, fee included.
    """
    fee: uint256 = amount * FEE_BPS // 10_000
    erc20._burn(owner, fee)
    erc20._transfer(owner, to, amount - fee)
