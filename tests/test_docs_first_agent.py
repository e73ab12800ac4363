"""docs/first-agent.md, run as a reader runs it: its files written into an empty folder, terminals 1 and 2
(`motet agent serve`, your agent on a new anvil, then a built-in agent on the same chain) in the background,
terminal 3 (`motet run flow.toml`) to the end, then the money checked on chain.

The page's marker convention: a fenced block whose info string is `LANG file=NAME` is a file to save;
`bash terminal=N` is what a reader types in terminal N. The URL terminal 1 prints replaces the one shown
(`http://127.0.0.1:41235`), and free ports replace 8001 and 8002; nothing else is changed."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from motet.chain import Chain
from motet.payments import ChannelClient

PAGE = Path(__file__).parents[1] / "docs" / "first-agent.md"
SHOWN_URL = "http://127.0.0.1:41235"
_BLOCK = re.compile(r"^```(\w+) (file|terminal)=(\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DEV_KEY_2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # the payer of terminal 3
YOUR_AGENT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's dev account 0: terminal 1's agent
BUILT_IN = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # dev account 1: terminal 2's
_INHERITED = ("MOTET_RPC_URL", "MOTET_PRIVATE_KEY", "MOTET_KEYSTORE", "MOTET_REGISTRY", "MOTET_CHANNELS")

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def blocks() -> tuple[dict[str, str], dict[str, str]]:
    """The page's files (name → text) and terminals (number → commands)."""
    files: dict[str, str] = {}
    terminals: dict[str, str] = {}
    for _lang, kind, name, body in _BLOCK.findall(PAGE.read_text()):
        (files if kind == "file" else terminals)[name] = body
    return files, terminals


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def terminal(home: Path) -> dict[str, str]:
    """A new terminal: the reader's MOTET_HOME and PATH (where `motet` is), nothing exported yet."""
    inherited = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**inherited, "MOTET_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "250", "PATH": path}


def wait_for(log: Path, process: subprocess.Popen[bytes], text: str, seconds: float = 180) -> str:
    deadline = time.monotonic() + seconds
    while text not in (said := log.read_text()):
        assert process.poll() is None, said
        assert time.monotonic() < deadline, said
        time.sleep(0.2)
    return said


def test_the_first_agent_page_runs_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "first-agent"  # empty, as the page begins
    folder.mkdir()
    files, terminals = blocks()
    assert set(files) == {"myagent.py", "flow.toml"} and set(terminals) == {"1", "2", "3"}
    for name, text in files.items():
        (folder / name).write_text(text)
    ports = {"8001": str(free_port()), "8002": str(free_port())}

    def typed(number: str, url: str = SHOWN_URL) -> str:
        commands = terminals[number].replace(SHOWN_URL, url)
        for shown, port in ports.items():
            commands = commands.replace(f"--port {shown}", f"--port {port}")
        return "set -euo pipefail\n" + commands

    home = tmp_path / "home"  # one reader, one MOTET_HOME: each account keeps its own files there
    with ExitStack() as stack:

        def background(number: str, script: str) -> tuple[subprocess.Popen[bytes], Path]:
            log = tmp_path / f"terminal-{number}.log"
            output = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=folder,
                env=terminal(home),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own terminal: ctrl+c reaches bash and the motet it runs
            )
            stack.callback(stop, process)
            return process, log

        first, first_log = background("1", typed("1"))
        said = wait_for(first_log, first, "Ctrl-C stops")
        printed = re.search(r"^  export MOTET_RPC_URL=(http://127\.0\.0\.1:\d+) ", said, re.MULTILINE)
        assert printed is not None, said
        url = printed.group(1)
        assert re.search(
            rf"headliner serving headline at http://127\.0\.0\.1:{ports['8001']} for 100,000 gwei", said
        )

        second, second_log = background("2", typed("2", url))
        assert "registered as agent 2" in wait_for(second_log, second, "Ctrl-C stops")

        run = subprocess.run(
            ["bash", "-c", typed("3", url)],
            cwd=folder,
            env=terminal(home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        outputs = json.loads(run.stdout[run.stdout.index("{") :])
        assert outputs["summarize"]["summary"]
        assert 1 <= len(outputs["headline"]["headline"].split()) <= 8  # your agent's own rule

        # Both agents were paid on chain by the payer (dev account 2): your agent its own price, the built-in
        # agent its default, each through its own channel, settled.
        with Chain.connect(url, DEV_KEY_2) as chain:
            payer = ChannelClient(chain, chain.default_account)
            redeemed = {}
            for event in payer.contract.events.ChannelOpened().get_logs(from_block=0):
                if event["args"]["payer"] == chain.default_account.address:
                    redeemed[event["args"]["payee"]] = payer.channel(event["args"]["channel_id"]).redeemed
        assert redeemed == {YOUR_AGENT: 10**14, BUILT_IN: 10**15}
        report = " ".join(run.stderr.split())
        assert f"paid headliner (#1) 100,000 gwei for 1 call · to {YOUR_AGENT}" in report, report


def stop(process: subprocess.Popen[bytes]) -> None:
    """ctrl+c in that terminal: SIGTERM to its process group, so motet stops its agent and its anvil."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
