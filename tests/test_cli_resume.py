"""Resume after a crash, as a user meets it: one anvil, two `motet agent serve --agent` processes (a user's own
agents: a slow echo, and a shouter), `motet run --chain URL` killed with SIGKILL at several points,
then resumed from the command line by its id alone.

Every scenario checks that each agent worked and was paid exactly once (the slow agent logs each call it completes;
the agents' balances on chain grow by exactly their prices), that the resumed report holds every node's output,
and, for a run killed while its settlement was pending, that the settlement was found by its kept hash (mined,
waited for, or sent again when dropped) and never duplicated.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3.exceptions import TransactionNotFound

from motet.chain import Chain
from motet.payments import ChannelClient

pytestmark = pytest.mark.slow

ECHO_PRICE = 2_000 * 10**9  # 2000 gwei per call
LOUD_PRICE = 1_000 * 10**9
SLOW_S = 0.8

AGENT_FILE = f"""
import asyncio
import os

from pydantic import BaseModel

from motet.agents import Agent, CallContext


class Text(BaseModel):
    text: str


agent = Agent("slow-echo", price={ECHO_PRICE})


@agent.capability("slow_echo", description="Echo a text back, slowly.")
async def slow_echo(request: Text, ctx: CallContext) -> Text:
    await asyncio.sleep({SLOW_S})
    # Each call the agent really completes (one whose caller vanished mid-call is cancelled, owed nothing, and
    # runs again when the resumed run calls it again).
    with open(os.environ["SLOW_ECHO_LOG"], "a") as log:
        log.write(request.text + "\\n")
    return Text(text=request.text)


class Loud(BaseModel):
    loud: str


shouter = Agent("shouter", price={LOUD_PRICE})


@shouter.capability("shout", description="Say a text louder.")
async def shout(request: Text, ctx: CallContext) -> Loud:
    return Loud(loud=request.text.upper())
"""

WORKFLOW = """
name = "resume-check"

[inputs]
text = { type = "string", description = "Any short text." }

[[nodes]]
id = "echo"
capability = "slow_echo"

[[nodes]]
id = "loud"
capability = "shout"
after = ["echo"]

