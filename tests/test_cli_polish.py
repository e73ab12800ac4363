"""The small things a user meets first: `motet --version`, counts that read right ("1 call"), channel ids
printed one way (0x-hex) everywhere, and one-line reprs with units for records, channels, vouchers, receipts and
reports."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import motet
from motet import composer
from motet.demo._progress import _log_line
from motet.payments import Amount, ChannelDomain, ChannelState, ReceiptDomain, ReceiptSigner, VoucherSigner
from motet.registry import AgentRecord
from motet.units import ETH, GWEI, plural

KEY = "0x" + "01" * 32
PAYER = "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1"  # KEY's address
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.slow  # the command line's imports take 4 s of CPU
def test_motet_version_prints_the_installed_version() -> None:
    both = subprocess.run(
        [sys.executable, "-c", "from motet.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 0, both.stderr
    assert both.stdout == f"motet {version('motet')}\n"


def test_counts_read_right() -> None:
    assert [plural(n, "call") for n in (0, 1, 2, 1_200)] == ["0 calls", "1 call", "2 calls", "1,200 calls"]
    assert plural(1, "capability", "capabilities") == "1 capability"
    assert plural(3, "capability", "capabilities") == "3 capabilities"
    settled = _log_line(composer.Settled(("0xab",), 5 * GWEI, 90_000, 1))
    assert settled == "[bold]settled[/] 5 gwei for 1 call in 1 tx, 90,000 gas"


def test_channel_ids_are_printed_as_hex_in_every_message() -> None:
    """A message that names a channel by a variable prints it with hex(): `channel 0x3`, never `channel 3`."""
    decimal = re.compile(r"[Cc]hannel \{(?!hex\()[^}]*channel[^}]*\}")
    found = [
        f"{path.relative_to(Path(motet.__file__).parent)}:{number}: {line.strip()}"
        for path in sorted(Path(motet.__file__).parent.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if decimal.search(line)
    ]
    assert found == []


def test_reprs_are_one_line_with_units() -> None:
    record = AgentRecord(
        agent_id=3,
        owner=PAYER,
        payout=PAYER,
        asset="0x" + "00" * 20,
        price=40 * GWEI,
        stake=ETH,
        unbonding=ETH // 4,
        unbonding_until=0,
        active=True,
        agent_uri="data:,{}",
        capability_hashes=(bytes(32), bytes(31) + b"\x01"),
        slashes=1,
        slashed=ETH // 10,
    )
    assert repr(record) == (
        "AgentRecord(#3 payout 0x1a64…14F1, price 40 gwei, stake 1 ETH (0.25 ETH unbonding), active, "
        "2 capabilities, 1 slash (0.1 ETH))"
    )
    state = ChannelState(3, PAYER, CONTRACT, "0x" + "00" * 20, Amount(10 * GWEI), Amount(4 * GWEI), 0, False)
    assert repr(state) == (
        f"ChannelState(0x3 from {PAYER} to {CONTRACT}: deposit 10 gwei, redeemed 4 gwei, open)"
    )
    voucher = VoucherSigner(KEY, ChannelDomain(chain_id=31337, contract=CONTRACT)).sign(3, 25 * GWEI)
    assert repr(voucher) == "Voucher(channel 0x3, 25 gwei in all, chain 31337, channels 0x5FbD…0aa3)"
    receipt = ReceiptSigner(KEY, ReceiptDomain(chain_id=31337, contract=CONTRACT)).sign(
        bytes.fromhex("12" * 32),
        bytes.fromhex("34" * 32),
        price=5 * GWEI,
        channel_id=3,
        seq=2,
        model_ref=bytes(32),
    )
    assert repr(receipt) == (
        "Receipt(channel 0x3 call 2, price 5 gwei, request 0x12121212…, response 0x34343434…, model 0x00000000…, "
        "chain 31337)"
    )
    report = composer.RunReport("3f2a9c41d0e6", {}, spent=60 * GWEI, budget=10**15, status="failed")
    assert (
        repr(report)
        == "RunReport(run 3f2a9c41…, failed, 0 nodes, spent 60 gwei of a 0.001 ETH budget, settled 0 wei)"
    )
