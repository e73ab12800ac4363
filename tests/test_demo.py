"""`motet demo` prints the figures it promises, and they add up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
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
    assert report.failovers == [failover] and "CUDA error: out of memory" in failover.problem
    final = " ".join(text.split("run report")[-1].split())  # the last frame: the report, its failover and why
    assert f"↻ failover summarize: {failover.failed_agent} failed (" in final
    assert "CUDA error: out of memory" in final
    assert "run done" in final and "paid summarizer (#2) 40 gwei for 1 call" in final and "settled" in final
    assert report.settlement is not None
    assert report.settlement.paid == report.spent == 75 * 10**9  # five calls, the flaky one not among them
    assert report.settlement.paid_calls == 5
    assert "gas per paid call" in text
    assert report.outputs["report"]["report"]
    (check,) = report.checks  # one paid call checked by re-running its model: the honest market passes
    assert check.verdict == "consistent" and check.by == "local" and check.dispute_id is None
    assert "checked one paid call" in text and "5% of its paid calls" in " ".join(text.split())


def test_cheater_needs_the_story() -> None:
    from typer.testing import CliRunner

    from motet.cli import app

    helped = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "160"})
    assert helped.exit_code == 0 and "--cheater" in helped.stdout
    refused = CliRunner().invoke(app, ["demo", "--cheater", "--no-story"], env={"COLUMNS": "160"})
    assert refused.exit_code == 2 and "drop --no-story" in " ".join(refused.output.split())


@pytest.mark.slow
async def test_the_cheater_is_caught_disputed_decided_by_three_validators_and_slashed(tmp_path: Path) -> None:
    from motet.demo import local_market, run_cheater
    from motet.runtimes import LlamaCppRuntime
    from motet.settings import Settings

    console = Console(record=True, width=200)
    chain = Chain.embedded(settings=Settings(home=tmp_path))
    published = chain.settings.disputes
    runtime = LlamaCppRuntime(n_threads=1)
    try:
        async with local_market(chain, runtime, verifiable=True) as market:
            outcome = await run_cheater(market, runtime, console, n_threads=1)
    finally:
        await runtime.aclose()
    text = " ".join(console.export_text().split())
    state = outcome.dispute
    assert state.cheat and state.cheat_votes == 3 and len(state.revealed) == 3
    slashed = outcome.stake_before * published.slash_bps // 10_000
    reward = slashed * published.reward_bps // 10_000
    assert state.slashed == slashed and outcome.stake_after == outcome.stake_before - slashed
    assert outcome.challenger_paid == published.bond + reward
    assert outcome.validator_fees == (published.validator_fee,) * 3
    assert outcome.sunk == slashed - reward - 3 * published.validator_fee
    assert outcome.dropped
    assert "cheat" in text and f"{slashed:,} wei" in text and f"{published.bond + reward:,} wei" in text
    assert f"sink: {outcome.sunk:,} wei" in text
    assert f"1. bargain-summarizer (#{outcome.cheater_id})" in text  # chosen first before it was caught
    assert "dropped bargain-summarizer" in text and "a confirmed cheat" in text
