"""Text for people: hashes and addresses shortened, spans of time in words (amounts: `motet.units`)."""

from __future__ import annotations

from pydantic import JsonValue

from motet.trust import TrustFacts


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


def reputation(facts: TrustFacts | None) -> str:
    """`'95/100 (3)'`: the payment-weighted feedback score and how many payers' feedback it holds; `-` when no
    payer rated the agent, `?` when its record cannot be read."""
    if facts is None:
        return "?"
    if not facts.rated:
        return "-"
    return f"{facts.feedback_score:.0f}/100 ({facts.feedback_count})"


def readable(value: JsonValue, indent: str = "") -> str:
    """An agent's answer for people: strings as text (their newlines kept), objects as `key: value` lines,
    lists of plain values joined with commas, nested ones indented.

    Example:
        >>> print(readable({"summary": "Line one.\\nLine two.", "keywords": ["a", "b"], "n": 2}))
        summary: Line one.
          Line two.
        keywords: a, b
        n: 2
    """
    if isinstance(value, str):
        return value.replace("\n", "\n" + indent) if indent else value
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and not _flat(item):
                lines.append(f"{indent}{key}:\n{readable(item, indent + '  ')}")
            else:
                lines.append(f"{indent}{key}: {readable(item, indent + '  ')}")
        return "\n".join(lines)
    if isinstance(value, list):
        if _flat(value):
            return ", ".join(readable(item) for item in value)
        return "\n".join(f"{indent}- {readable(item, indent + '  ').lstrip()}" for item in value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _flat(value: JsonValue) -> bool:
    """A list of short plain values (one line), or an empty container."""
    if isinstance(value, dict):
        return not value
    if isinstance(value, list):
        return all(
            not isinstance(item, dict | list) and not (isinstance(item, str) and "\n" in item)
            for item in value
        )
    return True
