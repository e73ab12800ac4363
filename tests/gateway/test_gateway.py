"""The task gateway over real HTTP: wallet-signed orders run under their delegation on the embedded chain, with
the local market's agents on the real SmolLM2 model. Every refusal names its reason and costs nothing."""

from __future__ import annotations

import asyncio
import json

from eth_account import Account
from support.gateway import DEPOSIT, Setup

from motet.payments import DelegationClient
from motet.units import GWEI


def on_chain(s: Setup, delegation_id: bytes) -> tuple[int, int, bool]:
    state = DelegationClient(s.chain).state(delegation_id)
    assert state is not None
    return state.cap, state.spent, state.revoked


async def test_config_names_the_domain_the_session_key_and_the_workflows(setup: Setup) -> None:
    config = (await setup.http.get("/api/config")).json()
    assert config["chainId"] == setup.chain.chain_id
    assert config["sessionKey"] == setup.session_key.address
    assert config["domain"] == setup.domain.typed_data_domain()
    assert [f["name"] for f in config["types"]["Delegation"]][-2:] == ["capabilities", "nonce"]
    (workflow,) = config["workflows"]
    assert workflow["name"] == "research-brief"
    assert workflow["inputs"][0]["name"] == "document"
    assert int(workflow["worstCase"]) == 120 * GWEI
    page = await setup.http.get("/")
    assert page.status_code == 200 and "eth_signTypedData_v4" not in page.text  # the script is a module
    assert "eth_signTypedData_v4" in (await setup.http.get("/static/app.js")).text


async def test_an_order_runs_under_its_delegation_and_settles_within_the_cap(setup: Setup) -> None:
    delegation, signed_delegation = setup.delegation(
        capabilities=("extract_text", "summarize", "extract_keywords", "classify_sentiment", "compose_report")
    )
    delegation_id = delegation.digest(setup.domain)
    order, signed_order = setup.order(delegation)
    key_balance = setup.chain.balance(setup.session_key.address)
    response = await setup.post_order(signed_delegation, signed_order)
    assert response.status_code == 202, response.text
    order_id = response.json()["id"]
    events = await setup.events(order_id)
    # Every wei of gas the session key paid (registering, opening channels, settling) is counted for the wallet.
    gas = key_balance - setup.chain.balance(setup.session_key.address)
    assert gas > 0 and setup.gateway.orders.gas.spent(setup.wallet.address) == gas
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "accepted" and kinds[-1] == "result", kinds
    assert kinds.count("node_done") == 5 and "settled" in kinds
    result = events[-1][1]
    assert json.loads(json.dumps(result["outputs"]["report"]))["report"]
    assert len(result["receipts"]) == 5
    settlement = result["settlement"]
    paid = int(settlement["paid"])
    assert 0 < paid == int(result["spent"]) <= order.budget
    money = result["money"]  # the run report's money: who was paid what, all of it settled
    assert money["status"] == "done" and money["unsettled"] == "0" and money["settled"] == str(paid)
    assert len(money["payments"]) == 5 and sum(int(p["paid"]) for p in money["payments"]) == paid
    # The chain agrees: the delegation's cap counts the money placed in its channels (what was paid, and what a
    # channel holds unspent, refunded to the wallet when it settles), within the cap, and the agents got paid.
    cap, placed, revoked = on_chain(setup, delegation_id)
    assert (cap, revoked) == (delegation.cap, False) and paid <= placed <= delegation.cap
    receipt = setup.chain.w3.eth.get_transaction_receipt(settlement["txs"][0])
    assert receipt["status"] == 1
    # The wallet's balance paid for the channels' deposits; the order's record is kept.
    assert DelegationClient(setup.chain).balance(setup.wallet.address) <= DEPOSIT - paid
    stored = (await setup.http.get(f"/api/orders/{order_id}")).json()
    assert stored["status"] == "done" and stored["spent"] == str(paid)
    account = (await setup.http.get(f"/api/accounts/{setup.wallet.address}")).json()
    assert account["delegations"][0]["spent"] == str(placed)
    assert account["delegations"][0]["capabilities"] == list(delegation.capabilities)

    # The same signed order again is a replay.
    again = await setup.post_order(signed_delegation, signed_order)
    assert again.status_code == 409 and "replay" in again.json()["error"]


