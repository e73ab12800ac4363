"""`motet validator serve` from the command line: its help, what it refuses, and (on anvil) three validator
processes deciding a dispute on their own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner, Result

from motet.agents import VerifiableProfile, profile_hash, response_hash
from motet.agents.builtins import Summary
from motet.chain import Chain, deterministic_addresses
from motet.cli import app
from motet.errors import ModelNotFound
from motet.payments import ReceiptDomain, ReceiptSigner, request_hash
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime, ModelRef
from motet.trust import Disputes, Evidence, Verdict


def motet(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160", **(env or {})})


def test_the_cli_lists_the_validator_group() -> None:
    done = motet("--help")
    assert done.exit_code == 0, done.output
    assert "validator" in done.stdout
    group = motet("validator", "--help")
    assert group.exit_code == 0, group.output
    assert "serve" in group.stdout


def test_serve_help_names_every_option_and_what_it_does() -> None:
    done = motet("validator", "serve", "--help")
    assert done.exit_code == 0, done.output
    text = " ".join(done.stdout.split())
    for option in ("--chain", "--model", "--stake", "--key-file", "--poll", "--threads", "--state-dir"):
        assert option in text, option
    assert "commit" in text and "reveal" in text
    assert "smollm2" in text and "GGUF" in text


def test_serve_refuses_the_embedded_chain() -> None:
    done = motet("validator", "serve", "--chain", "embedded")
    assert done.exit_code == 2
    assert "disputes are on a node" in " ".join(done.output.split())


def test_serve_refuses_a_key_file_where_it_cannot_sign(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("0x" + "11" * 32)
    done = motet("validator", "serve", "--chain", "anvil", "--key-file", str(key))
    assert done.exit_code == 2
    assert "a key file signs on a node" in " ".join(done.output.split())


def test_serve_refuses_an_unknown_model_before_loading_anything(tmp_path: Path) -> None:
    done = motet(
        "validator", "serve", "--chain", "anvil", "--model", "no-such-model",
        env={"MOTET_HOME": str(tmp_path)},
    )  # fmt: skip
    assert isinstance(done.exception, ModelNotFound)  # `motet` prints it as one red line and exits 1
    assert "no-such-model" in str(done.exception) and "bundled model" in str(done.exception)
    assert not (tmp_path / "validator").exists()  # nothing started, nothing written


# -- three validator processes on anvil -----------------------------------------------------------------------

INSTRUCTIONS = "Summarise the user's text in one short sentence. Answer in JSON."
DOCUMENT = (
    "The city opened a new public library downtown on Monday. Visitors praised the bright reading rooms."
)
MADE_UP = '{"summary": "Bananas are purple and the moon is made of cheese."}'
AGENT_STAKE = 10**17


def made_up_evidence(chain: Chain, agent: LocalAccount, agent_id: int, ref: ModelRef) -> Evidence:
    """A made-up answer to a summarize call, under a receipt the agent's own key signed: a cheat."""
    profile = VerifiableProfile.bind(
        ref,
        instructions=INSTRUCTIONS,
        template="{text}",
        output_schema=Summary.model_json_schema(),
        max_tokens=64,
    )
    domain = ReceiptDomain(chain.chain_id, chain.contract("PaymentChannels").address)
    input: dict[str, Any] = {"text": DOCUMENT}
    output = json.loads(MADE_UP)
    receipt = ReceiptSigner(bytes(agent.key), domain).sign(
        request_hash("summarize", input, 7, 1),
        response_hash(output, MADE_UP),
        10**12,
        7,
        1,
        profile_hash(profile),
    )
    return Evidence(agent_id, "summarize", input, output, MADE_UP, profile, receipt)


def home_on(chain: Chain, home: Path) -> Path:
    """An operator's own, empty motet home: nothing in it names `chain`'s contracts, which every process finds at
    their deterministic addresses (docs/protocol.md, "Where the contracts live")."""
    for name in ("AgentRegistry", "PaymentChannels", "Validation"):
        assert chain.contract(name).address == deterministic_addresses(chain.settings)[name]
    home.mkdir(parents=True)
    return home


