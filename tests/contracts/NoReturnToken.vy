# pragma version ~=0.4.3
"""
@title Token whose transfers return nothing
@custom:contract-name NoReturnToken
@license MIT
@notice Behaves like USDT on mainnet: `transfer`, `transferFrom` and
        `approve` return no value (they revert on failure). Balances and
        allowances come from snekmate's `erc20` module.
"""

# @dev We import and initialise snekmate's `ownable` and `erc20` modules.
from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

# @dev The ERC-20 functions kept as they are; the others are below.
exports: (
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.mint,
)


@deploy
def __init__():
    """
    @dev The deployer is the minter.
    """
    ownable.__init__()
    erc20.__init__("No Return Token", "NRT", 6, "No Return Token", "1")


@external
def transfer(to: address, amount: uint256):
    """
    @dev Moves `amount` from the caller to `to`; returns nothing.
    @param to The receiver.
    @param amount The amount.
    """
    erc20._transfer(msg.sender, to, amount)


@external
def transferFrom(owner: address, to: address, amount: uint256):
    """
    @dev Moves `amount` from `owner` to `to` within the caller's
         allowance; returns nothing.
    @param owner The sender.
    @param to The receiver.
    @param amount The amount.
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)


@external
def approve(spender: address, amount: uint256):
    """
    @dev Sets the allowance of `spender`; returns nothing.
    @param spender Who may spend.
    @param amount How much.
    """
    erc20._approve(msg.sender, spender, amount)
