"""The transactions a wallet sends itself to the channels contract: the gateway builds them unsigned for
`eth_sendTransaction`, and says whether one is mined. The gateway signs nothing here: the wallet signs and pays
the gas.
"""

from __future__ import annotations

import re
from typing import Any

from eth_typing import HexStr
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from motet.chain import NATIVE_ASSET, Chain
from motet.errors import OrderRefused

HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
"""A delegation id or a transaction hash."""


def wallet_transaction(contract: Contract, chain_id: int, body: dict[str, Any]) -> dict[str, str]:
    """The unsigned transaction for a wallet's request to the channels contract.

    `{"function": "deposit", "amount": wei}` adds to the sender's balance, `{"function": "withdraw",
    "amount": wei}` takes back what no channel holds, `{"function": "revoke", "delegation": id}` revokes one of
    the sender's delegations. Anything else is `OrderRefused` (400).
    """
    function = body.get("function")
    if function in ("deposit", "withdraw"):
        amount = _positive_wei(body.get("amount"))
        data = contract.encode_abi(function, args=[NATIVE_ASSET, amount])
        value = amount if function == "deposit" else 0
    elif function == "revoke":
        delegation = body.get("delegation")
        if not isinstance(delegation, str) or not HEX32.fullmatch(delegation):
            raise OrderRefused(
                400, f"'delegation' must be a delegation id (0x + 64 hex digits), not {delegation!r}"
            )
        data = contract.encode_abi("revoke", args=[bytes.fromhex(delegation[2:])])
        value = 0
    else:
        raise OrderRefused(400, f"'function' must be 'deposit', 'withdraw' or 'revoke', not {function!r}")
    return {"to": contract.address, "data": data, "value": hex(value), "chainId": hex(chain_id)}


def transaction_status(chain: Chain, tx_hash: str) -> dict[str, Any]:
    """Whether a transaction the wallet sent is mined: `pending`, `success` or `reverted`."""
    if not HEX32.fullmatch(tx_hash):
        raise OrderRefused(400, f"{tx_hash!r} is not a transaction hash (0x + 64 hex digits)")
    try:
        receipt = chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))
    except TransactionNotFound:
        return {"hash": tx_hash, "status": "pending"}
    return {
        "hash": tx_hash,
        "status": "success" if receipt["status"] == 1 else "reverted",
        "block": receipt["blockNumber"],
        "gasUsed": receipt["gasUsed"],
    }


def _positive_wei(value: object) -> int:
    """A positive amount in wei, given as a decimal string or an integer."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) == 0:
        raise OrderRefused(
            400, f"'amount' must be a positive whole number of wei (a decimal string), not {value!r}"
        )
    return int(text)
