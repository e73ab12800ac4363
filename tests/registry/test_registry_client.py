"""`Registry` on the embedded chain: validation before sending, reads, search and the SQLite index."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from motet.chain import Chain
from motet.errors import (
    AgentNotFound,
    DuplicateCapability,
    InvalidCapabilityName,
    InvalidRegistryArgument,
    NotAgentOwner,
    TransactionReverted,
)
from motet.registry import (
    MAX_URI_BYTES,
    NATIVE_ASSET,
    AgentRecord,
    Registry,
    capability_hash,
    capability_hashes,
    validate_capability_name,
)
from motet.registry._client import DEFAULT_CONFIRMATIONS
from motet.settings import Settings

ETH = 10**18


def ids(records: list[AgentRecord]) -> list[int]:
    return [record.agent_id for record in records]


@pytest.fixture
def three_agents(registry: Registry) -> tuple[int, int, int]:
    """Three agents: (cheap, low stake), (cheap, high stake), (dear, highest stake)."""
    cheap = registry.register("https://a.example/cheap.json", ["summarize", "translate"], 100, stake=1 * ETH)
    staked = registry.register("https://a.example/staked.json", ["summarize"], 100, stake=5 * ETH)
    dear = registry.register("https://a.example/dear.json", ["summarize", "classify"], 900, stake=9 * ETH)
    return cheap, staked, dear


# -- capability names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["summarize", "text.summarize", "a", "x_1.y2.z_", "a" * 64])
def test_valid_capability_names_hash_to_keccak_of_their_utf8(name: str) -> None:
    assert validate_capability_name(name) == name
    assert capability_hash(name) == bytes(Web3.keccak(text=name))


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("a" * 65, "65 characters, at most 64"),
        ("Summarize", "lower-case"),
        ("1summarize", "starting with a letter"),
        ("text..summarize", "dot-separated"),
        (".summarize", "dot-separated"),
        ("summarize.", "dot-separated"),
        ("text.2x", "starting with a letter"),
        ("sum-marize", "a-z, 0-9 and _"),
        ("sum marize", "a-z, 0-9 and _"),
        ("summarize\n", "a-z, 0-9 and _"),
        ("résumé", "a-z, 0-9 and _"),
    ],
)
def test_invalid_capability_names_are_rejected_naming_the_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidCapabilityName, match=re.escape(rule)) as caught:
        capability_hash(name)
    assert caught.value.name == name
    assert isinstance(caught.value, ValueError)


def test_capability_lists_reject_duplicates_counts_and_bare_strings() -> None:
    with pytest.raises(DuplicateCapability, match="'summarize' is listed more than once"):
        capability_hashes(["summarize", "translate", "summarize"])
    with pytest.raises(InvalidRegistryArgument, match="at least one capability"):
        capability_hashes([])
    with pytest.raises(InvalidRegistryArgument, match="17 given, at most 16"):
        capability_hashes([f"c{i}" for i in range(17)])
    with pytest.raises(InvalidRegistryArgument, match="pass a list of names"):
        capability_hashes("summarize")
    assert len(capability_hashes([f"c{i}" for i in range(16)])) == 16


# -- validation before sending --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "capabilities", "price", "match"),
    [
        ("", ["summarize"], 1, "URI of the registration file is empty"),
        ("data:," + "é" * (MAX_URI_BYTES // 2), ["summarize"], 1, "8198 bytes, at most 8192"),
        ("https://a.example", [], 1, "at least one capability"),
        ("https://a.example", ["summarize", "summarize"], 1, "listed more than once"),
        ("https://a.example", ["Summarize"], 1, "invalid capability name 'Summarize'"),
        ("https://a.example", ["summarize"], -1, "invalid price -1"),
        ("https://a.example", ["summarize"], 2**256, "between 0 and 2**256 - 1"),
    ],
    ids=[
        "empty-uri",
        "uri-too-long",
        "no-capabilities",
        "duplicate",
        "bad-name",
        "negative-price",
        "huge-price",
    ],
)
def test_register_rejects_bad_input_before_sending(
    registry_chain: Chain, registry: Registry, uri: str, capabilities: list[str], price: int, match: str
) -> None:
    block = registry_chain.w3.eth.block_number
    with pytest.raises((InvalidRegistryArgument, InvalidCapabilityName), match=re.escape(match)):
        registry.register(uri, capabilities, price)
    assert registry_chain.w3.eth.block_number == block  # nothing was sent
    assert registry.count() == 0


def test_register_rejects_a_zero_or_malformed_payout(registry_chain: Chain, registry: Registry) -> None:
    with pytest.raises(InvalidRegistryArgument, match="zero address"):
        registry.register("https://a.example", ["summarize"], 1, payout="0x" + "00" * 20)
    with pytest.raises(InvalidRegistryArgument, match="must be a hex address"):
        registry.register("https://a.example", ["summarize"], 1, payout="0x1234")
    assert registry.count() == 0


def test_the_longest_uri_registers(registry: Registry) -> None:
    uri = "data:," + "x" * (MAX_URI_BYTES - len("data:,"))
    agent_id = registry.register(uri, ["summarize"], 1)
    assert registry.get(agent_id).agent_uri == uri


# -- reading from the chain -----------------------------------------------------------------------------


def test_register_and_get(registry_chain: Chain, registry: Registry) -> None:
    owner, payout, asset = registry_chain.accounts[1], registry_chain.accounts[2], registry_chain.accounts[3]
    agent_id = registry.register(
        "https://a.example/x.json",
        ["text.summarize", "translate"],
        250,
        payout=payout.address,
        asset=asset.address,
        stake=7,
        owner=owner,
    )
    assert registry.get(agent_id) == AgentRecord(
        agent_id=1,
        owner=owner.address,
        payout=payout.address,
        asset=asset.address,
        price=250,
        stake=7,
        unbonding=0,
        unbonding_until=0,
        active=True,
        agent_uri="https://a.example/x.json",
        capability_hashes=(capability_hash("text.summarize"), capability_hash("translate")),
    )
    # Defaults: payout is the owner (the registry's default account), the price is in the native coin.
    second = registry.get(registry.register("https://a.example/y.json", ["summarize"], 1))
    assert (second.agent_id, second.owner, second.payout, second.asset) == (
        2,
        registry.owner.address,
        registry.owner.address,
        NATIVE_ASSET,
    )


def test_an_unknown_agent_id_names_the_valid_range(registry: Registry) -> None:
    with pytest.raises(AgentNotFound, match=r"no agent with id 1 .*no agent is registered yet"):
        registry.get(1)
    registry.register("https://a.example", ["summarize"], 1)
    registry.register("https://b.example", ["summarize"], 1)
    for bad in (0, 3, -1):
        with pytest.raises(AgentNotFound, match=rf"no agent with id {bad} .*ids run from 1 to 2") as caught:
            registry.get(bad)
        assert (caught.value.agent_id, caught.value.count) == (bad, 2)
    with pytest.raises(AgentNotFound, match="id 3"):
        registry.update(3, price=5)
    with pytest.raises(AgentNotFound, match="id 9"):
        registry.deactivate(9)


def test_a_stranger_gets_not_agent_owner_naming_the_owner(registry_chain: Chain, registry: Registry) -> None:
    agent_id = registry.register("https://a.example", ["summarize"], 1)
    stranger = registry_chain.accounts[5]
    with pytest.raises(
        NotAgentOwner,
        match=f"{stranger.address} cannot manage agent 1: it is owned by {registry.owner.address}",
    ) as caught:
        registry.deactivate(agent_id, owner=stranger)
    assert isinstance(caught.value.__cause__, TransactionReverted)
    assert registry.get(agent_id).active is True


def test_stake_lifecycle(registry_chain: Chain, registry: Registry) -> None:
    agent_id = registry.register("https://a.example", ["summarize"], 1, stake=2 * ETH)
    assert registry.add_stake(agent_id, ETH) == 3 * ETH
    until = registry.request_unstake(agent_id, ETH)
    record = registry.get(agent_id)
    assert (record.stake, record.unbonding, record.bonded_stake, record.unbonding_until) == (
        3 * ETH,
        ETH,
        2 * ETH,
        until,
    )
    with pytest.raises(TransactionReverted, match="registry: stake is still unbonding"):
        registry.withdraw_stake(agent_id)
    registry_chain.set_next_timestamp(until)
    before = registry_chain.balance(registry.owner.address)

    assert registry.withdraw_stake(agent_id) == ETH

    gained = registry_chain.balance(registry.owner.address) - before
    assert ETH - 10**16 < gained < ETH  # the stake, less the gas of the withdrawal
    assert registry.get(agent_id).stake == 2 * ETH
    with pytest.raises(InvalidRegistryArgument, match="between 1 and"):
        registry.add_stake(agent_id, 0)


def test_update_keeps_what_is_not_given(registry_chain: Chain, registry: Registry) -> None:
    asset = registry_chain.accounts[4].address
    agent_id = registry.register("https://a.example", ["summarize", "translate"], 10, asset=asset)
    registry.update(agent_id, price=20)
    record = registry.get(agent_id)
    assert (record.price, record.agent_uri, record.asset) == (20, "https://a.example", asset)
    assert record.capability_hashes == (capability_hash("summarize"), capability_hash("translate"))
    registry.update(agent_id, asset=NATIVE_ASSET)
    assert registry.get(agent_id).asset == NATIVE_ASSET
    with pytest.raises(InvalidRegistryArgument, match="nothing to change"):
        registry.update(agent_id)


# -- search ---------------------------------------------------------------------------------------------


def test_search_filters_and_orders(registry: Registry, three_agents: tuple[int, int, int]) -> None:
    cheap, staked, dear = three_agents
    # Price ascending, then bonded stake descending, then id.
    assert ids(registry.search("summarize")) == [staked, cheap, dear]
    assert ids(registry.search("translate")) == [cheap]
    assert ids(registry.search("classify")) == [dear]
    assert ids(registry.search("unknown.capability")) == []
    assert ids(registry.search("summarize", max_price=100)) == [staked, cheap]
    assert ids(registry.search("summarize", max_price=99)) == []
    assert ids(registry.search("summarize", min_stake=5 * ETH)) == [staked, dear]
    assert ids(registry.search(max_price=900, min_stake=5 * ETH + 1)) == [dear]
    assert ids(registry.search()) == [staked, cheap, dear]


def test_search_returns_the_same_records_as_the_chain(
    registry: Registry, three_agents: tuple[int, int, int]
) -> None:
    cheap, staked, dear = three_agents
    assert registry.search("summarize") == [registry.get(staked), registry.get(cheap), registry.get(dear)]


def test_search_without_refresh_reads_the_index_as_it_is(registry: Registry) -> None:
    agent_id = registry.register("https://a.example", ["summarize"], 1)
    assert registry.search(refresh=False) == []
    assert registry.sync() == 3
    assert ids(registry.search(refresh=False)) == [agent_id]


def test_search_rejects_a_bad_capability_name(registry: Registry) -> None:
    with pytest.raises(InvalidCapabilityName, match="lower-case dot-separated words"):
        registry.search("Text Summarize")
    with pytest.raises(InvalidRegistryArgument, match="max_price"):
        registry.search("summarize", max_price=-1)


def test_prices_beyond_64_bits_sort_as_numbers(registry: Registry) -> None:
    big = registry.register("https://a.example/big", ["summarize"], 2**70)
    small = registry.register("https://a.example/small", ["summarize"], 2**63 + 1)
    assert ids(registry.search("summarize")) == [small, big]
    assert ids(registry.search("summarize", max_price=2**64)) == [small]


def test_deactivate_hides_from_search(registry: Registry, three_agents: tuple[int, int, int]) -> None:
    cheap, staked, dear = three_agents
    registry.deactivate(staked)
    assert ids(registry.search("summarize")) == [cheap, dear]
    assert ids(registry.search("summarize", include_inactive=True)) == [staked, cheap, dear]
    assert registry.get(staked).active is False
    registry.activate(staked)
    assert ids(registry.search("summarize")) == [staked, cheap, dear]


def test_update_replaces_capabilities_in_search(
    registry: Registry, three_agents: tuple[int, int, int]
) -> None:
    cheap, staked, dear = three_agents
    assert ids(registry.search("summarize")) == [staked, cheap, dear]
    registry.update(cheap, capabilities=["text.translate"], price=5)
    assert ids(registry.search("summarize")) == [staked, dear]
    assert ids(registry.search("translate")) == []
    assert ids(registry.search("text.translate")) == [cheap]
    assert ids(registry.search()) == [cheap, staked, dear]  # now the cheapest
    assert registry.search("text.translate")[0].capability_hashes == (capability_hash("text.translate"),)


def test_min_stake_counts_only_bonded_stake(registry: Registry, three_agents: tuple[int, int, int]) -> None:
    cheap, staked, dear = three_agents
    registry.request_unstake(dear, 8 * ETH)
    assert ids(registry.search("summarize", min_stake=5 * ETH)) == [staked]
    # Bonded stake also breaks the price tie: staked (5) before cheap (1), and now cheap (1) ties dear (1).
    registry.update(dear, price=100)
    assert ids(registry.search("summarize")) == [staked, cheap, dear]
    (record,) = registry.search("classify")
    assert (record.stake, record.unbonding, record.bonded_stake) == (9 * ETH, 8 * ETH, ETH)


def test_search_follows_nft_transfers(registry_chain: Chain, registry: Registry) -> None:
    agent_id = registry.register("https://a.example", ["summarize"], 1)
    old, new = registry.owner, registry_chain.accounts[6]
    registry_chain.send(
        registry.contract.functions.transferFrom(old.address, new.address, agent_id), sender=old
    )
    (record,) = registry.search("summarize")
    assert record.owner == new.address
    registry.update(agent_id, price=2, owner=new)
    with pytest.raises(NotAgentOwner):
        registry.update(agent_id, price=3, owner=old)
    assert registry.search("summarize")[0].price == 2


# -- the index ------------------------------------------------------------------------------------------


def test_sync_is_incremental_across_registries_on_one_file(registry_chain: Chain, index_file: Path) -> None:
    with Registry(registry_chain, index_path=index_file) as first:
        first.register("https://a.example", ["summarize", "translate"], 1, stake=3)
        # Transfer (mint) + AgentRegistered + 2 CapabilityAdded + StakeChanged
        assert first.sync() == 5
        assert first.sync() == 0
        first.register("https://b.example", ["summarize"], 2)
    assert index_file.is_file()

    with Registry(registry_chain, index_path=index_file) as second:
        # Only the second registration is new: Transfer + AgentRegistered + CapabilityAdded.
        assert second.sync() == 3
        assert ids(second.search("summarize")) == [1, 2]
        second.deactivate(1)
        assert second.sync() == 1
        assert second.sync() == 0


def test_sync_in_small_chunks_builds_the_same_index(
    registry_chain: Chain, registry: Registry, three_agents: tuple[int, int, int]
) -> None:
    registry.update(three_agents[0], capabilities=["classify"])
    registry.deactivate(three_agents[2])
    with Registry(registry_chain, chunk_blocks=1) as chunked:
        # 3 registrations (5 + 4 + 5 events), an update (1 + 2 removed + 1 added), a deactivation.
        assert chunked.sync() == registry.sync() == 19
        assert chunked.search(include_inactive=True) == registry.search(include_inactive=True)
        assert len(chunked.search(include_inactive=True)) == 3


def test_an_index_of_another_chain_is_rebuilt(registry_chain: Chain, index_file: Path) -> None:
    with Registry(registry_chain, index_path=index_file) as on_first:
        on_first.register("https://first.example", ["summarize"], 1)
        on_first.register("https://first.example/2", ["summarize"], 1)
        assert len(on_first.search("summarize")) == 2

    # A new embedded chain has the same chain id and contract address: only the block hashes differ.
    other = Chain.embedded(settings=registry_chain.settings)
    with Registry(other, index_path=index_file) as on_other:
        assert on_other.contract.address == registry_chain.contract("AgentRegistry").address
        on_other.register("https://other.example", ["translate"], 1)
        assert on_other.search("summarize") == []
        assert [r.agent_uri for r in on_other.search("translate")] == ["https://other.example"]


def test_an_index_of_another_contract_is_rebuilt(registry_chain: Chain, index_file: Path) -> None:
    with Registry(registry_chain, index_path=index_file) as default:
        default.register("https://a.example", ["summarize"], 1)
        assert len(default.search("summarize")) == 1

    redeployed = registry_chain.deploy("AgentRegistry", registry_chain.settings.unbonding_delay)
    with Registry(registry_chain, index_path=index_file, contract=redeployed) as fresh:
        assert fresh.search("summarize") == []
        fresh.register("https://b.example", ["translate"], 1)
        assert [r.agent_uri for r in fresh.search()] == ["https://b.example"]

    with Registry(registry_chain, index_path=index_file) as back:
        assert [r.agent_uri for r in back.search()] == ["https://a.example"]


def test_a_rolled_back_chain_rebuilds_the_index(registry_chain: Chain, registry: Registry) -> None:
    snapshot = registry_chain.snapshot()
    registry.register("https://gone.example", ["summarize"], 1)
    assert len(registry.search("summarize")) == 1
    registry_chain.revert(snapshot)
    registry.register("https://kept.example", ["translate"], 1)
    assert registry.search("summarize") == []
    assert [r.agent_uri for r in registry.search()] == ["https://kept.example"]


def test_two_writers_on_one_index_never_apply_a_block_twice(registry_chain: Chain, index_file: Path) -> None:
    with (
        Registry(registry_chain, index_path=index_file) as first,
        Registry(registry_chain, index_path=index_file) as second,
    ):
        first.register("https://a.example", ["summarize", "translate"], 1)
        applied = first.sync()
        assert applied == 4
        # `second` was opened before and has never synced, yet it starts from where `first` stopped.
        assert second.sync() == 0
        # A chunk computed from a stale position is refused as a whole.
        index = second._index
        assert index.apply([], first_block=0, last_block=index.last_block, last_block_hash="00") == 0
        (record,) = second.search("translate")
        assert record.capability_hashes == (capability_hash("summarize"), capability_hash("translate"))


# -- confirmation depth -----------------------------------------------------------------------------------


def test_the_index_waits_for_confirmations_before_showing_an_agent(registry_chain: Chain) -> None:
    assert Registry(registry_chain).confirmations == 0  # a development chain: at once
    with Registry(registry_chain, confirmations=3) as registry:
        agent_id = registry.register("https://new.example/card.json", ["summarize"], 1, stake=ETH)
        assert (
            registry.search("summarize") == []
        )  # in a block nothing is on top of yet: a reorg could undo it
        assert registry.get(agent_id).agent_uri == "https://new.example/card.json"  # the chain itself has it
        registry_chain.w3.provider.ethereum_tester.mine_blocks(2)  # type: ignore[attr-defined]
        assert registry.search("summarize") == []
        registry_chain.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
        assert ids(registry.search("summarize")) == [agent_id]


def test_confirmations_come_from_the_settings_and_default_to_twelve_off_development_chains(
    registry_chain: Chain, registry_settings: Settings
) -> None:
    deep = Chain.embedded(settings=replace(registry_settings, registry_confirmations=5))
    assert Registry(deep).confirmations == 5
    assert DEFAULT_CONFIRMATIONS == 12
    with pytest.raises(InvalidRegistryArgument, match="confirmations"):
        Registry(registry_chain, confirmations=-1)


def test_an_agent_shows_on_anvil_only_at_confirmation_depth(anvil_chain: Chain) -> None:
    with Registry(anvil_chain, confirmations=2) as registry:
        agent_id = registry.register("https://anvil.example/card.json", ["summarize"], 1, stake=ETH)
        assert agent_id not in ids(registry.search("summarize"))
        anvil_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert agent_id not in ids(registry.search("summarize"))
        anvil_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert agent_id in ids(registry.search("summarize"))
