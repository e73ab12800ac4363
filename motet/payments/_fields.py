"""The one family of field validators: what a uint, an address, fixed bytes or a string field may hold.

Typed-data structs, their domains, wire forms and the registry's arguments all check their fields here; each
builds a `Fields` that raises its own error (`InvalidReceipt`, `InvalidDelegation`, `InvalidRegistryArgument`…).

Example:
    >>> Fields.of("receipt", ValueError).address("contract", "0x" + "ab" * 20)
    '0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal

from eth_utils.address import to_checksum_address

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL = re.compile(r"[0-9]{1,78}")  # 2**256 - 1 has 78 digits
_HEX_NUMBER = re.compile(r"0[xX][0-9a-fA-F]{1,64}")


@lru_cache(maxsize=16)
def _hex_pattern(size: int | None) -> re.Pattern[str]:
    return re.compile("0x(?:[0-9a-fA-F]{2})*" if size is None else f"0x[0-9a-fA-F]{{{2 * size}}}")


@lru_cache(maxsize=4096)
def checksum_address(address: str | bytes) -> str:
    """The EIP-55 checksummed form of an address (cached: a payment path meets the same few addresses)."""
    return to_checksum_address(address)


def shown(value: object) -> str:
    """`value` as an error message shows it: bytes by their length, anything else by a `repr` of 80 at most."""
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Fields:
    """The validators of typed-data fields; `error(name, value, rule)` builds what they raise.

    Each returns the value normalised (an `int`, a checksummed address, `bytes`, a tuple of strings) or raises
    the error, whose message says what the field must be.

    Example:
        >>> fields = Fields.of("receipt", ValueError)
        >>> fields.uint("price", "1000", strings="decimal")
        1000
        >>> fields.uint("seq", 2**64, bits=64)
        Traceback (most recent call last):
        ...
        ValueError: receipt field 'seq' is 18446744073709551616; it must be between 0 and 2**64 - 1 (uint64)
    """

    __slots__ = ("_error", "_plain")

    def __init__(
        self,
        error: Callable[[str, object, str], Exception],
        plain: Callable[[str], Exception] = ValueError,
    ) -> None:
        self._error = error
        self._plain = plain

    @classmethod
    def of(cls, what: str, error: Callable[[str], Exception]) -> Fields:
        """Validators whose errors read "`what` field 'name' is <value>; it must be <rule>"."""
        return cls(
            lambda name, value, rule: error(f"{what} field {name!r} is {shown(value)}; it must be {rule}"),
            error,
        )

    def error(self, name: str, value: object, rule: str) -> Exception:
        """The error for field `name` holding `value`, which breaks `rule` ("it must be <rule>")."""
        return self._error(name, value, rule)

    def refusal(self, message: str) -> Exception:
        """The error with a message of its own (for what is not one field's value)."""
        return self._plain(message)

    def uint(
        self,
        name: str,
        value: object,
        *,
        bits: int = 256,
        minimum: int = 0,
        strings: Literal["no", "decimal", "any"] = "no",
    ) -> int:
        """An unsigned integer of `bits` bits, at least `minimum`: an `int` (never a `bool`), or with `strings`
        a decimal string (wire forms write big numbers so), or with `strings="any"` also 0x-hex (wallets)."""
        if type(value) is int and minimum <= value <= (1 << bits) - 1:
            return value  # the common case, first: a payment path checks several integers per call
        number = value
        if isinstance(value, str) and strings != "no":
            text = value.strip() if strings == "any" else value
            if _DECIMAL.fullmatch(text):
                number = int(text)
            elif strings == "any" and _HEX_NUMBER.fullmatch(text):
                number = int(text, 16)
        if isinstance(number, bool) or not isinstance(number, int):
            accepted = {"no": "an integer", "decimal": "an integer or a decimal string"}.get(
                strings, "an integer, or a decimal or 0x-hex string"
            )
            raise self.error(name, value, f"{accepted} (uint{bits})")
        if not minimum <= number <= (1 << bits) - 1:
            raise self.error(name, value, f"between {minimum} and 2**{bits} - 1 (uint{bits})")
        return number

    def address(self, name: str, value: object, *, zero: bool = True) -> str:
        """A hex address, returned checksummed; mixed case must be the EIP-55 checksum (a typo shows)."""
        if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
            raise self.error(name, value, "a hex address (0x followed by 40 hex digits)")
        address = checksum_address(value)
        digits = value[2:]
        if address != value and digits != digits.lower() and digits != digits.upper():
            raise self.error(
                name, value, f"a hex address whose mixed case is its EIP-55 checksum ({address})"
            )
        if not zero and int(digits, 16) == 0:
            raise self.error(
                name, value, "an address other than the zero address: payments to it would be lost"
            )
        return address

    def hex_bytes(self, name: str, value: object, size: int | None = None) -> bytes:
        """Bytes written as 0x-hex: exactly `size` of them (0x and 2 × `size` hex digits), or any number."""
        if isinstance(value, str) and _hex_pattern(size).fullmatch(value):
            return bytes.fromhex(value[2:])
        rule = "0x-hex bytes" if size is None else f"{size} bytes (0x and {2 * size} hex digits)"
        raise self.error(name, value, rule)

    def bytes32(self, name: str, value: object) -> bytes:
        """32 bytes, given as `bytes` or as 0x-hex."""
        if type(value) is bytes and len(value) == 32:
            return value
        if isinstance(value, str):
            return self.hex_bytes(name, value, 32)
        if not isinstance(value, bytes) or len(value) != 32:
            raise self.error(name, value, "32 bytes")
        return value

    def text(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.error(name, value, "a string")
        return value

    def texts(self, name: str, value: object) -> tuple[str, ...]:
        """A list of strings, returned as a tuple."""
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self.error(name, value, "a list of strings")
        return tuple(self.text(name, item) for item in value)
