"""The chain layer: backends, finding motet's contracts, and errors that name the problem."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from eth_account import Account

from motet.chain import Chain
from motet.errors import (
    AccountError,
    ChainConnectionError,
    ChainError,
    InsufficientFunds,
    TransactionReverted,
)
from motet.settings import Settings


def test_embedded_chain_has_funded_accounts_and_deploys_once(chain: Chain) -> None:
    assert len(chain.accounts) == 10
    assert all(chain.balance(a.address) > 10**18 for a in chain.accounts)
    first = chain.contract("PaymentChannels")
    assert chain.contract("PaymentChannels") is first
    assert chain.w3.eth.get_code(first.address) != b""


def test_compiled_contracts_are_cached_by_source_hash(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache")
    Chain.embedded(settings=settings).deploy(
        "AgentRegistry", settings.unbonding_delay
    )  # one compile, not five
    cached = list((tmp_path / "cache" / "vyper").glob("AgentRegistry-*.json"))
    assert len(cached) == 1
    assert json.loads(cached[0].read_text())["abi"]


def test_missing_rpc_url_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTET_RPC_URL", raising=False)
    with pytest.raises(ChainConnectionError, match="MOTET_RPC_URL"):
        Chain.connect()


def test_malformed_rpc_url_is_named() -> None:
    with pytest.raises(ChainConnectionError, match="'localhost:8545' is not an http"):
        Chain.connect("localhost:8545", key="0x" + "11" * 32)


def test_unreachable_rpc_url_is_named() -> None:
    from motet._anvil import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainConnectionError, match=f"no JSON-RPC node answers at {url}"):
        Chain.connect(url, key="0x" + "11" * 32, timeout=2)


def test_bad_or_missing_key_is_named(anvil_chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MOTET_PRIVATE_KEY", "MOTET_KEYSTORE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AccountError, match="no signing key"):
        Chain.connect(anvil_chain.url)
    with pytest.raises(AccountError, match="32-byte hex"):
        Chain.connect(anvil_chain.url, key="0x1234")


def test_unfunded_account_names_the_address(chain: Chain) -> None:
    contract = chain.contract("PaymentChannels")
    poor = Account.create()
    with pytest.raises(InsufficientFunds, match=f"account {poor.address} has 0 wei"):
        chain.send(
            contract.functions.open(chain.accounts[1].address, "0x" + "00" * 20, 0), sender=poor, value=5
        )
    with pytest.raises(InsufficientFunds, match=poor.address):
        chain.transfer(chain.accounts[1].address, 1, sender=poor)


def test_revert_reason_is_the_contract_string(chain: Chain) -> None:
    contract = chain.contract("PaymentChannels")
    with pytest.raises(TransactionReverted) as info:
        chain.send(contract.functions.close(42))
    assert info.value.reason == "channels: unknown channel"
    assert "close reverted: channels: unknown channel" in str(info.value)


def test_connect_finds_the_contracts_again_without_a_file(anvil_chain: Chain, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, cache_dir=anvil_chain.settings.cache_dir)
    key = "0x" + bytes(anvil_chain.accounts[5].key).hex()
    first = Chain.connect(anvil_chain.url, key, settings=settings).contract("AgentRegistry")
    block = anvil_chain.w3.eth.block_number
    again = Chain.connect(anvil_chain.url, key, settings=settings).contract("AgentRegistry")
    assert again.address == first.address  # found at its deterministic address, not redeployed
    assert anvil_chain.w3.eth.block_number == block
    assert not (tmp_path / "deployments.json").exists()


def test_a_deployment_with_other_immutables_is_not_used(anvil_chain: Chain, tmp_path: Path) -> None:
    # Same code, other immutables: a deployment made with another challenge period is not motet's contract
    # for these settings, so it is neither reused nor trusted.
    key = "0x" + bytes(anvil_chain.accounts[5].key).hex()
    hour = Settings(home=tmp_path, cache_dir=anvil_chain.settings.cache_dir)
    minute = Settings(home=tmp_path, cache_dir=anvil_chain.settings.cache_dir, challenge_period=60)
    first = Chain.connect(anvil_chain.url, key, settings=hour).contract("PaymentChannels")
    again = Chain.connect(anvil_chain.url, key, settings=minute).contract("PaymentChannels")
    assert again.address != first.address
    assert again.functions.CHALLENGE_PERIOD().call() == 60
    with pytest.raises(ChainError, match="its challenge period is 3600 s, but motet's is 60 s"):
        Chain.connect(anvil_chain.url, key, settings=minute).use("PaymentChannels", first.address)


def test_anvil_stops_cleanly() -> None:
    node = Chain.anvil()
    process = node._process
    assert process is not None and process.poll() is None
    node.close()
    assert process.poll() is not None


async def test_one_account_sends_from_many_threads_without_reusing_a_nonce(anvil_chain: Chain) -> None:
    # The gateway and the agent server send a node's transactions from worker threads (`Chain.off_loop`):
    # one account's transactions, sent at once, must each get their own nonce.
    sender, receiver = anvil_chain.accounts[6], anvil_chain.accounts[7].address
    before = anvil_chain.balance(receiver)
    receipts = await asyncio.gather(
        *(anvil_chain.off_loop(anvil_chain.transfer, receiver, 1_000 + i, sender=sender) for i in range(8))
    )
    assert all(receipt["status"] == 1 for receipt in receipts)
    assert len({receipt["transactionHash"] for receipt in receipts}) == 8
    assert anvil_chain.balance(receiver) == before + sum(1_000 + i for i in range(8))
