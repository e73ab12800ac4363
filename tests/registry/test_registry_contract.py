"""AgentRegistry.vy on the embedded chain: events, exact revert strings, stake timing, NFT ownership."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from motet.chain import Chain
from motet.errors import TransactionReverted
from motet.registry import capability_hash

ZERO = "0x" + "00" * 20
URI = "data:application/json,{}"
SUMMARIZE = capability_hash("summarize")
TRANSLATE = capability_hash("translate")
CLASSIFY = capability_hash("classify")


def register(
    chain: Chain,
    registry: Contract,
    sender: LocalAccount,
    *,
    uri: str = URI,
    payout: str | None = None,
    token: str = ZERO,
    price: int = 100,
    capabilities: list[bytes] | None = None,
    stake: int = 0,
) -> tuple[int, TxReceipt]:
    receipt = chain.send(
        registry.functions.register(
            uri, payout or sender.address, token, price, [SUMMARIZE] if capabilities is None else capabilities
        ),
        sender=sender,
        value=stake,
    )
    (event,) = registry.events.AgentRegistered().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["agent_id"]), receipt


def reverts(chain: Chain, reason: str, call: Any, sender: LocalAccount, value: int = 0) -> None:
    with pytest.raises(TransactionReverted) as caught:
        chain.send(call, sender=sender, value=value)
    assert caught.value.reason == reason


def gas_paid(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


# -- registering ----------------------------------------------------------------------------------------


def test_register_emits_registered_and_one_capability_added_per_hash_as_topic(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    owner, payout = registry_chain.accounts[1], registry_chain.accounts[2]
    agent_id, receipt = register(
        registry_chain,
        registry_contract,
        owner,
        payout=payout.address,
        price=7,
        capabilities=[SUMMARIZE, TRANSLATE],
        stake=5,
    )

    assert agent_id == 1
    (registered,) = registry_contract.events.AgentRegistered().process_receipt(receipt, errors=DISCARD)
    assert dict(registered["args"]) == {
        "agent_id": 1,
        "owner": owner.address,
        "payout": payout.address,
        "token": ZERO,
        "price": 7,
        "agent_uri": URI,
    }
    added_topic = bytes(Web3.keccak(text="CapabilityAdded(uint256,bytes32)"))
    added = [log for log in receipt["logs"] if bytes(log["topics"][0]) == added_topic]
    # The raw topics, not the decoded args: clients filter eth_getLogs on topic 2.
    assert [[bytes(t) for t in log["topics"]] for log in added] == [
        [added_topic, (1).to_bytes(32, "big"), SUMMARIZE],
        [added_topic, (1).to_bytes(32, "big"), TRANSLATE],
    ]
    (staked,) = registry_contract.events.StakeChanged().process_receipt(receipt, errors=DISCARD)
    assert staked["args"]["stake"] == 5
    (minted,) = registry_contract.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert (minted["args"]["sender"], minted["args"]["receiver"]) == (ZERO, owner.address)


def test_register_records_the_agent_and_its_identity(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    owner = registry_chain.accounts[1]
    first, _ = register(registry_chain, registry_contract, owner, uri="https://a.example/1.json")
    second, _ = register(
        registry_chain,
        registry_contract,
        owner,
        uri="https://a.example/2.json",
        price=9,
        capabilities=[TRANSLATE, CLASSIFY],
        stake=11,
    )
    fns = registry_contract.functions

    assert (first, second) == (1, 2)
    assert fns.agent_count().call() == 2
    assert fns.ownerOf(second).call() == owner.address
    assert fns.balanceOf(owner.address).call() == 2
    assert fns.tokenURI(second).call() == "https://a.example/2.json"
    assert [bytes(h) for h in fns.capabilities(second).call()] == [TRANSLATE, CLASSIFY]
    assert list(fns.agents(second).call()) == [owner.address, ZERO, 9, 11, 0, 0, True]
    assert registry_chain.balance(registry_contract.address) == 11


def test_register_accepts_a_uri_of_exactly_the_maximum_length(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    uri = "data:," + "x" * (8192 - len("data:,"))
    agent_id, _ = register(registry_chain, registry_contract, registry_chain.accounts[1], uri=uri)
    assert registry_contract.functions.tokenURI(agent_id).call() == uri


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"uri": ""}, "registry: agent URI is empty"),
        ({"payout": ZERO}, "registry: payout is the zero address"),
        ({"capabilities": []}, "registry: no capabilities"),
        ({"capabilities": [SUMMARIZE, SUMMARIZE]}, "registry: duplicate capability"),
        ({"capabilities": [SUMMARIZE, TRANSLATE, CLASSIFY, SUMMARIZE]}, "registry: duplicate capability"),
        ({"capabilities": [SUMMARIZE, b"\x00" * 32]}, "registry: empty capability hash"),
    ],
    ids=[
        "empty-uri",
        "zero-payout",
        "no-capabilities",
        "adjacent-duplicate",
        "distant-duplicate",
        "empty-hash",
    ],
)
def test_register_rejects_bad_input(
    registry_chain: Chain, registry_contract: Contract, overrides: dict[str, Any], reason: str
) -> None:
    owner = registry_chain.accounts[1]
    args = {"uri": URI, "payout": owner.address, "capabilities": [SUMMARIZE]} | overrides
    call = registry_contract.functions.register(args["uri"], args["payout"], ZERO, 1, args["capabilities"])
    reverts(registry_chain, reason, call, owner)
    assert registry_contract.functions.agent_count().call() == 0


# -- who may change an agent ----------------------------------------------------------------------------


def _owner_only_calls(registry: Contract, agent_id: int) -> dict[str, tuple[Any, int]]:
    fns = registry.functions
    return {
        "update": (fns.update(agent_id, URI, ZERO[:-1] + "1", ZERO, 1, [SUMMARIZE]), 0),
        "set_active": (fns.set_active(agent_id, False), 0),
        "stake": (fns.stake(agent_id), 1),
        "request_unstake": (fns.request_unstake(agent_id, 1), 0),
        "withdraw_stake": (fns.withdraw_stake(agent_id), 0),
    }


OWNER_ONLY = ["update", "set_active", "stake", "request_unstake", "withdraw_stake"]


@pytest.mark.parametrize("function", OWNER_ONLY)
def test_owner_only_functions_reject_an_unknown_agent(
    registry_chain: Chain, registry_contract: Contract, function: str
) -> None:
    register(registry_chain, registry_contract, registry_chain.accounts[1])
    call, value = _owner_only_calls(registry_contract, 2)[function]
    reverts(registry_chain, "registry: unknown agent", call, registry_chain.accounts[1], value)


@pytest.mark.parametrize("function", OWNER_ONLY)
def test_owner_only_functions_reject_a_stranger(
    registry_chain: Chain, registry_contract: Contract, function: str
) -> None:
    owner, stranger = registry_chain.accounts[1], registry_chain.accounts[3]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=10)
    # Something is unbonding, so withdraw_stake reaches its owner check rather than an earlier one.
    registry_chain.send(registry_contract.functions.request_unstake(agent_id, 4), sender=owner)
    call, value = _owner_only_calls(registry_contract, agent_id)[function]
    reverts(registry_chain, "registry: caller is not the agent owner", call, stranger, value)
    assert list(registry_contract.functions.agents(agent_id).call())[3:5] == [10, 4]


def test_nft_transfer_moves_control_of_the_agent(registry_chain: Chain, registry_contract: Contract) -> None:
    old, new = registry_chain.accounts[1], registry_chain.accounts[2]
    agent_id, _ = register(registry_chain, registry_contract, old)
    fns = registry_contract.functions
    registry_chain.send(fns.transferFrom(old.address, new.address, agent_id), sender=old)

    assert fns.ownerOf(agent_id).call() == new.address
    registry_chain.send(
        fns.update(agent_id, "https://new.example", new.address, ZERO, 3, [TRANSLATE]), sender=new
    )
    assert fns.tokenURI(agent_id).call() == "https://new.example"
    reverts(
        registry_chain,
        "registry: caller is not the agent owner",
        fns.update(agent_id, URI, old.address, ZERO, 1, [SUMMARIZE]),
        old,
    )


def test_an_approved_operator_can_manage_the_agent(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    owner, operator = registry_chain.accounts[1], registry_chain.accounts[2]
    agent_id, _ = register(registry_chain, registry_contract, owner)
    fns = registry_contract.functions
    registry_chain.send(fns.approve(operator.address, agent_id), sender=owner)
    registry_chain.send(fns.set_active(agent_id, False), sender=operator)
    assert list(fns.agents(agent_id).call())[6] is False


# -- updating and (de)activating ------------------------------------------------------------------------


def test_update_replaces_fields_and_capabilities(registry_chain: Chain, registry_contract: Contract) -> None:
    owner, payout = registry_chain.accounts[1], registry_chain.accounts[4]
    token = registry_chain.accounts[5].address  # any address stands for an ERC-20 here
    agent_id, _ = register(registry_chain, registry_contract, owner, capabilities=[SUMMARIZE, TRANSLATE])
    fns = registry_contract.functions
    receipt = registry_chain.send(
        fns.update(agent_id, "https://b.example", payout.address, token, 42, [CLASSIFY]), sender=owner
    )

    assert list(fns.agents(agent_id).call())[:3] == [payout.address, token, 42]
    assert fns.tokenURI(agent_id).call() == "https://b.example"
    assert [bytes(h) for h in fns.capabilities(agent_id).call()] == [CLASSIFY]
    removed = registry_contract.events.CapabilityRemoved().process_receipt(receipt, errors=DISCARD)
    added = registry_contract.events.CapabilityAdded().process_receipt(receipt, errors=DISCARD)
    assert [bytes(e["args"]["capability"]) for e in removed] == [SUMMARIZE, TRANSLATE]
    assert [bytes(e["args"]["capability"]) for e in added] == [CLASSIFY]


def test_update_checks_its_input_like_register(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner)
    fns = registry_contract.functions
    reverts(
        registry_chain,
        "registry: agent URI is empty",
        fns.update(agent_id, "", owner.address, ZERO, 1, [SUMMARIZE]),
        owner,
    )
    reverts(
        registry_chain,
        "registry: duplicate capability",
        fns.update(agent_id, URI, owner.address, ZERO, 1, [TRANSLATE, TRANSLATE]),
        owner,
    )


def test_set_active_toggles_and_rejects_a_repeat(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner)
    fns = registry_contract.functions

    reverts(registry_chain, "registry: agent already in that state", fns.set_active(agent_id, True), owner)
    receipt = registry_chain.send(fns.set_active(agent_id, False), sender=owner)
    (event,) = registry_contract.events.AgentActivated().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["active"] is False
    reverts(registry_chain, "registry: agent already in that state", fns.set_active(agent_id, False), owner)
    registry_chain.send(fns.set_active(agent_id, True), sender=owner)
    assert list(fns.agents(agent_id).call())[6] is True


def test_payee_for_names_the_payout_of_an_active_agent_with_the_capability(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    owner, payout = registry_chain.accounts[1], registry_chain.accounts[2].address
    agent_id, _ = register(
        registry_chain, registry_contract, owner, payout=payout, capabilities=[SUMMARIZE, TRANSLATE]
    )
    fns = registry_contract.functions
    assert fns.payee_for(agent_id, SUMMARIZE).call() == payout
    assert fns.payee_for(agent_id, TRANSLATE).call() == payout
    assert fns.payee_for(agent_id, CLASSIFY).call() == ZERO  # a capability it does not declare
    assert fns.payee_for(agent_id + 1, SUMMARIZE).call() == ZERO  # an unknown agent
    registry_chain.send(fns.set_active(agent_id, False), sender=owner)
    assert fns.payee_for(agent_id, SUMMARIZE).call() == ZERO  # a deactivated agent


# -- stake ----------------------------------------------------------------------------------------------


def test_stake_adds_and_rejects_zero(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=3)
    fns = registry_contract.functions
    reverts(registry_chain, "registry: stake is zero", fns.stake(agent_id), owner)
    receipt = registry_chain.send(fns.stake(agent_id), sender=owner, value=4)
    (event,) = registry_contract.events.StakeChanged().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["stake"] == 7
    assert list(fns.agents(agent_id).call())[3] == 7


def test_request_unstake_bounds(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=10)
    fns = registry_contract.functions

    reverts(registry_chain, "registry: unstake amount is zero", fns.request_unstake(agent_id, 0), owner)
    reverts(
        registry_chain, "registry: unstake exceeds bonded stake", fns.request_unstake(agent_id, 11), owner
    )
    registry_chain.send(fns.request_unstake(agent_id, 6), sender=owner)
    # 4 stays bonded: a second request may take those 4 and no more.
    reverts(registry_chain, "registry: unstake exceeds bonded stake", fns.request_unstake(agent_id, 5), owner)
    registry_chain.send(fns.request_unstake(agent_id, 4), sender=owner)
    assert list(fns.agents(agent_id).call())[3:5] == [10, 10]


def test_withdraw_needs_something_unbonding(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=10)
    reverts(
        registry_chain,
        "registry: nothing is unbonding",
        registry_contract.functions.withdraw_stake(agent_id),
        owner,
    )


def test_withdraw_waits_for_the_unbonding_delay_and_pays_exactly_the_unbonded_amount(
    registry_chain: Chain, registry_contract: Contract
) -> None:
    owner = registry_chain.accounts[1]
    stake, unstake = 10**18, 3 * 10**17
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=stake)
    fns = registry_contract.functions
    receipt = registry_chain.send(fns.request_unstake(agent_id, unstake), sender=owner)
    requested_at = registry_chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    until = list(fns.agents(agent_id).call())[5]
    assert until == requested_at + registry_chain.settings.unbonding_delay

    registry_chain.set_next_timestamp(until - 1)
    assert registry_chain.w3.eth.get_block("pending")["timestamp"] == until - 1
    reverts(registry_chain, "registry: stake is still unbonding", fns.withdraw_stake(agent_id), owner)

    registry_chain.set_next_timestamp(until)
    before = registry_chain.balance(owner.address)
    receipt = registry_chain.send(fns.withdraw_stake(agent_id), sender=owner)

    assert registry_chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == until
    assert registry_chain.balance(owner.address) == before + unstake - gas_paid(receipt)
    assert list(fns.agents(agent_id).call())[3:6] == [stake - unstake, 0, 0]
    assert registry_chain.balance(registry_contract.address) == stake - unstake
    reverts(registry_chain, "registry: nothing is unbonding", fns.withdraw_stake(agent_id), owner)


def test_a_new_unstake_request_restarts_the_delay(registry_chain: Chain, registry_contract: Contract) -> None:
    owner = registry_chain.accounts[1]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=10)
    fns = registry_contract.functions
    registry_chain.send(fns.request_unstake(agent_id, 2), sender=owner)
    first_until = list(fns.agents(agent_id).call())[5]
    registry_chain.set_next_timestamp(first_until - 100)
    registry_chain.send(fns.request_unstake(agent_id, 3), sender=owner)

    assert list(fns.agents(agent_id).call())[4:6] == [5, first_until - 100 + fns.UNBONDING_DELAY().call()]
    registry_chain.set_next_timestamp(first_until)
    reverts(registry_chain, "registry: stake is still unbonding", fns.withdraw_stake(agent_id), owner)


def test_withdraw_by_an_operator_pays_the_owner(registry_chain: Chain, registry_contract: Contract) -> None:
    owner, operator = registry_chain.accounts[1], registry_chain.accounts[2]
    agent_id, _ = register(registry_chain, registry_contract, owner, stake=1000)
    fns = registry_contract.functions
    registry_chain.send(fns.setApprovalForAll(operator.address, True), sender=owner)
    registry_chain.send(fns.request_unstake(agent_id, 600), sender=operator)
    registry_chain.set_next_timestamp(list(fns.agents(agent_id).call())[5])
    owner_before, operator_before = (
        registry_chain.balance(owner.address),
        registry_chain.balance(operator.address),
    )

    receipt = registry_chain.send(fns.withdraw_stake(agent_id), sender=operator)

    assert registry_chain.balance(owner.address) == owner_before + 600
    assert registry_chain.balance(operator.address) == operator_before - gas_paid(receipt)


def test_stake_follows_the_nft(registry_chain: Chain, registry_contract: Contract) -> None:
    old, new = registry_chain.accounts[1], registry_chain.accounts[2]
    agent_id, _ = register(registry_chain, registry_contract, old, stake=500)
    fns = registry_contract.functions
    registry_chain.send(fns.request_unstake(agent_id, 500), sender=old)
    registry_chain.send(fns.transferFrom(old.address, new.address, agent_id), sender=old)
    registry_chain.set_next_timestamp(list(fns.agents(agent_id).call())[5])

    reverts(registry_chain, "registry: caller is not the agent owner", fns.withdraw_stake(agent_id), old)
    before = registry_chain.balance(new.address)
    receipt = registry_chain.send(fns.withdraw_stake(agent_id), sender=new)
    assert registry_chain.balance(new.address) == before + 500 - gas_paid(receipt)


# -- views ----------------------------------------------------------------------------------------------


def test_token_uri_of_an_unminted_agent_reverts(registry_chain: Chain, registry_contract: Contract) -> None:
    register(registry_chain, registry_contract, registry_chain.accounts[1])
    with pytest.raises(Exception, match="erc721: invalid token ID"):
        registry_contract.functions.tokenURI(2).call()
    assert registry_contract.functions.capabilities(2).call() == []


def test_deployment_state(registry_chain: Chain, registry_contract: Contract) -> None:
    fns = registry_contract.functions
    assert fns.UNBONDING_DELAY().call() == registry_chain.settings.unbonding_delay
    assert (fns.name().call(), fns.symbol().call()) == ("motet agents", "AGENT")
    assert fns.supportsInterface(bytes.fromhex("80ac58cd")).call() is True  # ERC-721
    assert fns.supportsInterface(bytes.fromhex("5b5e139f")).call() is True  # ERC-721 Metadata
    # Enumerable and ERC-4494 permit are not exported, so they must not be claimed.
    assert fns.supportsInterface(bytes.fromhex("780e9d63")).call() is False
    assert fns.supportsInterface(bytes.fromhex("589c5ce2")).call() is False