async def test_parallel_orders_never_reserve_more_than_the_cap(setup: Setup) -> None:
    delegation, signed_delegation = setup.delegation(cap=200 * GWEI)
    orders = [setup.order(delegation, budget=120 * GWEI)[1] for _ in range(3)]
    responses = await asyncio.gather(*(setup.post_order(signed_delegation, o) for o in orders))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 403, 403], [r.text for r in responses]
    refusal = next(r for r in responses if r.status_code == 403).json()["error"]
    assert refusal.startswith("over budget") and "80 gwei of its cap of 200 gwei" in refusal


async def test_refusals_name_the_problem_and_take_nothing(setup: Setup) -> None:
    stranger = Account.create()
    delegation, signed_delegation = setup.delegation()
    cases = [
        # (what, delegation body, order body, status, words in the error)
        (
            "order signed by someone else",
            signed_delegation,
            setup.order(delegation, signer=stranger)[1],
            403,
            "not signed by the delegator",
        ),
        (
            "delegation signed by someone else",
            setup.delegation(signer=stranger)[1],
            None,
            403,
            "not signed by its delegator",
        ),
        (
            "expired order",
            signed_delegation,
            setup.order(delegation, deadline=setup.chain.timestamp() - 1)[1],
            400,
            "deadline",
        ),
        (
            "over the cap",
            signed_delegation,
            setup.order(delegation, budget=1_001 * GWEI)[1],
            403,
            "over budget",
        ),
        (
            "under the worst case",
            signed_delegation,
            setup.order(delegation, budget=100 * GWEI)[1],
            400,
            "budget",
        ),
        (
            "unknown workflow",
            signed_delegation,
            setup.order(delegation, workflow="nope")[1],
            400,
            "no workflow named 'nope'",
        ),
    ]
    narrow, signed_narrow = setup.delegation(capabilities=("summarize",))
    cases.append(
        (
            "capability not delegated",
            signed_narrow,
            setup.order(narrow)[1],
            403,
            "does not allow the capability 'extract_text'",
        )
    )
    other_key, signed_other_key = setup.delegation(session_key=stranger.address)
    cases.append(("another session key", signed_other_key, setup.order(other_key)[1], 403, "session key"))
    later, signed_later = setup.delegation(valid_after=setup.chain.timestamp() + 600)
    cases.append(("not yet valid", signed_later, setup.order(later)[1], 403, "not valid before"))
    wrong_chain = dict(
        signed_delegation["typedData"], domain={**setup.domain.typed_data_domain(), "chainId": 1}
    )
    cases.append(
        (
            "another chain",
            setup.signed(wrong_chain),
            setup.order(delegation)[1],
            400,
            f"signed for chain 1, but this is chain {setup.chain.chain_id}",
        )
    )
    for what, body_delegation, body_order, status, words in cases:
        if body_order is None:
            response = await setup.http.post("/api/delegations", json=body_delegation)
        else:
            response = await setup.post_order(body_delegation, body_order)
        assert response.status_code == status, (what, response.text)
        assert words in response.json()["error"], (what, response.json())
    # Nothing was spent, and nothing runs.
    assert setup.gateway.orders.committed(delegation.digest(setup.domain)) == 0
    assert DelegationClient(setup.chain).balance(setup.wallet.address) == DEPOSIT


async def test_a_revoked_delegation_takes_no_order(setup: Setup) -> None:
    delegation, signed_delegation = setup.delegation()
    registered = await setup.http.post("/api/delegations", json=signed_delegation)
    assert registered.status_code == 200 and registered.json()["tx"]
    DelegationClient(setup.chain, setup.wallet).revoke(delegation.digest(setup.domain))
    response = await setup.post_order(signed_delegation, setup.order(delegation)[1])
    assert response.status_code == 403 and "revoked" in response.json()["error"]


async def test_a_balance_too_small_for_the_run_is_refused(setup: Setup) -> None:
    DelegationClient(setup.chain, setup.wallet).withdraw(DEPOSIT - 50 * GWEI)
    delegation, signed_delegation = setup.delegation()
    response = await setup.post_order(signed_delegation, setup.order(delegation)[1])
    assert response.status_code == 403 and "deposit more" in response.json()["error"]


