"""Every party on a chain finds the same motet contracts, at CREATE2 addresses of the deployment proxy, without
sharing files; a stranger can neither wire them wrong nor take their place (docs/protocol.md, "Where the contracts
live")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from web3 import Web3
from web3.logs import DISCARD

from motet.chain import CONTRACTS_VERSION, DEPLOYMENT_PROXY, Chain, deterministic_addresses
from motet.errors import ChainError, TransactionReverted
from motet.settings import DisputeSettings, Settings

NAMES = ("AgentRegistry", "PaymentChannels", "Validation", "Reputation")


def create2(creator: str, salt: bytes, initcode: bytes) -> str:
    """EIP-1014, as docs/protocol.md writes it."""
    return Web3.to_checksum_address(
        Web3.keccak(b"\xff" + bytes.fromhex(creator[2:]) + salt + Web3.keccak(initcode))[12:]
    )


def name_salt(name: str) -> bytes:
    return bytes(Web3.keccak(text=f"motet/{name}/{CONTRACTS_VERSION}"))


@pytest.fixture(scope="module")
def embedded() -> Chain:
    chain = Chain.embedded()
    for name in NAMES:
        chain.contract(name)
    return chain


@pytest.fixture
def fresh(embedded: Chain) -> Iterator[Chain]:
    """The module's chain, returned to its state after the test."""
    snapshot = embedded.snapshot()
    yield embedded
    embedded.revert(snapshot)


def test_the_addresses_follow_the_create2_formula_of_the_docs(embedded: Chain) -> None:
    settings = embedded.settings
    from motet._build import compile_contract

    def code(name: str) -> bytes:
        return compile_contract(name, settings.cache_dir).bytecode

    def blueprint(name: str) -> bytes:  # ERC-5202: a 10-byte deploy preamble, then 0xFE7100 and the init code
        body = b"\xfe\x71\x00" + code(name)
        return b"\x61" + len(body).to_bytes(2, "big") + bytes.fromhex("3d81600a3d39f3") + body

    blueprints = [create2(DEPLOYMENT_PROXY, name_salt(n), blueprint(n)) for n in NAMES[:3]]
    deployer = create2(
        DEPLOYMENT_PROXY, name_salt("Deployer"), code("Deployer") + encode(["address"] * 3, blueprints)
    )
    d = settings.disputes
    disputes = [
        d.bond, d.slash_bps, d.reward_bps, d.validator_fee, d.validators_per_dispute, d.no_reveal_bps,
        d.minority_bps, d.min_validator_stake, d.commit_window, d.reveal_window,
    ]  # fmt: skip
    arguments = [settings.unbonding_delay, settings.challenge_period, *disputes]
    settings_hash = Web3.keccak(encode(["uint256"] * 12, arguments))

    def created(name: str, types: list[str], args: list[Any]) -> str:
        return create2(
            deployer, bytes(Web3.keccak(name_salt(name) + settings_hash)), code(name) + encode(types, args)
        )

    registry = created("AgentRegistry", ["uint256"], [settings.unbonding_delay])
    channels = created("PaymentChannels", ["uint256", "address"], [settings.challenge_period, registry])
    validation = created(
        "Validation", ["address", "address"] + ["uint256"] * 10, [registry, channels, *disputes]
    )
    reputation = create2(
        DEPLOYMENT_PROXY,
        name_salt("Reputation"),
        code("Reputation") + encode(["address"] * 2, [registry, channels]),
    )
    expected = {
        "AgentRegistry": registry,
        "PaymentChannels": channels,
        "Validation": validation,
        "Reputation": reputation,
        "Deployer": deployer,
    }
    assert deterministic_addresses(settings) == expected
    assert {name: embedded.contract(name).address for name in NAMES} == {n: expected[n] for n in NAMES}
    # The registry names its validation contract, which reads this registry and these channels.
    assert embedded.contract("AgentRegistry").functions.validation().call() == validation
    assert embedded.contract("Validation").functions.CHANNELS().call() == channels
    # Other settings, other addresses (all four: the registry's salt covers every setting).
    other = deterministic_addresses(replace(settings, disputes=DisputeSettings(validator_fee=0)))
    assert all(other[name] != expected[name] for name in NAMES) and other["Deployer"] == deployer


