"""The published economics: the detection curve against its simulation, every deviation losing money at the
defaults, B9's headline, parameter sets that must be reported unsafe, and the doc's figure and tables."""

from __future__ import annotations

import ast
import inspect
import math
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from web3 import Web3
from web3.logs import DISCARD

from motet.chain import Chain
from motet.payments import ReceiptDomain, ReceiptSigner
from motet.settings import DisputeSettings, Settings
from motet.trust import Verdict, economics
from motet.trust.economics import (
    CHEAT_RATES,
    Analysis,
    Economics,
    calls_to_catch,
    catch_probability,
    headline,
    simulate,
)
from motet.units import GWEI

ROOT = Path(__file__).resolve().parents[2]


def published(**changes: Any) -> Economics:
    return Economics.published(**changes)


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return simulate(published())


def test_the_published_numbers_come_from_settings() -> None:
    settings = Settings()
    econ = published()
    assert econ.sample_rate == settings.trust.sample_rate
    assert econ.bond == settings.disputes.bond
    assert econ.slash_bps == settings.disputes.slash_bps
    assert econ.validator_fee == settings.disputes.validator_fee
    assert econ.validators_per_dispute == settings.disputes.validators_per_dispute
    assert econ.validator_stake == settings.disputes.min_validator_stake
    assert econ.stake == settings.min_stake
    assert econ.slash == settings.min_stake * settings.disputes.slash_bps // 10_000
    assert econ.reward == econ.slash * settings.disputes.reward_bps // 10_000


def test_the_closed_form_detection_curve() -> None:
    # The figures the docs quote: p = 0.05, r = 10 %, d = 1 over 1,000 calls; and Pocket's p = 0.25.
    assert catch_probability(calls=1_000, cheat_rate=0.10, sample_rate=0.05) == pytest.approx(
        0.99334, abs=1e-5
    )
    assert catch_probability(calls=1_000, cheat_rate=0.10, sample_rate=0.05, detection=0.8) == pytest.approx(
        0.98183, abs=1e-5
    )
    for rate in CHEAT_RATES:
        n = calls_to_catch(cheat_rate=rate, sample_rate=0.05)
        assert n is not None
        assert catch_probability(calls=n, cheat_rate=rate, sample_rate=0.05) >= 0.99
        assert catch_probability(calls=n - 1, cheat_rate=rate, sample_rate=0.05) < 0.99
    assert calls_to_catch(cheat_rate=0.10, sample_rate=0.0) is None


def test_the_simulated_detection_curve_matches_the_closed_form(analysis: Analysis) -> None:
    assert len(analysis.catches) == len(CHEAT_RATES)
    compared = 0
    for catch in analysis.catches:
        for index, (expected, simulated) in enumerate(zip(catch.expected, catch.simulated, strict=True)):
            tolerance = 4.5 * catch.stderr(index) + 1e-3
            assert abs(simulated - expected) <= tolerance, (catch.cheat_rate, catch.checkpoints[index])
            compared += 1
    assert compared >= 40


def test_the_simulated_advantages_match_their_closed_forms(analysis: Analysis) -> None:
    for outcome in analysis.outcomes:
        tolerance = 4.5 * outcome.stderr + 1e-9 * abs(outcome.expected) + 1.0
        assert abs(outcome.simulated - outcome.expected) <= tolerance, outcome


def test_every_deviation_loses_money_at_the_published_defaults(analysis: Analysis) -> None:
    strategies = {(o.role, o.strategy) for o in analysis.outcomes}
    assert {role for role, _ in strategies} == {"agent", "challenger", "validator"}
    assert sum(role == "agent" for role, _ in strategies) == len(CHEAT_RATES) + 1  # + one colluding validator
    for outcome in analysis.outcomes:
        assert outcome.loses, outcome
        assert outcome.expected < 0 and outcome.simulated < 0
    assert all(condition.holds for condition in analysis.conditions), analysis.problems
    assert analysis.safe and analysis.problems == []


def test_cheating_loses_at_every_rate_when_the_check_misses_a_fifth() -> None:
    low = simulate(published(detection=0.8), agents=500, disputes=2_000)
    assert low.safe, low.problems
    assert low.economics.stake_multiple == pytest.approx(50.0)


def test_the_headline_holds_at_the_published_defaults(analysis: Analysis) -> None:
    result = headline(analysis=analysis)
    assert result.holds, str(result)
    assert result.catch_probability == pytest.approx(0.99334, abs=1e-5)
    assert abs(result.simulated_catch_probability - result.catch_probability) < 0.006
    assert result.detection_needed == pytest.approx(0.91894, abs=1e-4)
    assert result.sample_rate_needed == pytest.approx(0.045947, abs=1e-5)
    assert result.stake_multiple == pytest.approx(40.0)
    assert result.cheating_loses and result.deviations_lose
    assert "B9 holds" in str(result)


