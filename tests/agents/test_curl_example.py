"""The curl example in docs/agents.md, run as written: a caller with no motet client pays for a call."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest
from agent_fixtures import PRICE

from motet.agents import AgentServer, builtin_agent
from motet.chain import Chain
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime

DOC = Path(__file__).parents[2] / "docs" / "agents.md"


def curl_block() -> str:
    text = DOC.read_text()
    section = text[text.index("## Calling an agent with curl") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.anvil
async def test_the_documented_curl_round_trip_pays_for_one_call(
    anvil_chain: Chain, smollm2: LlamaCppRuntime, tmp_path: Path
) -> None:
    chain = anvil_chain
    agent = builtin_agent("summarize", runtime=smollm2, name="curl-summarizer", price=PRICE)
    server = AgentServer(agent, chain=chain, account=chain.accounts[5])
    async with server.running() as url:
        await server.register(Registry(chain))
        payer = chain.accounts[6]
        env = {
            **os.environ,
            "AGENT": url,
            "MOTET_RPC_URL": str(chain.url),
            "MOTET_PRIVATE_KEY": "0x" + bytes(payer.key).hex(),
            "MOTET_HOME": str(tmp_path / "payer-home"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        script = "set -euo pipefail\n" + curl_block()
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", script, cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
        assert process.returncode == 0, stderr.decode()
    required = json.loads((tmp_path / "required.json").read_text())
    assert required["accepts"][0]["payTo"] == chain.accounts[5].address
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["output"]["summary"]
    assert answer["owed"] == str(PRICE)
    paid = json.loads(stdout.decode().strip().splitlines()[-1])
    assert paid == {"paid": str(PRICE), "owed": str(PRICE)}
    (redemption,) = server.channels.redeem()
    assert redemption.paid == PRICE