@pytest.mark.slow
@pytest.mark.anvil
async def test_three_validator_processes_decide_a_dispute_on_their_own(
    tmp_path: Path, smollm2: LlamaCppRuntime
) -> None:
    with Chain.anvil() as chain:
        published = chain.settings.disputes
        agent, challenger = chain.accounts[1], chain.accounts[2]
        agent_id = Registry(chain).register(
            "data:application/json,{}", ["summarize"], 10**12, stake=AGENT_STAKE, owner=agent
        )
        processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            for index in (3, 4, 5):
                log = tmp_path / f"validator-{index}.log"
                env = {
                    **os.environ,
                    "MOTET_PRIVATE_KEY": "0x" + bytes(chain.accounts[index].key).hex(),
                    "MOTET_HOME": str(home_on(chain, tmp_path / f"home-{index}")),
                    "COLUMNS": "200",
                }
                command = [
                    sys.executable, "-m", "motet", "validator", "serve", "--chain", str(chain.url),
                    "--stake", f"{published.min_validator_stake}wei", "--poll", "0.3", "--threads", "1",
                ]  # fmt: skip
                if index == 5:  # this one reads its key from a file instead
                    key = tmp_path / "validator-5.key"
                    key.write_text(env.pop("MOTET_PRIVATE_KEY"))
                    key.chmod(0o644)  # readable by others: the command warns
                    command += ["--key-file", str(key)]
                with log.open("wb") as sink:
                    process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
                processes.append((process, log))
            deadline = time.monotonic() + 180
            for process, log in processes:
                while "watching" not in log.read_text():
                    assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.2)
                assert "registered as a validator" in log.read_text()

            ref = await smollm2.load()
            evidence = made_up_evidence(chain, agent, agent_id, ref)
            disputes = Disputes(chain, challenger)
            # Disputes.open mines nothing itself on anvil beyond the block its draw needs after the opening one.
            dispute = disputes.open(agent_id, evidence.receipt, evidence.model_sha256, evidence.to_uri())
            assert len(disputes.state(dispute).validators) == 3
            while not (state := disputes.state(dispute)).resolved:
                assert time.monotonic() < deadline, [log.read_text() for _, log in processes]
                await asyncio.sleep(0.3)
            ended = (f"dispute #{dispute} resolved", f"dispute #{dispute} decided")
            while not all(any(e in log.read_text() for e in ended) for _, log in processes):
                assert time.monotonic() < deadline, [log.read_text() for _, log in processes]
                await asyncio.sleep(0.3)
        finally:
            for process, _ in processes:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=60) for process, _ in processes]
        logs = [log.read_text() for _, log in processes]

        assert codes == [0, 0, 0], logs  # SIGTERM stops a validator cleanly
        assert set(state.validators) == {chain.accounts[i].address for i in (3, 4, 5)}
        assert set(state.revealed.values()) == {Verdict.CHEAT} and state.cheat_votes == 3
        slashed = AGENT_STAKE * published.slash_bps // 10_000
        assert state.slashed == slashed
        assert (
            disputes.balance(challenger.address) == published.bond + slashed * published.reward_bps // 10_000
        )
        for index, text in zip((3, 4, 5), logs, strict=True):
            assert disputes.balance(chain.accounts[index].address) == published.validator_fee
            assert f"dispute #{dispute} checked" in text and f"dispute #{dispute} committed" in text, text
            assert f"dispute #{dispute} revealed: cheat" in text and "stopped" in text, text
        assert "can be read by other users" in logs[2]
        assert sum(f"dispute #{dispute} resolved" in text for text in logs) == 1, logs
        assert sum(f"dispute #{dispute} decided" in text for text in logs) == 2, (
            logs
        )  # the others say how it ended