def test_the_headline_fails_when_the_check_catches_too_little(analysis: Analysis) -> None:
    # p = 0.05 meets "99 % within 1,000 calls" only for d ≥ 0.919: at d = 0.8 the catch target fails.
    result = headline(published(detection=0.8), analysis=analysis)
    assert not result.caught and not result.holds
    assert result.catch_probability == pytest.approx(0.98183, abs=1e-5)
    assert result.sample_rate_needed == pytest.approx(0.057434, abs=1e-5)
    assert "B9 FAILS" in str(result)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"slash_bps": 10}, "cheats on 100% of its calls"),
        ({"slash_bps": 10}, "stake covers the price"),
        ({"stake": 30 * 100 * GWEI}, "cheats on 1% of its calls"),
        ({"sample_rate": 0.0}, "cheats on 10% of its calls"),
        ({"honest_disputes": 0.0}, "votes cheat without re-running"),
        ({"validator_fee": 0}, "votes inconclusive without re-running"),
        ({"minority_bps": 0, "validator_fee": 0}, "votes with the cheater"),
        ({"bond": 0, "dispute_gas": 0}, "disputes an honest answer"),
        ({"gas_price": 10 * GWEI}, "lets a caught cheat go"),
        ({"gas_price": 10 * GWEI}, "validating pays"),
        ({"stake": 5 * 10**14}, "the slash pays the reward and the fees"),
    ],
)
def test_a_bad_parameter_set_is_reported_unsafe(changes: dict[str, object], problem: str) -> None:
    result = simulate(published(**changes), agents=300, disputes=2_000)
    assert not result.safe
    assert any(problem in line for line in result.problems), result.problems


def test_a_tiny_slash_fails_the_headline() -> None:
    econ = published(slash_bps=10)
    result = headline(econ, analysis=simulate(econ, agents=300, disputes=2_000), agents=500)
    assert result.caught and not result.cheating_loses and not result.holds
    assert result.stake_multiple == pytest.approx(20_000.0)


def test_the_stake_multiple_is_where_cheating_breaks_even() -> None:
    econ = published()
    for rate in (0.01, 0.10, 1.0):
        above = replace(econ, stake=math.ceil(econ.stake_multiple * econ.price * 1.02))
        below = replace(econ, stake=math.floor(econ.stake_multiple * econ.price * 0.98))
        assert economics._cheater_expected(above, rate) < 0 < economics._cheater_expected(below, rate)
    assert econ.least_stake(60 * GWEI) == 40 * 60 * GWEI
    assert published(detection=0.8).least_stake() == 50 * econ.price
    with pytest.raises(ValueError, match="no stake makes cheating lose"):
        published(sample_rate=0.0).least_stake()


def test_the_simulation_is_reproducible() -> None:
    first = simulate(published(), agents=200, disputes=1_000, seed=7)
    again = simulate(published(), agents=200, disputes=1_000, seed=7)
    other = simulate(published(), agents=200, disputes=1_000, seed=8)
    assert first == again
    assert [o.simulated for o in first.outcomes] != [o.simulated for o in other.outcomes]


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"sample_rate 1\.5: a share is between 0 and 1"):
        published(sample_rate=1.5)
    with pytest.raises(ValueError, match="slash_bps 20000"):
        published(slash_bps=20_000)
    with pytest.raises(ValueError, match="stake -1: wei is never negative"):
        published(stake=-1)


def test_matplotlib_is_imported_only_to_plot() -> None:
    tree = ast.parse(inspect.getsource(economics))
    top_level = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert "matplotlib" not in top_level
    plot = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "plot_detection")
    inside = {n.module for n in ast.walk(plot) if isinstance(n, ast.ImportFrom)}
    assert "matplotlib.figure" in inside


@pytest.mark.slow  # matplotlib's import and the drawing
def test_the_command_prints_the_tables_and_draws_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert economics.main(["--plot", str(tmp_path / "curve.svg")]) == 0
    out = capsys.readouterr().out
    assert "## Every deviation against honest play" in out
    assert "| 10% | 4,603 | 2,301 | 919 | 459 | 182 |" in out
    assert "B9 holds: at p = 0.05 and d = 1" in out
    assert "At d = 0.8 instead: caught within 1,000 calls with probability 98.18%" in out
    drawn = (tmp_path / "curve.svg").read_bytes()
    assert drawn.startswith(b"<?xml") and b"calls until caught with 99" in drawn
    # The figure in the docs is the one this code draws now (seeded, no date, fixed ids).
    assert drawn == (ROOT / "docs" / "trust-detection.svg").read_bytes()


def test_an_unsafe_command_line_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert economics.main(["--sample-rate", "0"]) == 1
    captured = capsys.readouterr()
    assert "B9 FAILS" in captured.out
    assert "UNSAFE: agent that cheats on 1% of its calls" in captured.err


