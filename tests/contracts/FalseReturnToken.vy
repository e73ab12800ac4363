# pragma version ~=0.4.3
"""
@title Token that fails by returning false
@custom:contract-name FalseReturnToken
@license MIT
@notice While `failing` is set, `transfer` and `transferFrom` move nothing
        and return False instead of reverting (as some old tokens do).
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

# @dev When set, transfers silently fail with a False return value.
failing: public(bool)


@deploy
def __init__():
    """
    @dev The deployer is the minter; transfers work until `set_failing`.
    """
    ownable.__init__()
    erc20.__init__("False Return Token", "FRT", 18, "False Return Token", "1")


@external
def set_failing(failing: bool):
    """
    @dev Turns the silent failure on or off (anyone may, it is a test).
    @param failing Whether transfers fail from now on.
    """
    self.failing = failing


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` to `to`, or returns False while `failing`.
    @param to The receiver.
    @param amount The amount.
    @return bool False while `failing`, otherwise True.
    """
    if self.failing:
        return False
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` from `owner` to `to`, or returns False while
         `failing`.
    @param owner The sender, whose allowance to the caller is spent.
    @param to The receiver.
    @param amount The amount.
    @return bool False while `failing`, otherwise True.
    """
    if self.failing:
        return False
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True
