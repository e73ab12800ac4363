"""`motet delegate`, `motet order` and `motet gateway` as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
from eth_account import Account
from gateway_fixtures import Setup

from motet.market import GWEI
from motet.payments.delegation import Delegation, DelegationClient

MOTET = [sys.executable, "-m", "motet"]


async def motet(
    *args: str, home: Path, stdin: bytes | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    env = {**os.environ, "MOTET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *MOTET, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    delegation_id = "0x" + delegation.digest(setup.domain).hex()
    assert f"delegation {delegation_id} registered in transaction 0x" in " ".join(err.decode().split())

    code, out, err = await motet(
        "order", "--gateway", setup.url, "--delegation", delegation_id, "--workflow", "research-brief",
        "--input", "document=<p>The new library downtown opened to praise.</p>", "--budget", "150",
        "--key", setup.wallet.key.to_0x_hex(), home=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    assert "report" in json.loads(out)
    assert "settled 75 gwei for 5 paid calls" in " ".join(err.split())
    state = DelegationClient(setup.chain).state(delegation.digest(setup.domain))
    assert state is not None and state.spent == 75 * GWEI


async def test_order_refusals_print_the_gateways_reason(setup: Setup, tmp_path: Path) -> None:
    key = setup.wallet.key.to_0x_hex()
    code, _, err = await motet(
        "delegate", "--gateway", setup.url, "--cap", "100", "--key", key, home=tmp_path
    )
    assert code == 0, err
    delegation_id = err.split("delegation ")[1].split()[0]
    code, _, err = await motet(
        "order", "--gateway", setup.url, "--delegation", delegation_id, "--workflow", "research-brief",
        "-i", "document=x", "--budget", "150", "--key", key, home=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert "error: the gateway refused: over budget" in " ".join(err.split())
    code, _, err = await motet("delegate", "--gateway", setup.url, "--cap", "0", "--key", key, home=tmp_path)
    assert code == 2 and "not a positive whole number of wei" in err


async def test_gateway_command_serves_the_page_and_funds_dev_wallets(tmp_path: Path) -> None:
    wallet = Account.create().address
    env = {**os.environ, "MOTET_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        *MOTET, "gateway", "--port", "0", "--fund", wallet, "--threads", "1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        assert first.startswith("motet gateway on http://127.0.0.1:"), first
        url = first.split()[3]
        async with httpx.AsyncClient(base_url=url) as http:
            config = (await http.get("/api/config")).json()
            assert config["workflows"][0]["name"] == "research-brief"
            account = (await http.get(f"/api/accounts/{wallet}")).json()
            assert account["balance"] == str(10**16)
            assert "<title>motet gateway" in (await http.get("/")).text
    finally:
        process.terminate()
        await process.wait()
