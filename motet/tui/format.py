"""Amounts for people: integers in wei shown in gwei or ETH, hashes and addresses shortened."""

from __future__ import annotations

GWEI = 10**9
ETH = 10**18


def gwei(wei: int) -> str:
    """`40000000000` → `'40 gwei'`; fractions keep up to three decimals."""
    value = wei / GWEI
    return f"{value:,.0f} gwei" if value == int(value) else f"{value:,.3f} gwei"


def eth(wei: int) -> str:
    """`10**18` → `'1.0000 ETH'`."""
    return f"{wei / ETH:,.4f} ETH"


def parse_gwei(text: str) -> int:
    """An amount typed in gwei (`'40'`, `'0.5'`) as wei; raises `ValueError` saying what to type."""
    try:
        value = float(text.replace(",", "").replace("_", "").strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an amount: type a number of gwei, for example 40") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative: type a positive number of gwei")
    return round(value * GWEI)


def short(value: str, keep: int = 6) -> str:
    """`0x1234567890abcdef…` → `0x1234…cdef`."""
    return value if len(value) <= 2 * keep + 2 else f"{value[: keep + 2]}…{value[-4:]}"