async def test_an_independently_signed_delegation_is_accepted_and_an_edited_one_is_not(setup: Setup) -> None:
    delegation, body = setup.delegation(capabilities=("summarize", "compose_report"))
    typed = body["typedData"]
    signature = Account.sign_typed_data(setup.wallet.key, full_message=typed).signature.to_0x_hex()
    for field, value in (
        ("cap", str(delegation.cap + 1)),
        ("capabilities", ["*"]),
        ("sessionKey", setup.wallet.address),
    ):
        edited = {**typed, "message": {**typed["message"], field: value}}
        response = await setup.http.post(
            "/api/delegations", json={"typedData": edited, "signature": signature}
        )
        assert response.status_code in (400, 403), (field, response.text)
    response = await setup.http.post("/api/delegations", json={"typedData": typed, "signature": signature})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "0x" + delegation.digest(setup.domain).hex()


async def test_malformed_bodies_get_json_errors(setup: Setup) -> None:
    for body in (b"not json", b"[]", b'{"delegation": 1, "order": 2}'):
        response = await setup.http.post(
            "/api/orders", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["error"]
    missing = await setup.http.get("/api/orders/nope")
    assert missing.status_code == 404 and "no order" in missing.json()["error"]


async def test_calls_are_unsigned_transactions_the_wallet_sends_itself(setup: Setup) -> None:
    channels = DelegationClient(setup.chain).contract
    config = (await setup.http.get("/api/config")).json()
    assert config["rpcUrl"] is None  # the embedded chain has no JSON-RPC endpoint

    deposit = (
        await setup.http.post("/api/calls", json={"function": "deposit", "amount": str(5 * GWEI)})
    ).json()
    assert (deposit["to"], int(deposit["value"], 16), int(deposit["chainId"], 16)) == (
        channels.address,
        5 * GWEI,
        setup.chain.chain_id,
    )
    function, args = channels.decode_function_input(deposit["data"])
    assert function.fn_name == "deposit" and args["amount"] == 5 * GWEI and int(args["token"], 16) == 0
    delegation, _ = setup.delegation()
    delegation_id = "0x" + delegation.digest(setup.domain).hex()
    revoke = (
        await setup.http.post("/api/calls", json={"function": "revoke", "delegation": delegation_id})
    ).json()
    function, args = channels.decode_function_input(revoke["data"])
    assert function.fn_name == "revoke" and "0x" + args["delegation_id"].hex() == delegation_id
    assert int(revoke["value"], 16) == 0

    # The wallet sends the deposit; the gateway reports it mined.
    tx = {
        "from": setup.wallet.address,
        "to": deposit["to"],
        "data": deposit["data"],
        "value": int(deposit["value"], 16),
        "nonce": setup.chain.w3.eth.get_transaction_count(setup.wallet.address),
        "chainId": setup.chain.chain_id,
        "gas": 200_000,
        "maxFeePerGas": 2 * setup.chain.w3.eth.gas_price,
        "maxPriorityFeePerGas": 1,
    }
    sent = setup.chain.w3.eth.send_raw_transaction(setup.wallet.sign_transaction(tx).raw_transaction)
    mined = (await setup.http.get(f"/api/transactions/0x{bytes(sent).hex()}")).json()
    assert mined["status"] == "success" and mined["gasUsed"] > 0
    assert DelegationClient(setup.chain).balance(setup.wallet.address) == DEPOSIT + 5 * GWEI
    unknown = (await setup.http.get(f"/api/transactions/0x{'ab' * 32}")).json()
    assert unknown["status"] == "pending"

    refusals = [
        ({"function": "deposit", "amount": "0"}, "positive whole number of wei"),
        ({"function": "withdraw", "amount": "1.5"}, "positive whole number of wei"),
        ({"function": "deposit", "amount": True}, "positive whole number of wei"),
        ({"function": "revoke", "delegation": "0x12"}, "0x + 64 hex digits"),
        ({"function": "transfer"}, "'deposit', 'withdraw' or 'revoke'"),
    ]
    for body, words in refusals:
        response = await setup.http.post("/api/calls", json=body)
        assert response.status_code == 400 and words in response.json()["error"], (body, response.text)
    bad_hash = await setup.http.get("/api/transactions/0x12")
    assert bad_hash.status_code == 400 and "transaction hash" in bad_hash.json()["error"]
