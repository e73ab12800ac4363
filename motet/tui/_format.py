"""Text for people: hashes and addresses shortened, spans of time in words (amounts: `motet.units`)."""

from __future__ import annotations


def short(value: str, keep: int = 6) -> str:
    """`0x1234567890abcdef…` → `0x1234…cdef`."""
    return value if len(value) <= 2 * keep + 2 else f"{value[: keep + 2]}…{value[-4:]}"


def duration(seconds: int) -> str:
    """A span in at most two units: `45` → `'45 s'`, `3540` → `'59 min'`, `9000` → `'2 h 30 min'`,
    `200000` → `'2 d 7 h'`."""
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def expires(expiry: int, now: int) -> str:
    """An expiry relative to `now` (both in seconds, chain time): `'in 59 min'` or `'expired 3 min ago'`."""
    return f"in {duration(expiry - now)}" if expiry > now else f"expired {duration(now - expiry)} ago"
