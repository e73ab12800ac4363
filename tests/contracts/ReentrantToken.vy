# pragma version ~=0.4.3
"""
@title Token that calls back into its caller
@custom:contract-name ReentrantToken
@license MIT
@notice Once armed with a target and calldata, the next `transfer` or
        `transferFrom` first sends that calldata to the target (for example
        `PaymentChannels.redeem` of another valid voucher) with
        `revert_on_failure=False`, and records whether the re-entry
        succeeded, then moves the tokens as snekmate's `erc20` does.
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

# @dev The contract called back and the calldata sent to it.
target: public(address)
payload: public(Bytes[1024])
armed: public(bool)

# @dev How many call-backs were tried, and whether any succeeded.
attempts: public(uint256)
reentered: public(bool)


@deploy
def __init__():
    """
    @dev The deployer is the minter; nothing is armed.
    """
    ownable.__init__()
    erc20.__init__("Reentrant Token", "RET", 18, "Reentrant Token", "1")


@external
def arm(target: address, payload: Bytes[1024]):
    """
    @dev The next transfer calls `target` with `payload` once.
    @param target The contract to call back.
    @param payload The calldata to send it.
    """
    self.target = target
    self.payload = payload
    self.armed = True


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Calls back if armed, then moves `amount` to `to`.
    @param to The receiver.
    @param amount The amount.
    @return bool Always True (it reverts on failure).
    """
    self._call_back()
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Calls back if armed, then moves `amount` from `owner` to `to`.
    @param owner The sender, whose allowance to the caller is spent.
    @param to The receiver.
    @param amount The amount.
    @return bool Always True (it reverts on failure).
    """
    self._call_back()
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True


@internal
def _call_back():
    """
    @dev Once per arming: sends `payload` to `target` without reverting
         on its failure, counts the attempt and records a success.
    """
    if not self.armed:
        return
    self.armed = False
    self.attempts += 1
    success: bool = raw_call(self.target, self.payload, revert_on_failure=False)
    if success:
        self.reentered = True
