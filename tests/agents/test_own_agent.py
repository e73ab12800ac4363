"""Serving your own agent: `motet agent serve --agent file.py:name` as a user runs it (a subprocess on anvil,
called and paid over HTTP), its refusals in-process, `invoke(output_type=...)`, and the "Serve your own agent"
section of docs/agents.md run as written."""

from __future__ import annotations

import inspect
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import BaseModel
from typer.testing import CliRunner

from motet.agents import Agent, AgentClient, AgentServer, load_agent, private_endpoints_allowed
from motet.chain import Chain
from motet.cli import app
from motet.errors import AgentOutputMismatch, InvalidAgentDefinition
from motet.payments import CallSigner, ChannelClient

DOCS = Path(__file__).parents[2] / "docs" / "agents.md"
PRICE = 2 * 10**12
DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
"""anvil's dev account 1 (0x70997970…79C8): funded on every anvil chain, its key public."""

AGENT_FILE = f"""
from pydantic import BaseModel

from motet.agents import Agent, CallContext


class Text(BaseModel):
    text: str


class Count(BaseModel):
    words: int


agent = Agent("counter", price={PRICE})


@agent.capability("count_words", description="Count the words of a text.")
async def count_words(request: Text, ctx: CallContext) -> Count:
    return Count(words=len(request.text.split()))
"""


class Count(BaseModel):
    words: int


class WordsAsText(BaseModel):
    words: str  # the agent answers an integer: fits the card, not this model


class Tally(BaseModel):
    tally: int  # a field the card's output schema does not have


def docs_block() -> str:
    text = DOCS.read_text()
    section = text[text.index("## Serve your own agent") : text.index("## Calling an agent with curl")]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the section has a Python block"
    return match.group(1)


def test_the_serve_your_own_agent_section_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(docs_block(), "docs/agents.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip() == "agent 1: 3 words for 1000000000000 wei"


def test_what_waits_is_awaited_in_the_agents_layer() -> None:
    for method in (Agent.register, Agent.invoke, AgentServer.register, AgentClient.invoke, AgentClient.pay):
        assert inspect.iscoroutinefunction(method), method.__qualname__


# -- load_agent and its refusals ------------------------------------------------------------------------------


def test_load_agent_from_a_file_or_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myagent.py").write_text(AGENT_FILE)
    package = tmp_path / "mypackage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "agents.py").write_text(
        AGENT_FILE.replace("agent = Agent", "counter = Agent").replace("@agent.", "@counter.")
    )
    loaded = load_agent("myagent.py:agent", cwd=tmp_path)
    assert (loaded.name, list(loaded.capabilities), loaded.price) == ("counter", ["count_words"], PRICE)
    assert load_agent(str(tmp_path / "myagent.py"), cwd="/").name == "counter"  # `:agent` by default
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(load_agent("mypackage.agents:counter", cwd=tmp_path).capabilities) == ["count_words"]


@pytest.mark.parametrize(
    ("source", "spec", "said"),
    [
        (None, "nothere.py:agent", r"no file nothere\.py \(looked for .*nothere\.py\): give FILE\.py:NAME"),
        (None, "nothere_module:agent", r"no module 'nothere_module' \(looked on the Python path"),
        (
            AGENT_FILE,
            "myagent.py:agnt",
            r"myagent\.py has no 'agnt': the Agents it defines: agent \(serve one",
        ),
        ("x = 1\n", "myagent.py", r"has no 'agent': it defines no Agent: add one, e.g\. `agent = Agent\("),
        (AGENT_FILE, "myagent.py:count_words", r"myagent\.py:count_words is a function, not a motet Agent"),
        (AGENT_FILE, "myagent.py:Count", r"myagent\.py:Count is a ModelMetaclass, not a motet Agent"),
        (
            "from motet.agents import Agent\nagent = Agent('empty')\n",
            "myagent.py:agent",
            r"agent 'empty' \(myagent\.py:agent\) has no capabilities: add one with `@agent\.capability",
        ),
        (
            "import json\n\nvalue = json.loads('{')\n",
            "myagent.py:agent",
            r"importing myagent\.py failed at myagent\.py line 3: JSONDecodeError: Expecting",
        ),
        ("def broken(:\n", "myagent.py:agent", r"importing myagent\.py failed at line 1: SyntaxError: "),
        (AGENT_FILE, "myagent.py:not an identifier", r"names no agent: give FILE\.py:NAME"),
    ],
)
def test_load_agent_says_what_is_wrong_and_what_to_do(
    tmp_path: Path, source: str | None, spec: str, said: str
) -> None:
    if source is not None:
        (tmp_path / "myagent.py").write_text(source)
    with pytest.raises(InvalidAgentDefinition, match=said):
        load_agent(spec, cwd=tmp_path)