def test_the_blueprint_init_code_is_what_vyper_makes(embedded: Chain) -> None:
    from vyper.compiler import compile_code

    from motet._build import CONTRACTS, compile_contract

    path = CONTRACTS["Deployer"]
    made = compile_code(path.read_text(), contract_path=path, output_formats=["blueprint_bytecode"])
    assert compile_contract("Deployer", embedded.settings.cache_dir).blueprint_initcode == bytes.fromhex(
        made["blueprint_bytecode"].removeprefix("0x")
    )


def test_no_stranger_can_name_another_slasher(fresh: Chain) -> None:
    stranger = fresh.accounts[7]
    registry = fresh.contract("AgentRegistry")
    genuine = fresh.contract("Validation").address
    # A look-alike validation contract, bound to the genuine registry and channels, with the same settings.
    d = fresh.settings.disputes
    fake = fresh.deploy(
        "Validation",
        registry.address,
        fresh.contract("PaymentChannels").address,
        *(d.bond, d.slash_bps, d.reward_bps, d.validator_fee, d.validators_per_dispute, d.no_reveal_bps),
        *(d.minority_bps, d.min_validator_stake, d.commit_window, d.reveal_window),
        sender=stranger,
    )
    for sender in (stranger, fresh.accounts[0]):  # the account that created the contracts is no owner either
        with pytest.raises(TransactionReverted, match="ownable: caller is not the owner"):
            fresh.send(registry.functions.set_validation(fake.address), sender=sender)
    # Calling the Deployer again with motet's settings creates nothing: the addresses are taken.
    deployer = fresh.at("Deployer", deterministic_addresses(fresh.settings)["Deployer"])
    with pytest.raises(TransactionReverted):
        fresh.send(deployer.functions.deploy(*fresh._layout().deploy_args), sender=stranger)
    assert registry.functions.validation().call() == genuine
    with pytest.raises(ChainError, match=r"names 0x.* as its slasher, not this contract"):
        Chain(fresh.w3, fresh.accounts, kind="embedded", settings=fresh.settings).use(
            "Validation", fake.address
        )


def test_a_stranger_who_creates_first_creates_motets_contracts(fresh: Chain, tmp_path: Path) -> None:
    # The stranger runs the Deployer with motet's settings before motet does (a front-run, on settings no one used
    # yet): what it creates is exactly what motet would have, and the stranger holds no power over it.
    settings = Settings(home=tmp_path, challenge_period=123)
    stranger = fresh.accounts[8]
    theirs = Chain(fresh.w3, [stranger], kind="embedded", settings=settings)
    theirs.contract("PaymentChannels")
    created_by_stranger = {name: theirs.contract(name).address for name in NAMES}
    ours = Chain(fresh.w3, fresh.accounts, kind="embedded", settings=settings)
    block = fresh.w3.eth.block_number
    assert {name: ours.contract(name).address for name in NAMES} == created_by_stranger
    assert fresh.w3.eth.block_number == block  # found, nothing created
    assert created_by_stranger == {n: deterministic_addresses(settings)[n] for n in NAMES}
    with pytest.raises(TransactionReverted, match="ownable: caller is not the owner"):
        fresh.send(ours.contract("AgentRegistry").functions.set_validation(stranger.address), sender=stranger)


def test_a_look_alike_registry_elsewhere_is_not_found_only_named(fresh: Chain, tmp_path: Path) -> None:
    # A stranger deploys motet's code with motet's settings by hand and wires its own slasher: a valid set, but not
    # at motet's addresses, so nobody finds it unless they name it.
    stranger = fresh.accounts[7]
    d = fresh.settings.disputes
    registry = fresh.deploy("AgentRegistry", fresh.settings.unbonding_delay, sender=stranger)
    channels = fresh.deploy(
        "PaymentChannels", fresh.settings.challenge_period, registry.address, sender=stranger
    )
    validation = fresh.deploy(
        "Validation",
        registry.address,
        channels.address,
        *(d.bond, d.slash_bps, d.reward_bps, d.validator_fee, d.validators_per_dispute, d.no_reveal_bps),
        *(d.minority_bps, d.min_validator_stake, d.commit_window, d.reveal_window),
        sender=stranger,
    )
    bare = Chain(fresh.w3, fresh.accounts, kind="embedded", settings=fresh.settings)
    assert (
        bare.contract("AgentRegistry").address == fresh.contract("AgentRegistry").address != registry.address
    )
    # Named, it is used, and the rest of the set is found through it; without a slasher, the channels are not.
    named = replace(fresh.settings, home=tmp_path, contracts={"AgentRegistry": registry.address})
    unwired = Chain(fresh.w3, fresh.accounts, kind="embedded", settings=named)
    with pytest.raises(
        ChainError, match=f"the agent registry at {registry.address} names no validation contract"
    ):
        unwired.contract("PaymentChannels")
    fresh.send(registry.functions.set_validation(validation.address), sender=stranger)
    pointed = Chain(fresh.w3, fresh.accounts, kind="embedded", settings=named)
    assert pointed.contract("PaymentChannels").address == channels.address
    assert pointed.contract("Validation").address == validation.address