[[nodes]]
id = "again"
capability = "slow_echo"
after = ["loud"]
inputs = { text = "input.text" }
"""

RUN_LINE = re.compile(r"^run ([0-9a-f]{16})$")


@dataclass
class Market:
    chain: Chain
    url: str
    env: dict[str, str]
    """What the payer's commands run with: motet's home, the node, the payer's key."""
    folder: Path
    calls_db: Path
    echo_log: Path
    payer: str
    echo_payee: str
    loud_payee: str

    def motet(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "motet", *args], env=self.env, cwd=self.folder, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "motet", *args], env=self.env, cwd=self.folder, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def rpc(self, method: str, *params: Any) -> Any:
        return self.chain.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if not self.calls_db.exists():
            return []
        with sqlite3.connect(self.calls_db) as db:
            try:
                return db.execute(sql, args).fetchall()
            except sqlite3.OperationalError:  # the table is not there yet
                return []

    def call_status(self, run_id: str, node: str) -> str | None:
        found = self.rows("SELECT status FROM calls WHERE run_id = ? AND node = ?", run_id, node)
        return str(found[0][0]) if found else None

    def settlement_sent(self, run_id: str) -> str | None:
        found = self.rows("SELECT tx_hash FROM settlements WHERE run_id = ?", run_id)
        return str(found[0][0]) if found else None

    def transaction(self, tx_hash: str) -> Any:
        """The transaction as the node knows it (pending or mined); None before it reaches the node."""
        try:
            return self.chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def balances(self) -> tuple[int, int]:
        return self.chain.balance(self.echo_payee), self.chain.balance(self.loud_payee)

    def redeem_txs(self, since_block: int) -> list[str]:
        """The payer's settlement (`redeem_many`) transactions mined after `since_block`."""
        contract = ChannelClient(self.chain).contract
        found = []
        for number in range(since_block + 1, self.chain.w3.eth.block_number + 1):
            for tx in self.chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
                assert not isinstance(tx, bytes)
                ours = tx["from"].lower() == self.payer.lower() and tx["to"] == contract.address
                if ours and contract.decode_function_input(tx["input"])[0].fn_name == "redeem_many":
                    found.append("0x" + bytes(tx["hash"]).hex())
        return found

    def echo_calls(self, text: str) -> int:
        return self.echo_log.read_text().splitlines().count(text) if self.echo_log.exists() else 0


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 120.0,
    poll: float = 0.02,
    process: subprocess.Popen[str] | None = None,
) -> Any:
    """Poll `check` until it returns something true; fail when `process` ends first (with its output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process is not None and process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(f"the command ended ({process.returncode}) before {what}: {stdout}{stderr}")
        time.sleep(poll)
    if process is not None:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"timed out waiting for {what}: {stdout}{stderr}")
    raise AssertionError(f"timed out waiting for {what}")


def serve(env: dict[str, str], folder: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "motet", "agent", "serve", *args], env=env, cwd=folder, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    folder = tmp_path_factory.mktemp("resume")
    (folder / "agents.py").write_text(AGENT_FILE)
    (folder / "flow.toml").write_text(WORKFLOW)
    home = folder / "home"
    chain = Chain.anvil()
    agents: list[subprocess.Popen[bytes]] = []
    try:
        assert chain.url is not None
        payer, echo, loud = chain.accounts[1], chain.accounts[2], chain.accounts[3]
        base = {
            **os.environ, "MOTET_HOME": str(home), "MOTET_RPC_URL": chain.url,
            "MOTET_ALLOW_PRIVATE_ENDPOINTS": "1",  # the agents listen on 127.0.0.1
        }  # fmt: skip
        base.pop("MOTET_KEYSTORE", None)
        ChannelClient(chain)  # motet's contracts on the chain once, before the agents register
        echo_log = folder / "echo.log"
        agents.append(
            serve(
                {**base, "MOTET_PRIVATE_KEY": echo.key.hex(), "SLOW_ECHO_LOG": str(echo_log)}, folder,
                folder / "echo-agent.log", "--agent", "agents.py:agent", "--chain", chain.url, "--port", "0",
                "--stake", "0.01eth",
            )
        )  # fmt: skip
        agents.append(
            serve(
                {**base, "MOTET_PRIVATE_KEY": loud.key.hex()}, folder, folder / "loud-agent.log",
                "--agent", "agents.py:shouter", "--chain", chain.url, "--port", "0", "--stake", "0.01eth",
            )
        )  # fmt: skip
        for name in ("echo-agent.log", "loud-agent.log"):
            wait_for(f"{name} serving", lambda n=name: "serving" in (folder / n).read_text(), timeout=120)  # type: ignore[misc]
        chain.w3.provider.make_request("anvil_mine", [12])  # type: ignore[arg-type]  # a node indexes 12 deep
        yield Market(
            chain, chain.url, {**base, "MOTET_PRIVATE_KEY": payer.key.hex()}, folder,
            home / f"calls-{payer.address.lower()}-{chain.chain_id}.sqlite", echo_log, payer.address,
            echo.address, loud.address,
        )  # fmt: skip
    finally:
        for process in agents:
            process.terminate()
        for process in agents:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        chain.close()


def started(market: Market, text: str) -> tuple[subprocess.Popen[str], str]:
    """`motet run flow.toml --chain URL --json` with its output redirected: the run id is its first line."""
    process = market.start("run", "flow.toml", "--chain", market.url, "--json", "-i", f"text={text}")
    assert process.stderr is not None
    first = process.stderr.readline().rstrip("\n")
    match = RUN_LINE.match(first)
    assert match, f"the first line is not the run id: {first!r}"
    return process, match.group(1)


def killed(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()  # SIGKILL: nothing runs after it
    process.communicate(timeout=30)


def assert_paid_once(market: Market, text: str, before: tuple[int, int]) -> None:
    """Each node ran once at its agent, and each agent's balance grew by exactly its calls' prices."""
    assert market.echo_calls(text) == 2
    echo, loud = market.balances()
    assert (echo - before[0], loud - before[1]) == (2 * ECHO_PRICE, LOUD_PRICE)


def test_a_run_killed_while_a_node_generates_resumes_by_its_id(market: Market) -> None:
    text = "A calm morning by the lake."
    before = market.balances()
    process, run_id = started(market, text)
    wait_for(
        "the third node's call", lambda: market.call_status(run_id, "again") == "calling", process=process
    )
    killed(process)
    assert market.call_status(run_id, "loud") == "paid"

    listed = market.motet("runs")
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout and "unfinished" in listed.stdout and "resume-check" in listed.stdout
    shown = market.motet("runs", "show", run_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert (
        text in shown.stdout and "calling" in shown.stdout and f"motet runs resume {run_id}" in shown.stdout
    )

    resumed = market.motet("run", "--resume", run_id, "--chain", market.url)  # as docs/operations.md says
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.splitlines()[0] == f"run {run_id}"
    outputs = json.loads(resumed.stdout)
    assert set(outputs) == {"echo", "loud", "again"}  # the nodes done before the crash included
    assert outputs["echo"] == outputs["again"] == {"text": text}
    assert "pending" not in resumed.stderr
    assert_paid_once(market, text, before)
    shown = market.motet("runs", "show", run_id)
    assert (
        "· settled" in shown.stdout and ": mined" in shown.stdout and "motet runs resume" not in shown.stdout
    )


def pending_settlement(market: Market, text: str) -> tuple[str, str, int, tuple[int, int]]:
    """A run killed while its settlement transaction waits in the node's pool (automine off)."""
    before = market.balances()
    block = market.chain.w3.eth.block_number
    process, run_id = started(market, text)
    try:
        wait_for(
            "the third node's call", lambda: market.call_status(run_id, "again") == "calling", process=process
        )
        market.rpc("evm_setAutomine", False)  # the channels are open: only the settlement is left to send
        tx_hash = wait_for("the settlement sent", lambda: market.settlement_sent(run_id), process=process)
        pending = wait_for("the settlement in the pool", lambda: market.transaction(tx_hash))
        assert pending["blockNumber"] is None
    except BaseException:
        market.rpc("evm_setAutomine", True)
        raise
    finally:
        killed(process)
    return run_id, tx_hash, block, before


