"""Capability names and the hashes the registry stores for them.

On chain an agent declares only `keccak256(name)` of each capability; the names live in its registration
file. A name is lower-case dotted words, so the same capability always hashes the same way.

Example:
    >>> capability_hash("text.summarize").hex()[:8]
    'c3dbdbd6'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from motet.errors import DuplicateCapability, InvalidCapabilityName, InvalidRegistryArgument
from motet.payments._eip712 import keccak

MAX_CAPABILITY_NAME = 64
"""Longest capability name, in characters."""

MAX_CAPABILITIES = 16
"""Most capabilities one agent may declare (the contract's `MAX_CAPABILITIES`)."""

_WORD = r"[a-z][a-z0-9_]*"
_NAME = re.compile(rf"{_WORD}(?:\.{_WORD})*")
_NAME_RULE = (
    "a name is 1 to 64 characters of lower-case dot-separated words, each starting with a letter "
    "and made of a-z, 0-9 and _ (e.g. 'summarize', 'text.summarize')"
)


def validate_capability_name(name: str) -> str:
    """Return `name` if it is a valid capability name, else raise `InvalidCapabilityName` naming the rule.

    Example:
        >>> validate_capability_name("translate")
        'translate'
    """
    if not isinstance(name, str):
        raise InvalidCapabilityName(repr(name), f"a capability name is a string, not {type(name).__name__}")
    if not name:
        raise InvalidCapabilityName(name, "the name is empty; " + _NAME_RULE)
    if len(name) > MAX_CAPABILITY_NAME:
        raise InvalidCapabilityName(
            name, f"the name has {len(name)} characters, at most {MAX_CAPABILITY_NAME} are allowed"
        )
    # fullmatch, not match + "$": "$" would accept a trailing newline.
    if _NAME.fullmatch(name) is None:
        raise InvalidCapabilityName(name, _NAME_RULE)
    return name


def capability_hash(name: str) -> bytes:
    """keccak256 of the UTF-8 capability name: the 32 bytes the registry stores and indexes.

    Example:
        >>> len(capability_hash("summarize"))
        32
    """
    return keccak(validate_capability_name(name).encode("utf-8"))


def capability_hashes(names: Iterable[str]) -> list[bytes]:
    """The hashes of an agent's capability names, in order, after checking count, names and duplicates.

    Example:
        >>> [h.hex()[:4] for h in capability_hashes(["summarize", "translate"])]
        ['3160', '026d']
    """
    if isinstance(names, str):
        # A bare string would be iterated character by character, which is never what was meant.
        raise InvalidRegistryArgument("capabilities", names, "pass a list of names, e.g. ['summarize']")
    names = list(names)
    if not names:
        raise InvalidRegistryArgument("capabilities", names, "an agent needs at least one capability")
    if len(names) > MAX_CAPABILITIES:
        raise InvalidRegistryArgument(
            "capabilities", names, f"{len(names)} given, at most {MAX_CAPABILITIES} are allowed"
        )
    seen: set[str] = set()
    for name in names:
        validate_capability_name(name)
        if name in seen:
            raise DuplicateCapability(name)
        seen.add(name)
    return [capability_hash(name) for name in names]
