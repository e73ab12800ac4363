"""A test may reach loopback only: a connection to any other address fails the test, naming the address.

Agents, DePIN stand-ins, chains and browsers all run on 127.0.0.1 here; a test that reaches further would
depend on a network CI does not have, or leak a request somewhere real.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


class NetworkAccessBlocked(AssertionError):
    """A test tried to open a connection to an address that is not loopback."""


def _check(sock: socket.SocketType, address: Any) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: resolving it is already a step outside the machine
    if not loopback:
        raise NetworkAccessBlocked(f"a test tried to connect to {address!r}: tests may only reach loopback")


def _guarded_connect(self: socket.SocketType, address: Any) -> None:
    _check(self, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.SocketType, address: Any) -> int:
    _check(self, address)
    return _connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    # Patching the class's methods is the point: every socket made during the session goes through the guard.
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
