# pragma version ~=0.4.3
"""
@title motet receipt verification
@custom:contract-name receipts
@license MIT
@notice A stateless module that checks an agent's EIP-712 receipt on
        chain, exactly as `motet.payments` signs it: domain
        ("motet-receipts", "1", chain id, the PaymentChannels address)
        and the type `Receipt(bytes32 requestHash,bytes32 responseHash,
        uint256 price,uint256 channelId,uint64 seq,bytes32 modelRef)`.
        The receipt's signer is the agent's payout address. `signer`
        refuses malformed signatures (length, `v` other than 27 or 28,
        `r` or `s` out of range, high `s`) by returning the zero address,
        so a caller compares it with the expected signer and never
        accepts the zero address.
"""


# @dev The EIP-712 domain type (name, version, chain id, contract).
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


# @dev The EIP-712 receipt type. The Python signer builds the same string
# (motet.payments.RECEIPT_TYPE) and a test compares them.
RECEIPT_TYPEHASH: constant(bytes32) = keccak256(
    "Receipt(bytes32 requestHash,bytes32 responseHash,uint256 price,uint256 channelId,uint64 seq,bytes32 modelRef)"
)


# @dev keccak256 of the domain's name and version.
_NAME_HASH: constant(bytes32) = keccak256("motet-receipts")
_VERSION_HASH: constant(bytes32) = keccak256("1")


# @dev The secp256k1 order and its half: a larger `s` is the malleable twin.
_N: constant(uint256) = 115792089237316195423570985008687907852837564279074904382605163141518161494337
_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168


# @dev A receipt's signed fields (the signature travels beside it).
struct Receipt:
    request_hash: bytes32
    response_hash: bytes32
    price: uint256
    channel_id: uint256
    seq: uint64
    model_ref: bytes32


@internal
@view
def domain_separator(channels: address) -> bytes32:
    """
    @dev The EIP-712 domain separator of receipts charged on the
         PaymentChannels contract `channels` on this chain.
    @param channels The PaymentChannels address (`verifyingContract`).
    @return bytes32 The separator.
    """
    return keccak256(abi_encode(DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, chain.id, channels))


@internal
@pure
def digest(separator: bytes32, receipt: Receipt) -> bytes32:
    """
    @dev The EIP-712 digest a receipt's signature signs.
    @param separator The domain separator (`domain_separator`).
    @param receipt The receipt's fields.
    @return bytes32 keccak256(0x1901 || separator || struct hash).
    """
    struct_hash: bytes32 = keccak256(
        abi_encode(
            RECEIPT_TYPEHASH,
            receipt.request_hash,
            receipt.response_hash,
            receipt.price,
            receipt.channel_id,
            receipt.seq,
            receipt.model_ref,
        )
    )
    return keccak256(concat(x"1901", separator, struct_hash))


@internal
@pure
def signer(digest: bytes32, signature: Bytes[65]) -> address:
    """
    @dev Recovers who signed `digest` with a 65-byte `r || s || v`
         signature.
    @notice Returns the zero address, never a wrong signer, for a
            signature that is not 65 bytes, has `v` other than 27 or 28,
            `r` or `s` zero or out of range, or a high `s`.
    @param digest The signed digest.
    @param signature The signature.
    @return address The signer, or the zero address.
    """
    if len(signature) != 65:
        return empty(address)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v != 27 and v != 28:
        return empty(address)
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    if r == 0 or r >= _N or s == 0 or s > _HALF_N:
        return empty(address)
    return ecrecover(digest, v, r, s)