def test_the_docs_show_the_current_numbers(analysis: Analysis) -> None:
    text = (ROOT / "docs" / "trust.md").read_text()
    assert economics.detection_table(analysis.economics) in text
    assert economics._outcomes_table(analysis) in text
    assert economics._conditions_table(analysis) in text
    assert str(headline(analysis=analysis)) in text
    assert "](trust-detection.svg)" in text
    assert "python -m motet.trust.economics --plot docs/trust-detection.svg" in text


@pytest.mark.slow  # deploys the contracts on the embedded chain and runs one dispute
def test_the_gas_assumed_covers_a_dispute_on_the_validation_contract(tmp_path: Path) -> None:
    econ = published()
    settings = Settings(home=tmp_path, disputes=DisputeSettings(commit_window=60, reveal_window=60))
    chain = Chain.embedded(accounts=8, settings=settings)
    owner, payout, challenger, *validators = chain.accounts[1:7]
    registry, channels, validation = (
        chain.contract(n) for n in ("AgentRegistry", "PaymentChannels", "Validation")
    )
    model = bytes.fromhex("ab" * 32)
    registered = chain.send(
        registry.functions.register(
            "data:,agent", payout.address, "0x" + "00" * 20, 1_000, [Web3.keccak(b"text.summarize")]
        ),
        sender=owner,
        value=settings.min_stake,
    )
    (event,) = registry.events.AgentRegistered().process_receipt(registered, errors=DISCARD)
    for validator in validators:
        chain.send(
            validation.functions.register_validator([model]),
            sender=validator,
            value=settings.disputes.min_validator_stake,
        )
    receipt = ReceiptSigner(payout.key, ReceiptDomain(chain.chain_id, channels.address)).sign(
        request_hash=Web3.keccak(b"request"),
        response_hash=Web3.keccak(b"response"),
        price=1_000,
        channel_id=7,
        seq=1,
        model_ref=Web3.keccak(b"profile"),
    )
    fields = (
        receipt.request_hash,
        receipt.response_hash,
        receipt.price,
        receipt.channel_id,
        receipt.seq,
        receipt.model_ref,
    )
    opened = chain.send(
        validation.functions.open_dispute(
            int(event["args"]["agent_id"]), fields, receipt.signature, model, "data:,evidence"
        ),
        sender=challenger,
        value=settings.disputes.bond,
    )
    (dispute,) = validation.events.DisputeOpened().process_receipt(opened, errors=DISCARD)
    dispute_id = int(dispute["args"]["dispute_id"])
    challenger_gas = opened["gasUsed"]
    challenger_gas += chain.send(validation.functions.draw(dispute_id), sender=challenger)["gasUsed"]
    # The worst case: the validator drawn last (the membership check reads the whole drawn list) commits and
    # reveals first (it pays for the counters' first writes).
    by_address = {v.address: v for v in validators}
    validators = [by_address[a] for a in reversed(validation.functions.drawn(dispute_id).call())]
    salts = [secrets.token_bytes(32) for _ in validators]
    commit_gas = []
    for validator, salt in zip(validators, salts, strict=True):
        hidden = Web3.keccak(
            abi_encode(
                ["uint256", "uint8", "bytes32", "address"],
                [dispute_id, int(Verdict.CHEAT), salt, validator.address],
            )
        )
        commit_gas.append(
            chain.send(validation.functions.commit(dispute_id, hidden), sender=validator)["gasUsed"]
        )
    reveal_gas = [
        chain.send(validation.functions.reveal(dispute_id, int(Verdict.CHEAT), salt), sender=validator)[
            "gasUsed"
        ]
        for validator, salt in zip(validators, salts, strict=True)
    ]
    resolved = chain.send(validation.functions.resolve(dispute_id), sender=challenger)
    challenger_gas += resolved["gasUsed"]
    challenger_gas += chain.send(validation.functions.withdraw(), sender=challenger)["gasUsed"]
    withdraw_gas = chain.send(validation.functions.withdraw(), sender=validators[0])["gasUsed"]
    # The contract pays what the economics model: the slash, the bond and reward back, a fee per validator.
    (outcome,) = validation.events.DisputeResolved().process_receipt(resolved, errors=DISCARD)
    assert outcome["args"]["slashed"] == econ.slash
    assert outcome["args"]["challenger_paid"] == econ.bond + econ.reward
    assert outcome["args"]["fees"] == econ.validators_per_dispute * econ.validator_fee
    assert 0 < challenger_gas <= econ.dispute_gas, challenger_gas
    assert 0 < max(commit_gas) <= econ.commit_gas, commit_gas
    assert 0 < max(reveal_gas) + withdraw_gas <= econ.reveal_gas, (reveal_gas, withdraw_gas)
