"""`motet demo --cheater`: a cheating agent joins the market, is caught by a sampled check, disputed, decided by
three validators and slashed; the demo prints every amount, then shows the composer leaving it out.

The cheater serves the bundled SmolLM2 requantized to Q4_0 (a cheaper, worse copy) under the honest Q4_1
model's ref, priced below the honest summarizer, so the composer's default selection picks it. The composer
checks the call (the demo draws every call; a composer draws each with probability `sample_rate`, 5 % by
default), finds the answer is not what the declared model gives, and disputes it with the receipt and a bond.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console

from motet.agents import AgentServer
from motet.agents.builtins import Text
from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.demo._cheater import cheating_runtime
from motet.demo._market import Market, model_agent
from motet.runtimes import LlamaCppRuntime
from motet.trust import Checker, Disputes, DisputeState, Validator, ValidatorEvent
from motet.units import ETH, GWEI, format_eth, format_gwei

CHEATER_PRICE = 20 * GWEI
"""Below every other summarizer of the market."""
CHEATER_STAKE = ETH
"""More than any other summarizer of the market: with its price, the default selection picks it first."""
VALIDATOR_FUNDS = 10**17
TEXTS = (
    "The city opened a new public library downtown on Monday. Visitors praised the bright reading rooms.",
    "Rain is expected all week; farmers welcome it after a long dry summer.",
    "The team lost the final after a late penalty, and fans left the stadium in silence.",
)
"""What the demo asks the cheater to summarise, until a check catches it (the first one does here)."""


@dataclass(frozen=True)
class CheatOutcome:
    """What `run_cheater` did, in wei."""

    cheater_id: int
    dispute: DisputeState
    stake_before: int
    stake_after: int
    challenger_paid: int
    """The bond back plus the reward, withdrawn by the challenger (the composer's account)."""
    validator_fees: tuple[int, ...]
    sunk: int
    """What the dispute added to the contract's neutral sink."""
    dropped: bool
    """Whether the default selection leaves the cheater out afterwards."""


async def run_cheater(
    market: Market, runtime: LlamaCppRuntime, console: Console | None = None, *, n_threads: int | None = None
) -> CheatOutcome:
    """The cheater's story on `market` (served by `local_market(..., verifiable=True)` on `runtime`); the
    cheater's model runs with `n_threads` llama.cpp threads."""
    out = console or Console()
    chain = market.chain
    out.rule("4. a cheater: a cheaper model under the honest model's name, caught, disputed and slashed")
    honest = await runtime.load()
    with out.status("requantizing the model for the cheater"):
        cheap = await cheating_runtime(honest, chain.settings.cache_dir / "demo", n_threads=n_threads)
    try:
        cheater_account = chain.accounts[len(market.servers) + 1]
        server = AgentServer(
            model_agent(
                "summarize", runtime=cheap, name="bargain-summarizer", price=CHEATER_PRICE, verifiable=True
            ),
            chain=chain,
            account=cheater_account,
        )
        async with server.running():
            cheater_id = await server.register(market.registry, stake=CHEATER_STAKE)
            out.print(
                f"bargain-summarizer (#{cheater_id}) runs {cheap.actual.model} {cheap.actual.quantization} but its "
                f"card, profile and receipts name {honest.model} {honest.quantization} (sha256 "
                f"{honest.sha256[:12]}…); price {format_gwei(CHEATER_PRICE)}, stake {format_eth(CHEATER_STAKE)}"
            )
            with tempfile.TemporaryDirectory(prefix="motet-demo-validators-") as folder:
                validators = _validators(chain, runtime, honest.sha256, Path(folder), out)
                return await _catch(market, runtime, cheater_id, validators, out)
    finally:
        await cheap.aclose()


def _validators(
    chain: Chain, runtime: LlamaCppRuntime, model: str, folder: Path, out: Console
) -> list[Validator]:
    """Three validators on new accounts funded by the chain's first, each registered for `model`."""
    stake = chain.settings.disputes.min_validator_stake
    validators = []
    for index in range(3):
        account: LocalAccount = Account.create()
        chain.transfer(account.address, VALIDATOR_FUNDS)
        validator = Validator(
            chain,
            account,
            Checker([runtime]),
            state_dir=folder / str(index),
            on_event=_printer(out, index + 1),
        )
        validator.register([model], stake)
        validators.append(validator)
    out.print(
        f"3 validators registered, each staking {format_eth(stake)} and declaring the honest model "
        "(in this one process they share its runtime; `motet validator serve` runs one per process)"
    )
    return validators


async def _catch(
    market: Market,
    runtime: LlamaCppRuntime,
    cheater_id: int,
    validators: list[Validator],
    out: Console,
) -> CheatOutcome:
    chain = market.chain
    published = chain.settings.disputes
    registry = market.registry
    flow = Workflow("summary", inputs=Text).add("summary", "summarize")
    stake_before = registry.get(cheater_id).stake
    async with Payer(chain, chain.accounts[0], checker=Checker([runtime]), random=lambda: 0.0) as payer:
        runnable = await flow.compile(registry, payer=payer, budget=1_000 * GWEI)
        out.print(runnable.explain())
        dispute_id: int | None = None
        for text in TEXTS:
            report = await runnable.run({"text": text})
            for check in report.checks:
                out.print(
                    f"paid {check.agent} {format_gwei(report.spent)}, then checked the call ({check.by}): "
                    f"[bold]{check.verdict}[/]: {check.detail}"
                )
                dispute_id = check.dispute_id or dispute_id
            if dispute_id is not None:
                break
        if dispute_id is None:
            raise RuntimeError(
                "no check caught the cheater on the demo's texts; see docs/trust.md, Calibration"
            )
        out.print(
            f"dispute #{dispute_id} opened by the composer with the signed receipt, the evidence and a "
            f"{format_eth(published.bond)} bond; the contract drew 3 validators from the next block's hash"
        )
        disputes = Disputes(chain, payer.account)
        sunk_before = int(disputes.contract.functions.sunk().call())
        for _ in range(10):  # three polls decide it: commit, reveal, resolve
            if (state := disputes.state(dispute_id)).resolved:
                break
            for validator in validators:
                await validator.poll()
        else:
            raise RuntimeError(f"dispute #{dispute_id} is still open after ten rounds: {state.summary()}")
        challenger_paid = disputes.withdraw()
        fees = tuple(disputes.balance(v.address) for v in validators)
        sunk = int(disputes.contract.functions.sunk().call()) - sunk_before
        stake_after = registry.get(cheater_id).stake
        reward = state.slashed * published.reward_bps // 10_000
        out.print(
            f"[bold red]slashed[/] bargain-summarizer #{cheater_id}: {state.slashed:,} wei "
            f"({format_eth(state.slashed)}, {published.slash_bps / 100:g} % of its {format_eth(stake_before)} "
            f"stake); {format_eth(stake_after)} left"
        )
        out.print(
            f"challenger: bond {format_eth(published.bond)} back + reward {format_eth(reward)} "
            f"({published.reward_bps / 100:g} % of the slash) = {challenger_paid:,} wei, withdrawn"
        )
        out.print(
            f"validators: {', '.join(format_eth(fee) for fee in fees)} (a {format_eth(published.validator_fee)} "
            f"fee each for a verdict that matches the outcome); sink: {sunk:,} wei ({format_eth(sunk)})"
        )
        again = await flow.compile(registry, payer=payer, budget=1_000 * GWEI)
        out.print(again.explain())
    dropped = cheater_id not in {offer.agent_id for offer in again.selections["summary"].offers}
    return CheatOutcome(cheater_id, state, stake_before, stake_after, challenger_paid, fees, sunk, dropped)


def _printer(out: Console, number: int) -> Callable[[ValidatorEvent], None]:
    def show(event: ValidatorEvent) -> None:
        if event.step in ("checked", "committed", "revealed", "resolved", "failed"):
            out.print(f"  validator {number}: {event}", highlight=False)

    return show
