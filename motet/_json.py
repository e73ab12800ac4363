"""Parsing JSON that someone else wrote, without letting its nesting crash the process.

py_ecc (imported with the chain) raises Python's recursion limit to 100,000. The standard library's JSON
parser recurses in C, bounded only by that limit, so a body of 200,000 `[` exhausts the C stack and kills
the process (a segmentation fault, not an exception). pydantic-core's parser refuses deep nesting with a
`ValueError`, so it reads the text first; the standard library then builds the values, so that numbers,
strings and duplicate keys are read exactly as everywhere else in motet.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pydantic_core

MAX_DEPTH = 200
"""The deepest nesting `loads` reads (pydantic-core's own bound)."""

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def loads(data: str | bytes | bytearray, *, allow_inf_nan: bool = True) -> Any:
    """`json.loads` of text from the network, a model or a file someone else wrote, nesting bounded first.

    Raises `ValueError` for anything that is not JSON: `json.JSONDecodeError` and `UnicodeDecodeError` are
    among its subclasses, and pydantic-core's "recursion limit exceeded" is one too. With
    `allow_inf_nan=False`, `NaN` and `Infinity` are refused as well.

    Example:
        >>> loads(b'{"a": [1, 2.5]}')
        {'a': [1, 2.5]}
        >>> loads("[" * 100_000 + "]" * 100_000)
        Traceback (most recent call last):
        ...
        ValueError: recursion limit exceeded at line 1 column 202
    """
    try:
        pydantic_core.from_json(
            bytes(data) if isinstance(data, bytearray) else data, allow_inf_nan=allow_inf_nan
        )
    except ValueError as exc:
        # Not JSON to pydantic-core. The standard library says why in its own words (and reads what only it
        # accepts, such as lone surrogates), once the nesting is known to be shallow.
        if "recursion limit" in str(exc) or _depth(data) > MAX_DEPTH:
            raise ValueError(str(exc)) from None
        if not allow_inf_nan:
            raise
    return json.loads(data)


def _depth(data: str | bytes | bytearray) -> int:
    """The deepest bracket nesting in `data`, strings skipped, without recursing."""
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else bytes(data)
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value` for the wire: orjson where it can write it, the standard library where only
    it can (integers beyond 64 bits, which uint256 amounts in a model's input may be).

    Example:
        >>> dumps({"a": [1, 2**70]})
        b'{"a":[1,1180591620717411303424]}'
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
