# pragma version ~=0.4.3
"""
@title Minimal ERC-1271 contract wallet
@custom:contract-name MinimalWallet
@license MIT
@notice A contract account with one owner key: it accepts a signature when
        the owner signed the hash (ERC-1271), runs calls its owner sends
        through `execute`, and receives the native coin.
"""

# @dev What `isValidSignature` returns for a valid signature.
MAGIC: constant(bytes4) = 0x1626ba7e

# @dev The key whose signatures the wallet accepts and whose calls it runs.
owner: public(address)


@deploy
def __init__(owner: address):
    """
    @dev Sets the wallet's owner key.
    @param owner The owner.
    """
    self.owner = owner


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[1024]) -> bytes4:
    """
    @dev ERC-1271: the magic value when the owner signed `digest`.
    @param digest The signed hash.
    @param signature A 65-byte signature (r, s, v).
    @return bytes4 `MAGIC` when the owner signed, otherwise 0xffffffff.
    """
    if len(signature) != 65:
        return 0xffffffff
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if ecrecover(digest, v, r, s) == self.owner:
        return MAGIC
    return 0xffffffff


@external
@payable
def execute(target: address, amount: uint256, data: Bytes[1024]) -> Bytes[1024]:
    """
    @dev Calls `target` with `data` and `amount` of the native coin.
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
    @dev Receives the native coin.
    """
    pass
