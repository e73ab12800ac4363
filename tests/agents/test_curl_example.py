"""The operator's and the caller's paths end to end, through the command line only: `motet agent serve` on
anvil, the curl example in docs/agents.md run as written, then `motet agent redeem`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.agents import PRICE

from motet.chain import Chain
from motet.payments import ChannelClient
from motet.units import format_gwei

DOC = Path(__file__).parents[2] / "docs" / "agents.md"


def curl_block() -> str:
    text = DOC.read_text()
    section = text[text.index("## Calling an agent with curl") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def cli_env(chain: Chain, account: int, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MOTET_RPC_URL": str(chain.url),
        "MOTET_PRIVATE_KEY": "0x" + bytes(chain.accounts[account].key).hex(),
        "MOTET_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


@pytest.fixture
def served_agent(anvil_chain: Chain, tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    command = [
        sys.executable, "-m", "motet", "agent", "serve", "summarize",
        "--price", f"{PRICE}wei", "--port", str(port), "--threads", "1", "--stake", "0.1eth",
    ]  # fmt: skip
    env = cli_env(anvil_chain, 5, tmp_path / "agent-home")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/.well-known/agent-registration.json", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        while "registered as agent" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.anvil
def test_serve_curl_pay_and_redeem_from_the_command_line(
    anvil_chain: Chain, served_agent: str, tmp_path: Path
) -> None:
    chain = anvil_chain
    env = {**cli_env(chain, 6, tmp_path / "payer-home"), "AGENT": served_agent}
    script = "set -euo pipefail\n" + curl_block()
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    required = json.loads((tmp_path / "required.json").read_text())
    (accepts,) = required["accepts"]
    assert accepts["payTo"] == chain.accounts[5].address
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["output"]["summary"]
    assert answer["owed"] == str(PRICE)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"paid": str(PRICE), "owed": str(PRICE)}

    redeemed = subprocess.run(
        [sys.executable, "-m", "motet", "agent", "redeem"],
        env=cli_env(chain, 5, tmp_path / "agent-home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert redeemed.returncode == 0, redeemed.stderr
    assert f"1 voucher, paid {format_gwei(PRICE)}," in redeemed.stdout
    chain.use("PaymentChannels", accepts["extra"]["channels"])
    state = ChannelClient(chain, chain.accounts[6]).channel(int(answer["receipt"]["channelId"]))
    assert state.redeemed == PRICE
