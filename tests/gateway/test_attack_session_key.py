"""A session key kept in a file others can read: the key spends under every delegation made to the gateway, so
its file is made private (mode 0600) whether `motet gateway` creates it or finds it already there."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from eth_account import Account

from motet.chain import Chain
from motet.cli.gateway import _session_key, private_key_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_existing_session_key_file_is_made_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTET_HOME", str(tmp_path))
    key = Account.create()
    path = tmp_path / "gateway-session-key-31337"
    path.write_text(key.key.hex())
    path.chmod(0o644)  # from an older motet, a copy, or a restored backup
    node = cast(Chain, SimpleNamespace(kind="anvil", chain_id=31337))
    assert _session_key(node, None).address == key.address
    assert mode(path) == 0o600


def test_a_new_session_key_file_is_private_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "key"
    created = private_key_file(path)
    assert mode(path) == 0o600 and Account.from_key(created)
    assert private_key_file(path) == created  # the same key on the next start