def test_a_settlement_mined_after_the_crash_is_reported_not_sent_again(market: Market) -> None:
    text = "The ferry was late again."
    run_id, tx_hash, block, before = pending_settlement(market, text)
    market.rpc("anvil_mine", 1)
    market.rpc("evm_setAutomine", True)
    resumed = market.motet("runs", "resume", run_id, "--chain", market.url)
    assert resumed.returncode == 0, resumed.stderr
    assert "reverted" not in resumed.stderr and "nothing to redeem" not in resumed.stderr
    assert tx_hash[:18] in resumed.stderr  # the report's settlement is the one that happened
    assert set(json.loads(resumed.stdout)) == {"echo", "loud", "again"}
    assert market.redeem_txs(block) == [tx_hash]
    assert_paid_once(market, text, before)


def test_a_pending_settlement_is_waited_for_and_a_dropped_one_sent_again(market: Market) -> None:
    text = "Rain all week, but the garden is thriving."
    run_id, tx_hash, block, before = pending_settlement(market, text)
    process = market.start("run", "--resume", run_id, "--chain", market.url, "--json")
    try:
        assert process.stderr is not None
        assert process.stderr.readline().rstrip("\n") == f"run {run_id}"
        waiting = wait_for("the resume to find the pending settlement", process.stderr.readline)
        assert tx_hash in waiting and "waiting for it" in waiting
        time.sleep(0.5)
        assert process.poll() is None  # it waits for the pending transaction, and sends nothing of its own
        market.rpc("anvil_mine", 1)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        market.rpc("evm_setAutomine", True)
        if process.poll() is None:
            killed(process)
    assert process.returncode == 0, stderr
    assert set(json.loads(stdout)) == {"echo", "loud", "again"}
    assert market.redeem_txs(block) == [tx_hash]
    assert_paid_once(market, text, before)

    text = "A quiet library, full of readers."
    run_id, tx_hash, block, before = pending_settlement(market, text)
    market.rpc("anvil_dropTransaction", tx_hash)  # the node forgets it, as a node under load may
    market.rpc("evm_setAutomine", True)
    assert market.transaction(tx_hash) is None
    resumed = market.motet("runs", "resume", run_id, "--chain", market.url, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert market.redeem_txs(block) == [tx_hash]  # the same signed transaction, sent again
    assert_paid_once(market, text, before)
    shown = market.motet("runs", "show", run_id)
    assert f"settlement {tx_hash}: mined" in shown.stdout