def plain(output: str) -> str:
    """What the command said, without rich's error box and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_serve_refuses_a_bad_agent_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(app, ["agent", "serve", "--agent", "myagent.py:agent", "--chain", "anvil"])
    assert missing.exit_code == 2
    assert "--agent" in missing.output and "no file myagent.py" in plain(missing.output)
    (tmp_path / "myagent.py").write_text(AGENT_FILE)
    both = runner.invoke(
        app, ["agent", "serve", "summarize", "--agent", "myagent.py:agent", "--chain", "anvil"]
    )
    assert both.exit_code == 2
    assert "give built-in capabilities (summarize) or --agent, not both" in plain(both.output)
    named = runner.invoke(
        app, ["agent", "serve", "--agent", "myagent.py", "--chain", "anvil", "--name", "x" * 65]
    )
    assert named.exit_code == 2 and "must be 1 to 64 characters" in plain(named.output)


# -- the command line, as a user runs it ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """`motet agent serve --agent myagent.py:agent --chain anvil` in a folder holding only myagent.py:
    (the agent's URL, the chain's URL, what it printed)."""
    folder = tmp_path_factory.mktemp("own-agent")
    (folder / "myagent.py").write_text(AGENT_FILE)
    port = free_port()
    log_path = folder / "serve.log"
    env = {**os.environ, "MOTET_HOME": str(folder / "home")}
    env.pop("MOTET_RPC_URL", None)
    command = [
        sys.executable, "-m", "motet", "agent", "serve", "--agent", "myagent.py:agent",
        "--chain", "anvil", "--port", str(port), "--threads", "1",
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "registered as agent" not in log_path.read_text() or "per call" not in log_path.read_text():
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            printed = log_path.read_text()
            found = re.search(r"MOTET_RPC_URL=(http\S+)", printed)
            assert found is not None, printed
            yield f"http://127.0.0.1:{port}", found.group(1), printed
        finally:
            process.terminate()
            process.wait(timeout=20)


@pytest.mark.anvil
@pytest.mark.slow
async def test_serve_your_own_agent_call_it_and_pay_it(served: tuple[str, str, str]) -> None:
    url, rpc, printed = served
    assert "registered as agent 1 on" in printed
    assert "counter serving count_words at" in " ".join(printed.split())
    with urllib.request.urlopen(f"{url}/.well-known/agent-registration.json", timeout=10) as answer:
        card = json.load(answer)
    assert (card["name"], card["pricing"]["perCall"]) == ("counter", str(PRICE))  # the file's own price
    assert [spec["name"] for spec in card["capabilities"]] == ["count_words"]
    # A payer on the same chain: anvil's dev account 1, the channels contract the agent names in its 402.
    payer_key = Account.from_key(DEV_KEY_1)
    request = urllib.request.Request(
        f"{url}/invoke",
        data=json.dumps({"capability": "count_words", "input": {"text": "a b"}}).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as required:
        urllib.request.urlopen(request, timeout=10)
    assert required.value.code == 402
    (accepts,) = json.load(required.value)["accepts"]
    chain = Chain.connect(rpc, "0x" + bytes(payer_key.key).hex())
    try:
        # An anvil reached by URL (chain id 31337) is a development chain, as it is for the command that started it.
        assert chain.kind == "rpc" and chain.development and private_endpoints_allowed(chain)
        chain.use("PaymentChannels", accepts["extra"]["channels"])
        payer = ChannelClient(chain, chain.default_account)
        channel = payer.open(accepts["payTo"], 10 * PRICE).channel_id
        async with AgentClient(url, signer=CallSigner(bytes(payer_key.key), payer.domain)) as client:
            call = await client.invoke(
                "count_words", {"text": "the cat sat"}, channel=channel, output_type=Count
            )
            assert isinstance(call.parsed, Count) and call.parsed.words == 3
            assert (call.price, call.owed, call.seq) == (PRICE, PRICE, 1)
            untyped = await client.invoke(
                "count_words", {"text": "one"}, channel=channel, payment=payer.sign(channel, call.owed)
            )
            assert untyped.parsed is None and untyped.output == {"words": 1}
            # A model with a field the card does not have: refused before the call, nothing owed.
            with pytest.raises(
                AgentOutputMismatch,
                match=r"\(tally: required by Tally, absent from the card's output schema, which has words\); "
                r"nothing was called or owed",
            ) as early:
                await client.invoke("count_words", {"text": "x"}, channel=channel, output_type=Tally)
            assert early.value.invocation is None
            # An output that fits the card but not the model: named, and the delivered call is owed and payable.
            with pytest.raises(
                AgentOutputMismatch,
                match=r"count_words's output does not fit WordsAsText \(words: Input should be a valid string\); "
                r"the call was delivered and is owed",
            ) as late:
                await client.invoke(
                    "count_words", {"text": "a b"}, channel=channel, output_type=WordsAsText,
                    payment=payer.sign(channel, untyped.owed),
                )  # fmt: skip
            assert late.value.fields == {"words": "Input should be a valid string"}
            delivered = late.value.invocation
            assert (delivered.seq, delivered.owed, delivered.output) == (3, 3 * PRICE, {"words": 2})
            assert await client.pay(channel, payer.sign(channel, delivered.owed)) == 3 * PRICE
    finally:
        chain.close()
