"""The suite's network guard (`support.loopback`): loopback is allowed, anything else fails the test."""

from __future__ import annotations

import socket

import pytest
from support.loopback import NetworkAccessBlocked


def test_a_connection_beyond_loopback_fails_before_leaving_the_machine() -> None:
    with socket.socket() as sock, pytest.raises(NetworkAccessBlocked, match=r"192\.0\.2\.1"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    with socket.socket() as sock, pytest.raises(NetworkAccessBlocked):
        sock.connect_ex(("example.com", 443))


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
            assert client.getpeername() == server.getsockname()
