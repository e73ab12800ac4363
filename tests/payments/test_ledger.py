"""The ledger persists vouchers and never lets a cumulative amount go backwards (P2, O1)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from motet.errors import InvalidVoucher, VoucherNotAboveHighest
from motet.payments import ChannelDomain, Ledger, VoucherSigner

DOMAIN = ChannelDomain(chain_id=1, contract="0x" + "ab" * 20)
SIGNER = VoucherSigner("0x" + "11" * 32, DOMAIN)


def test_signed_vouchers_only_go_up_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.record_signed(SIGNER.sign(1, 100))
    ledger.record_signed(SIGNER.sign(1, 2**255))  # beyond int64: ordering must stay numeric
    with pytest.raises(VoucherNotAboveHighest, match="already signed"):
        ledger.record_signed(SIGNER.sign(1, 2**255))
    with pytest.raises(VoucherNotAboveHighest):
        ledger.record_signed(SIGNER.sign(1, 5))
    ledger.close()

    reopened = Ledger(path)
    highest = reopened.highest_signed(DOMAIN, 1)
    assert highest is not None
    assert highest.cumulative_amount == 2**255
    assert highest.signature == SIGNER.sign(1, 2**255).signature
    assert reopened.highest_signed(DOMAIN, 2) is None


def test_received_replay_is_rejected_and_unredeemed_tracks_the_top() -> None:
    ledger = Ledger()
    for amount in (10, 20, 30):
        ledger.record_received(SIGNER.sign(1, amount))
    ledger.record_received(SIGNER.sign(2, 7))
    with pytest.raises(InvalidVoucher, match="replay or a lower amount"):
        ledger.record_received(SIGNER.sign(1, 30))
    pending = ledger.unredeemed(DOMAIN)
    assert [(v.channel_id, v.cumulative_amount) for v in pending] == [(1, 30), (2, 7)]
    ledger.mark_redeemed(pending[:1], "0xabc")
    assert [(v.channel_id, v.cumulative_amount) for v in ledger.unredeemed(DOMAIN)] == [(2, 7)]
    ledger.record_received(SIGNER.sign(1, 31))
    assert [(v.channel_id, v.cumulative_amount) for v in ledger.unredeemed(DOMAIN)] == [(1, 31), (2, 7)]


def test_concurrent_signers_never_record_the_same_amount_twice(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    accepted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for amount in range(1, 51):
            try:
                ledger.record_signed(SIGNER.sign(9, amount))
            except VoucherNotAboveHighest:
                continue
            with lock:
                accepted.append(amount)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == len(set(accepted))
    assert ledger.count("signed") == len(accepted)
    top = ledger.highest_signed(DOMAIN, 9)
    assert top is not None and top.cumulative_amount == 50


def test_a_with_block_closes_the_connection(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.record_signed(SIGNER.sign(3, 10))
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        ledger.count()
    with Ledger(tmp_path / "ledger.sqlite") as reopened:
        assert reopened.count("signed") == 1


async def test_an_async_with_block_closes_the_connection(tmp_path: Path) -> None:
    async with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.record_signed(SIGNER.sign(3, 10))
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        ledger.count()


def test_the_highest_voucher_is_cached_but_never_stale_across_connections(tmp_path: Path) -> None:
    # Each ledger keeps the highest voucher per channel in memory (no query per paid call); another process
    # writing the same file must still be seen at once, and the go-up rule holds across both.
    path = tmp_path / "ledger.sqlite"
    one, other = Ledger(path), Ledger(path)
    assert one.highest_signed(DOMAIN, 1) is None and other.highest_signed(DOMAIN, 1) is None
    one.record_signed(SIGNER.sign(1, 10))
    highest = other.highest_signed(DOMAIN, 1)
    assert highest is not None and highest.cumulative_amount == 10
    other.record_signed(SIGNER.sign(1, 20))
    highest = one.highest_signed(DOMAIN, 1)
    assert highest is not None and highest.cumulative_amount == 20
    with pytest.raises(VoucherNotAboveHighest):
        one.record_signed(SIGNER.sign(1, 15))
    # A write refused inside its transaction leaves the cache as the file is.
    highest = one.highest_signed(DOMAIN, 1)
    assert highest is not None and highest.cumulative_amount == 20
    one.close()
    other.close()
