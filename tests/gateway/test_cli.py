"""`motet delegate`, `motet order`, `motet deposit`, `motet withdraw`, `motet revoke` and `motet gateway` as a user
runs them: real processes, real HTTP, real chains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from support.gateway import Setup

from motet.chain import Chain
from motet.gateway import Gateway
from motet.payments import Delegation, DelegationClient
from motet.registry import Registry
from motet.units import GWEI

MOTET = [sys.executable, "-m", "motet"]
_DEFAULTS = ("MOTET_GATEWAY", "MOTET_DELEGATOR_KEY", "MOTET_RPC_URL")


async def motet(
    *args: str, home: Path, stdin: bytes | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in _DEFAULTS}  # the defaults, not the shell's
    env = {**inherited, "MOTET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *MOTET, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def registered_id(said: str) -> str:
    """The delegation id `motet delegate` says it registered."""
    found = re.search(r"delegation (0x[0-9a-f]{64}) registered", " ".join(said.split()))
    assert found, said
    return found.group(1)


def hex_key(account: LocalAccount) -> str:
    """The account's private key as `--key` takes it: 0x-hex."""
    return "0x" + bytes(account.key).hex()


async def test_delegate_with_a_pasted_signature_then_order_with_a_key(setup: Setup, tmp_path: Path) -> None:
    # A wallet that signs elsewhere: the typed data is printed, the signature pasted back.
    env = {**os.environ, "MOTET_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *MOTET, "delegate", "--gateway", setup.url, "--from", setup.wallet.address, "--cap", "300",
        "--hours", "1", "--capability", "extract_text", "--capability", "summarize", "--capability",
        "extract_keywords", "--capability", "classify_sentiment", "--capability", "compose_report",
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    typed = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
    delegation = Delegation.from_typed_data(typed, setup.domain)
    assert (delegation.cap, delegation.session_key) == (300 * GWEI, setup.session_key.address)
    signature = Account.sign_typed_data(setup.wallet.key, full_message=typed).signature.to_0x_hex()
    process.stdin.write(signature.encode() + b"\n")
    await process.stdin.drain()
    _, delegated = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, delegated.decode()
    delegation_id = "0x" + delegation.digest(setup.domain).hex()
    said = " ".join(delegated.decode().split())
    assert f"delegation {delegation_id} registered in transaction 0x" in said
    # Before the signature, what it allows under the contract's rules.
    assert "place up to 300 gwei of your balance in payment channels" in said
    assert "money already placed in a channel stays payable to that agent" in said

    code, out, err = await motet(
        "order", "--gateway", setup.url, "--delegation", delegation_id, "--workflow", "research-brief",
        "--input", "document=<p>The new library downtown opened to praise.</p>", "--budget", "150",
        "--key", hex_key(setup.wallet), home=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert "report" in json.loads(out)
    assert "settled 75 gwei for 5 paid calls" in " ".join(err.split())
    state = DelegationClient(setup.chain).state(delegation.digest(setup.domain))
    # The cap counts the money placed in the delegation's channels: what was paid, and any deposit left unspent.
    assert state is not None and 75 * GWEI <= state.spent <= state.cap


async def test_order_refusals_print_the_gateways_reason(setup: Setup, tmp_path: Path) -> None:
    key = hex_key(setup.wallet)
    code, _, err = await motet(
        "delegate", "--gateway", setup.url, "--cap", "100", "--key", key, home=tmp_path
    )
    assert code == 0, err
    delegation_id = registered_id(err)
    code, _, err = await motet(
        "order", "--gateway", setup.url, "--delegation", delegation_id, "--workflow", "research-brief",
        "-i", "document=x", "--budget", "150", "--key", key, home=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert "error: the gateway refused: over budget" in " ".join(err.split())
    code, _, err = await motet("delegate", "--gateway", setup.url, "--cap", "0", "--key", key, home=tmp_path)
    assert code == 2 and "the amount must be more than 0, not '0'" in " ".join(err.split())
    # A task whose deadline is past its delegation's expiry is refused before anything is signed.
    code, _, err = await motet(
        "delegate", "--gateway", setup.url, "--cap", "300", "--hours", "0.5", "--key", key, home=tmp_path
    )
    assert code == 0, err
    short_lived = registered_id(err)
    code, _, err = await motet(
        "order", "--gateway", setup.url, "--delegation", short_lived, "--workflow", "research-brief",
        "-i", "document=x", "--budget", "150", "--minutes", "60", "--key", key, home=tmp_path,
    )  # fmt: skip
    assert code == 2 and "after the delegation's expiry" in " ".join(err.split()), err


@pytest.mark.parametrize("chain_kind", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
async def test_gateway_command_serves_the_page_and_funds_dev_wallets(chain_kind: str, tmp_path: Path) -> None:
    wallet = Account.create().address
    env = {**os.environ, "MOTET_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *MOTET, "gateway", "--chain", chain_kind, "--port", "0", "--fund", wallet, "--threads", "1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        assert first.startswith("motet gateway on http://127.0.0.1:"), first
        url = first.split()[3]
        printed = [first]
        while not printed[-1].startswith("open the URL"):
            printed.append((await asyncio.wait_for(process.stdout.readline(), 10)).decode())
        rpc_lines = [line for line in printed if line.strip().startswith("chain RPC")]
        async with httpx.AsyncClient(base_url=url) as http:
            config = (await http.get("/api/config")).json()
            assert config["workflows"][0]["name"] == "research-brief"
            account = (await http.get(f"/api/accounts/{wallet}")).json()
            assert account["balance"] == str(10**16)
            assert "<title>motet gateway" in (await http.get("/")).text
            if chain_kind == "embedded":
                assert config["rpcUrl"] is None and rpc_lines == []
            else:
                # The RPC a browser wallet adds: printed, named in the config, and on the gateway's chain.
                assert [line.split()[2] for line in rpc_lines] == [config["rpcUrl"]], printed
                answer = await http.post(
                    config["rpcUrl"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                )
                assert int(answer.json()["result"], 16) == config["chainId"]
    finally:
        process.terminate()
        await process.wait()
    if chain_kind == "anvil":  # SIGTERM stopped the anvil it started too: no node is left behind
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.post(config["rpcUrl"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})


# -- deposit, withdraw, revoke ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bare_gateway(chain: Chain, session_key: LocalAccount) -> AsyncIterator[str]:
    """A gateway with no agents and no workflows: enough for the wallet's own transactions and delegations."""
    gateway = Gateway(chain, Registry(chain), session_key=session_key, workflows={})
    async with gateway.running() as url:
        yield url


def funded(chain: Chain) -> LocalAccount:
    """A new account holding 1 ETH, so a test on the session's anvil starts from a zero balance in the contract."""
    account: LocalAccount = Account.create()
    chain.transfer(account.address, 10**18)
    return account


async def test_without_a_key_the_unsigned_transaction_is_printed(chain: Chain, tmp_path: Path) -> None:
    contract = chain.contract("PaymentChannels")
    async with bare_gateway(chain, chain.accounts[8]) as url:
        code, out, err = await motet("deposit", "500", "--gateway", url, home=tmp_path)
        assert code == 0, err
        (line,) = out.splitlines()
        tx = json.loads(line)
        assert set(tx) == {"to", "data", "value", "chainId"}
        assert (tx["to"], tx["value"], tx["chainId"]) == (
            contract.address,
            hex(500 * GWEI),
            hex(chain.chain_id),
        )
        function, args = contract.decode_function_input(tx["data"])
        assert function.fn_name == "deposit" and args["amount"] == 500 * GWEI
        assert f"cast send {contract.address} {tx['data']} --value {500 * GWEI}" in " ".join(err.split())

        delegation_id = "0x" + "ab" * 32
        code, out, err = await motet("revoke", delegation_id, "--gateway", url, home=tmp_path)
        assert code == 0, err
        tx = json.loads(out)
        function, args = contract.decode_function_input(tx["data"])
        assert (function.fn_name, args["delegation_id"], tx["value"]) == (
            "revoke",
            bytes.fromhex("ab" * 32),
            "0x0",
        )


async def test_a_key_on_the_embedded_chain_is_refused_with_what_to_do(chain: Chain, tmp_path: Path) -> None:
    wallet = chain.accounts[9]
    before = (chain.balance(wallet.address), DelegationClient(chain).balance(wallet.address))
    key = hex_key(wallet)
    async with bare_gateway(chain, chain.accounts[8]) as url:
        code, out, err = await motet("deposit", "500", "--gateway", url, "--key", key, home=tmp_path)
        assert (code, out) == (1, "")
        said = " ".join(err.split())
        assert "error: the gateway's chain is in-process (embedded) and has no JSON-RPC URL" in said
        assert "motet gateway --chain anvil" in said and "motet gateway --fund ADDRESS" in said
        code, _, err = await motet(
            "withdraw", "1", "--gateway", url, "--key", key, "--rpc-url", "http://127.0.0.1:1", home=tmp_path
        )
        assert code == 1 and "no JSON-RPC node answers at http://127.0.0.1:1" in " ".join(err.split())
    assert (chain.balance(wallet.address), DelegationClient(chain).balance(wallet.address)) == before


@pytest.mark.anvil
async def test_deposit_withdraw_and_revoke_with_a_key_on_a_node(anvil_chain: Chain, tmp_path: Path) -> None:
    chain = anvil_chain
    wallet, channels = funded(chain), DelegationClient(chain)
    key = hex_key(wallet)
    async with bare_gateway(chain, funded(chain)) as url:
        code, _, err = await motet("deposit", "1500", "--gateway", url, "--key", key, home=tmp_path)
        assert code == 0, err
        assert "deposited 1,500 gwei in 0x" in err and "balance now 1,500 gwei" in " ".join(err.split())
        assert channels.balance(wallet.address) == 1500 * GWEI

        code, _, err = await motet("withdraw", "500", "--gateway", url, "--key", key, home=tmp_path)
        assert code == 0, err
        assert "withdrew 500 gwei in 0x" in err and "balance now 1,000 gwei" in " ".join(err.split())
        assert channels.balance(wallet.address) == 1000 * GWEI

        code, _, err = await motet("withdraw", "5000", "--gateway", url, "--key", key, home=tmp_path)
        assert code == 1
        assert "error: the withdrawal reverted: channels: balance too low" in " ".join(err.split())
        assert channels.balance(wallet.address) == 1000 * GWEI

        code, _, err = await motet("delegate", "--gateway", url, "--cap", "100", "--key", key, home=tmp_path)
        assert code == 0, err
        delegation_id = registered_id(err)
        code, _, err = await motet("revoke", delegation_id, "--gateway", url, "--key", key, home=tmp_path)
        assert code == 0, err
        assert f"delegation {delegation_id} revoked in 0x" in " ".join(err.split())
        assert "no delegation of" not in err
        assert "money already placed in its channels stays payable to those agents" in " ".join(err.split())
        state = channels.state(bytes.fromhex(delegation_id[2:]))
        assert state is not None and state.revoked
        async with httpx.AsyncClient(base_url=url) as http:  # the gateway runs on this test's event loop
            account = (await http.get(f"/api/accounts/{wallet.address}")).json()
        assert [(d["id"], d["revoked"]) for d in account["delegations"]] == [(delegation_id, True)]


async def test_bad_amounts_ids_and_keys_are_refused_before_any_request(tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:1"  # nothing listens: the input is checked first
    cases = [
        (("deposit", "0"), "Invalid value for 'AMOUNT': the amount must be more than 0, not '0'"),
        (
            ("withdraw", "--", "-3"),
            "Invalid value for 'AMOUNT': '-3' is not an amount: amounts are never negative",
        ),
        (
            ("deposit", "0.0000000001"),
            "'0.0000000001' is not an amount: 0.1 wei is not a whole number of wei",
        ),
        (
            ("withdraw", "lots"),
            "Invalid value for 'AMOUNT': 'lots' is not an amount: type a number with its unit",
        ),
        (("deposit", "5", "--key", "0x1234"), "Invalid value for --key: not a private key"),
        (("deposit", "3 lira"), "'3 lira' is not an amount: unknown unit 'lira': use wei, gwei or eth"),
        (
            ("revoke", "0x1234"),
            "Invalid value for DELEGATION_ID: '0x1234' is not a delegation id (0x + 64 hex",
        ),
    ]
    runs = [motet(command, "--gateway", nowhere, *rest, home=tmp_path) for (command, *rest), _ in cases]
    for (code, out, err), (_, problem) in zip(await asyncio.gather(*runs), cases, strict=True):
        assert (code, out) == (2, ""), err
        assert problem in " ".join(err.replace("│", " ").split()), err