@pytest.mark.anvil
def test_two_homes_on_one_anvil_find_the_same_contracts(anvil_chain: Chain, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "agent", cache_dir=anvil_chain.settings.cache_dir, challenge_period=4321
    )
    payer_settings = replace(settings, home=tmp_path / "payer")
    key = "0x" + bytes(anvil_chain.accounts[4].key).hex()
    other_key = "0x" + bytes(anvil_chain.accounts[5].key).hex()
    agent = Chain.connect(anvil_chain.url, key, settings=settings)
    registry = agent.contract("AgentRegistry")
    tx = agent.send(
        registry.functions.register(
            "data:,agent", agent.accounts[0].address, "0x" + "00" * 20, 5, [b"\x01" * 32]
        ),
        value=10**15,
    )
    (event,) = registry.events.AgentRegistered().process_receipt(tx, errors=DISCARD)
    payer = Chain.connect(anvil_chain.url, other_key, settings=payer_settings)
    seen = payer.contract("AgentRegistry")
    assert seen.address == registry.address
    assert seen.functions.tokenURI(event["args"]["agent_id"]).call() == "data:,agent"
    assert {n: payer.contract(n).address for n in NAMES} == {n: agent.contract(n).address for n in NAMES}
    # The same addresses as on the embedded chain (another chain id): they depend on the code and settings only.
    assert {n: payer.contract(n).address for n in NAMES} == {
        n: deterministic_addresses(settings)[n] for n in NAMES
    }
    assert not list((tmp_path / "agent").glob("*.json")) and not list((tmp_path / "payer").glob("*.json"))


@pytest.mark.anvil
def test_foreign_code_at_the_address_or_no_proxy_is_named(anvil_chain: Chain, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, cache_dir=anvil_chain.settings.cache_dir, challenge_period=5678)
    key = "0x" + bytes(anvil_chain.accounts[6].key).hex()
    address = deterministic_addresses(settings)["AgentRegistry"]
    snapshot = anvil_chain.snapshot()
    try:
        anvil_chain.w3.provider.make_request("anvil_setCode", [address, "0x6001600055"])  # type: ignore[arg-type]
        with pytest.raises(ChainError) as info:
            Chain.connect(anvil_chain.url, key, settings=settings).contract("PaymentChannels")
        message = str(info.value)
        assert f"motet's AgentRegistry for these settings lives at {address}" in message
        assert f"the code at {address} is not motet's AgentRegistry" in message
        assert "settings.contracts (--registry and --channels on the command line)" in message

        for method, value in (
            ("anvil_setCode", "0x"),
            ("anvil_setNonce", "0x0"),
        ):  # a chain without the proxy
            anvil_chain.w3.provider.make_request(method, [DEPLOYMENT_PROXY, value])  # type: ignore[arg-type]
        node = Chain.connect(anvil_chain.url, key, settings=replace(settings, challenge_period=5679))
        with pytest.raises(ChainError, match=f"no deterministic-deployment proxy at {DEPLOYMENT_PROXY}"):
            node.contract("AgentRegistry")
        node.install_deployment_proxy()  # its presigned transaction, as on a chain that lacks it
        assert (
            node.contract("AgentRegistry").address == deterministic_addresses(node.settings)["AgentRegistry"]
        )
    finally:
        anvil_chain.revert(snapshot)


def test_the_protocol_docs_code_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    section = text[text.index("## Where the contracts live") :]
    section = section[: section.index("\n## ", 1)]
    blocks = section.split("```python\n")[1:]
    assert blocks
    for block in blocks:
        exec(compile(block.split("```")[0], "docs/protocol.md", "exec"), {})  # the docs' own code
