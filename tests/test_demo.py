"""`motet demo` prints the figures it promises, and they add up."""

from __future__ import annotations

import re
import subprocess
import sys

from rich.console import Console

from motet.chain import Chain
from motet.demo import AGENTS, run_demo
from motet.units import format_gwei


def test_demo_figures_add_up() -> None:
    console = Console(record=True, width=140)
    figures = run_demo(Chain.embedded(), calls=90, console=console)
    text = console.export_text()
    assert "registered 3 agents" in text
    assert "redeemed 3 channels in one transaction" in text
    per_call = (figures["open_gas"] + figures["redeem_gas"]) / 90
    assert f"{per_call:,.1f} gas" in text
    for agent in AGENTS:
        # 30 calls each: owed and received on chain must match exactly
        owed = format_gwei(30 * agent.price)
        assert re.search(rf"{agent.name}\s+│\s+30\s+│\s+{owed}\s+│\s+{owed}\s+│", text), text


def test_demo_search_finds_the_summarizers() -> None:
    console = Console(record=True, width=140)
    run_demo(Chain.embedded(), calls=3, console=console)
    table = console.export_text().split("search:")[1].split("opened")[0]
    assert "#1" in table and "#2" in table and "#3" not in table  # keyword-miner does not summarize


def test_cli_rejects_an_unknown_chain() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "motet", "demo", "--chain", "mainnet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "unknown chain 'mainnet'" in result.stderr + result.stdout


def test_cli_help_lists_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "motet", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "demo" in result.stdout


async def test_the_story_fails_over_pays_and_settles() -> None:
    from motet.composer import Failover
    from motet.demo import run_story
    from motet.runtimes import LlamaCppRuntime

    console = Console(record=True, width=160)
    runtime = LlamaCppRuntime(n_threads=1)
    report = await run_story(Chain.embedded(), console=console, runtime=runtime)
    runtime.close()
    text = console.export_text()
    assert "registered agents" in text and "flaky-summarizer" in text
    (failover,) = [e for e in report.events if isinstance(e, Failover)]
    assert failover.node == "summarize" and failover.failed_agent.startswith("flaky-summarizer")
    assert report.settlement is not None
    assert report.settlement.paid == report.spent == 75 * 10**9  # five calls, the flaky one not among them
    assert report.settlement.paid_calls == 5
    assert "gas per paid call" in text
    assert report.outputs["report"]["report"]
