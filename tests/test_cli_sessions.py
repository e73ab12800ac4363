"""A `--chain anvil` session across terminals, as a user meets it: terminal 1 runs `motet agent serve --chain anvil`
and prints what the others need; terminal 2 (its own MOTET_HOME) pays the agent with the printed key; terminal 3
(the agent's MOTET_HOME and key) redeems the voucher; SIGTERM stops the agent and the anvil it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from motet.chain import Chain
from motet.payments import ChannelClient
from motet.units import format_gwei

MOTET = [sys.executable, "-m", "motet"]
CAPABILITY = "classify_sentiment"
PRICE = 2_000_000_000  # wei
_INHERITED = ("MOTET_RPC_URL", "MOTET_PRIVATE_KEY", "MOTET_KEYSTORE", "MOTET_REGISTRY", "MOTET_CHANNELS")

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


@dataclass
class Session:
    """Terminal 1: the served agent, what it printed, and where it keeps its vouchers."""

    process: subprocess.Popen[bytes]
    log: Path
    home: Path
    agent_url: str
    exports: dict[str, str]
    """What the printed `export` line sets (MOTET_RPC_URL, MOTET_PRIVATE_KEY)."""
    agent_key: str
    payee: str

    @property
    def anvil_port(self) -> int:
        return int(self.exports["MOTET_RPC_URL"].rsplit(":", 1)[1])


def shell(home: Path, **variables: str) -> dict[str, str]:
    """A terminal's environment: its MOTET_HOME and what the user exported there, nothing from the test's shell."""
    inherited = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    return {**inherited, "MOTET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "250", **variables}


def motet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MOTET, *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("sessions")
    home, log = root / "agent-home", root / "serve.log"
    command = [
        *MOTET, "agent", "serve", CAPABILITY, "--chain", "anvil", "--port", "0", "--threads", "1",
        "--price", f"{PRICE}wei",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=shell(home), stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150
        while "Ctrl-C stops" not in (said := log.read_text()):
            assert process.poll() is None, said
            assert time.monotonic() < deadline, said
            time.sleep(0.2)
        exports = re.search(r"^  export (MOTET_RPC_URL=\S+ MOTET_PRIVATE_KEY=\S+)", said, re.MULTILINE)
        agent = re.search(
            r"^  0  (0x[0-9a-fA-F]{40}) .* this agent's .*MOTET_PRIVATE_KEY=(0x[0-9a-f]{64})$", said, re.M
        )
        url = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)", said)
        assert exports and agent and url, said
        yield Session(
            process,
            log,
            home,
            url.group(1),
            dict(item.split("=", 1) for item in exports.group(1).split()),
            agent.group(2),
            agent.group(1),
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_another_terminal_pays_with_the_printed_key_and_the_agent_redeems(
    session: Session, tmp_path: Path
) -> None:
    said = session.log.read_text()
    assert "key=" not in said.replace("MOTET_PRIVATE_KEY=", "")
    payer_home = tmp_path / "payer-home"

    # Terminal 2, with only the URL exported: the missing key is said in a shell's terms.
    no_key = motet(
        "channel", "open", "--to", session.payee, "--deposit", "1gwei",
        env=shell(payer_home, MOTET_RPC_URL=session.exports["MOTET_RPC_URL"]),
    )  # fmt: skip
    assert no_key.returncode == 1, no_key.stderr
    assert "no key for the payer" in no_key.stderr and "export MOTET_PRIVATE_KEY=" in no_key.stderr
    assert "key=..." not in no_key.stderr

    # Then with the printed export line: no contract address to give, the channels contract is found.
    payer = shell(payer_home, **session.exports)
    opened = motet("channel", "open", "--to", session.payee, "--deposit", "0.01eth", env=payer)
    assert opened.returncode == 0, opened.stderr
    channel = opened.stdout.strip()
    text = "What a lovely, sunny day: I am delighted."
    signed = motet(
        "channel", "sign", channel, "--call", CAPABILITY, "--seq", "1", "--input", json.dumps({"text": text}),
        env=payer,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    answer = httpx.post(f"{session.agent_url}/invoke", json=json.loads(signed.stdout), timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["owed"] == str(PRICE)
    voucher = motet("channel", "sign", channel, f"{PRICE}wei", env=payer)
    assert voucher.returncode == 0, voucher.stderr
    paid = httpx.post(
        f"{session.agent_url}/pay",
        json={"channel": channel, "payment": json.loads(voucher.stdout)},
        timeout=30,
    )
    assert paid.status_code == 200, paid.text
    # Promising more than the deposit names the command that adds to it; that command works.
    beyond = motet("channel", "sign", channel, "0.02eth", env=payer)
    assert beyond.returncode == 2, beyond.stderr
    assert "`motet channel topup 0x1 AMOUNT`" in " ".join(beyond.stderr.replace("│", " ").split()), (
        beyond.stderr
    )
    topped = motet("channel", "topup", channel, "0.01eth", env=payer)
    assert topped.returncode == 0, topped.stderr
    assert topped.stdout.strip() == str(2 * 10**16)

    # Terminal 3, in the agent's home: as the payer's account there is nothing, and it says whose vouchers are here.
    rpc = session.exports["MOTET_RPC_URL"]
    wrong = motet("agent", "redeem", env=shell(session.home, MOTET_RPC_URL=rpc, **_key(session.exports)))
    assert wrong.returncode == 0, wrong.stderr
    assert "nothing to redeem" in wrong.stderr and session.payee.lower() in wrong.stderr
    # As the agent (the key printed as this agent's): the voucher it holds is redeemed.
    redeemed = motet(
        "agent", "redeem", env=shell(session.home, MOTET_RPC_URL=rpc, MOTET_PRIVATE_KEY=session.agent_key)
    )
    assert redeemed.returncode == 0, redeemed.stderr
    assert f"1 voucher, paid {format_gwei(PRICE)}," in redeemed.stdout
    with Chain.connect(rpc, session.exports["MOTET_PRIVATE_KEY"]) as chain:
        assert ChannelClient(chain, chain.default_account).channel(int(channel, 16)).redeemed == PRICE


def _key(exports: dict[str, str]) -> dict[str, str]:
    return {"MOTET_PRIVATE_KEY": exports["MOTET_PRIVATE_KEY"]}


def test_contract_addresses_are_options_checked_against_the_chain(session: Session, tmp_path: Path) -> None:
    elsewhere = "0x" + "12" * 20
    on_the_node = motet(
        "channel", "show", "0x1", "--channels", elsewhere, env=shell(tmp_path, **session.exports)
    )  # fmt: skip
    assert on_the_node.returncode == 2, on_the_node.stderr
    said = " ".join(on_the_node.stderr.replace("│", " ").split())
    assert "--channels" in said and "not motet's PaymentChannels" in said, said
    new_chain = motet("agent", "serve", "--chain", "anvil", "--registry", elsewhere, env=shell(tmp_path))
    assert new_chain.returncode == 2, new_chain.stderr
    said = " ".join(new_chain.stderr.replace("│", " ").split())
    assert "starts a new chain" in said and "--registry" in said, said


def test_sigterm_stops_the_agent_and_the_anvil_it_started(session: Session) -> None:
    anvil = _process_listening_on(session.anvil_port)
    assert anvil is not None, "no anvil process found for the session"
    session.process.send_signal(signal.SIGTERM)
    assert session.process.wait(timeout=60) == 0, session.log.read_text()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{anvil}").exists() and _state(anvil) != "Z":
        assert time.monotonic() < deadline, f"anvil {anvil} still runs after SIGTERM"
        time.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        httpx.post(
            session.exports["MOTET_RPC_URL"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
        )


def _process_listening_on(port: int) -> int | None:
    """The pid of the anvil started with `--port port`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].endswith(b"anvil") and str(port).encode() in arguments:
            return int(entry.name)
    return None


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
