# pragma version ~=0.4.3
"""
@title Test token
@custom:contract-name TestToken
@license MIT
@notice A plain ERC-20 (snekmate's audited `erc20` module, unchanged) for
        the channel tests. The deployer is the minter: tests mint with
        `mint(owner, amount)` from the default account.
"""

# @dev We import and initialise snekmate's `ownable` and `erc20` modules.
from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

# @dev Every external function of snekmate's `erc20`, unchanged.
exports: erc20.__interface__


@deploy
def __init__():
    """
    @dev Names the token "Test Token" (TT, 18 decimals) and makes the
         deployer its owner and minter.
    """
    ownable.__init__()
    erc20.__init__("Test Token", "TT", 18, "Test Token", "1")
