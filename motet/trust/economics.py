"""The published economics of checked answers, and the simulation that justifies them (docs/trust.md, "Economics").

A caller checks a share p of its paid calls (`Settings.trust.sample_rate`); a check catches a cheated call with
probability d (the calibration's detection rate); a caught cheat is disputed with a bond and, confirmed by a
majority of the K drawn validators, slashes a share of the agent's stake (`Settings.disputes`). This module
turns those numbers into what each player can expect:

- `catch_probability` and `calls_to_catch`: the detection curve, P(caught within n calls) = 1 − (1 − p·r·d)^n
  for a cheater that fakes a share r of its calls.
- `simulate`: a seeded Monte-Carlo game of the strategies that matter (cheating at every rate, griefing
  disputes, letting a caught cheat go, lazy, absent and colluding validators), each against honest play, beside
  its closed form, with the conditions that make every deviation lose money (`Analysis.safe`, `Analysis.problems`).
- `headline`: B9's claim at the published defaults (`Headline.holds`).
- `plot_detection`: the figure of docs/trust.md (needs matplotlib, the dev extra; imported only there).

`python -m motet.trust.economics` prints the tables and the headline; `--plot docs/trust-detection.svg` also
draws the figure.

Example:
    >>> round(catch_probability(calls=1_000, cheat_rate=0.10, sample_rate=0.05), 4)
    0.9933
    >>> calls_to_catch(cheat_rate=0.10, sample_rate=0.05)
    919
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from motet.settings import Settings
from motet.trust._verdict import Verdict
from motet.units import GWEI

__all__ = [
    "CHEAT_RATES",
    "REFERENCE_PRICE",
    "SAMPLE_RATES",
    "Analysis",
    "Catch",
    "Condition",
    "Economics",
    "Headline",
    "Outcome",
    "calls_to_catch",
    "catch_probability",
    "detection_table",
    "headline",
    "main",
    "plot_detection",
    "simulate",
]

REFERENCE_PRICE: Final = 100 * GWEI
"""The worst-case price of one call the published analysis assumes (the dearest demo agent asks 60 gwei). What
matters is the ratio of an agent's stake to its price per call: see `Economics.stake_multiple`."""

CHEAT_RATES: Final = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.0)
"""The shares of its calls a cheater fakes, in the tables and the figure."""

SAMPLE_RATES: Final = (0.01, 0.02, 0.05, 0.10, 0.25)
"""The sample rates p of the detection table and the figure's second panel (0.25 is Pocket Network's)."""

_BPS: Final = 10_000
_LOW_DETECTION: Final = 0.8
"""The detection rate the sensitivity lines use (a cheat kind the check catches less often than another model)."""


@dataclass(frozen=True)
class Economics:
    """Everything the game depends on: the published numbers, and the assumptions about the world beside them.

    `Economics.published()` reads the published numbers from `Settings` (`trust.sample_rate`, `disputes`, the
    agent's `min_stake`); the assumptions (price, gain, detection, gas) have defaults written below. Amounts are
    wei; shares are between 0 and 1.

    Example:
        >>> Economics.published().stake_multiple
        40.0
    """

    sample_rate: float
    """p: the share of paid calls a caller checks."""
    bond: int
    """What a challenger puts up to open a dispute; forfeited when the dispute fails."""
    slash_bps: int
    """The share of the agent's stake a confirmed cheat loses, in basis points."""
    reward_bps: int
    """The share of the slashed amount the challenger is paid on top of its bond, in basis points."""
    validator_fee: int
    """Paid to each validator whose revealed verdict matches the outcome."""
    validators_per_dispute: int
    """K: validators drawn per dispute; a majority (K // 2 + 1) of cheat votes confirms a cheat."""
    no_reveal_bps: int
    """The share of its stake a drawn validator loses when it does not reveal, in basis points."""
    minority_bps: int
    """The share of its stake a validator loses when it reveals against the outcome, in basis points."""
    validator_stake: int
    """A validator's stake (the least a validator may have: its penalties are smallest there)."""
    stake: int
    """The agent's bonded stake (the least the composer selects by default: a cheater's loss is smallest there)."""
    price: int = REFERENCE_PRICE
    """The agent's price per call (its worst case, for a per-token offer)."""
    gain: float = 1.0
    """What a cheated call saves the agent, as a share of its price (1: a canned answer that costs nothing)."""
    detection: float = 1.0
    """d: the share of checked cheated calls the check calls a cheat (the calibration's detection rate: 1.0 for
    another model)."""
    rerun_cost: float = 1.0
    """What re-running one call costs a validator, as a share of the call's price."""
    validator_error: float = 0.0
    """The share of disputes in which an honest validator's re-run votes wrong (0: the calibration's false-cheat
    rate, and the same deterministic check catches what the challenger's caught)."""
    honest_disputes: float = 0.01
    """The share of disputes that are about an honest answer (griefs, mistakes, and decoys opened on purpose to
    keep validators re-running): what a validator that votes without re-running risks being wrong on."""
    bribe: int = 0
    """What a cheater pays a colluding validator per dispute (it gains nothing from one vote that cannot change
    the outcome, so 0)."""
    gas_price: int = GWEI // 100
    """Wei per gas (0.01 gwei, a rollup's price; the conditions print the price at which each role breaks even,
    and the published numbers do not pay a challenger on a chain whose gas costs much more)."""
    dispute_gas: int = 1_400_000
    """Gas a challenger spends on one dispute: open (checks the receipt's signature), draw, resolve and withdraw;
    1,347,481 measured on the embedded chain with three validators (the draw grows with the validator pool)."""
    commit_gas: int = 115_000
    """Gas of one validator's commit (111,797 at most measured: the validator drawn last, committing first)."""
    reveal_gas: int = 330_000
    """Gas of one validator's reveal and withdrawal (286,032 + 30,141 at most measured: the first to reveal)."""
    calls: int = 1_000
    """The horizon: calls a cheater serves, unless it is caught first (it then drops out of default selection)."""

    def __post_init__(self) -> None:
        shares = {
            "sample_rate": self.sample_rate,
            "detection": self.detection,
            "validator_error": self.validator_error,
            "honest_disputes": self.honest_disputes,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value}: a share is between 0 and 1")
        for name in ("slash_bps", "reward_bps", "no_reveal_bps", "minority_bps"):
            if not 0 <= getattr(self, name) <= _BPS:
                raise ValueError(f"{name} {getattr(self, name)}: basis points are between 0 and {_BPS}")
        if self.validators_per_dispute < 1:
            raise ValueError(f"validators_per_dispute {self.validators_per_dispute}: at least 1")
        if self.calls < 1:
            raise ValueError(f"calls {self.calls}: the horizon is at least one call")
        if self.gain < 0 or self.rerun_cost < 0:
            raise ValueError(
                f"gain {self.gain} and rerun_cost {self.rerun_cost} are shares of a price, never negative"
            )
        amounts = ("bond", "validator_fee", "validator_stake", "stake", "price", "bribe", "gas_price")
        for name in amounts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} {getattr(self, name)}: wei is never negative")

    @classmethod
    def published(cls, settings: Settings | None = None, **changes: Any) -> Economics:
        """The published numbers of `settings` (default `Settings()`), with `changes` to any field.

        Example:
            >>> Economics.published(detection=0.8).detection
            0.8
        """
        settings = settings or Settings()
        disputes = settings.disputes
        published = cls(
            sample_rate=settings.trust.sample_rate,
            bond=disputes.bond,
            slash_bps=disputes.slash_bps,
            reward_bps=disputes.reward_bps,
            validator_fee=disputes.validator_fee,
            validators_per_dispute=disputes.validators_per_dispute,
            no_reveal_bps=disputes.no_reveal_bps,
            minority_bps=disputes.minority_bps,
            validator_stake=disputes.min_validator_stake,
            stake=settings.min_stake,
        )
        return replace(published, **changes)

    @property
    def majority(self) -> int:
        """Cheat votes that confirm a cheat."""
        return self.validators_per_dispute // 2 + 1

    @property
    def slash(self) -> int:
        """What a confirmed cheat takes from the agent's stake."""
        return self.stake * self.slash_bps // _BPS

    @property
    def reward(self) -> int:
        """What the challenger of a confirmed cheat is paid on top of its bond."""
        return self.slash * self.reward_bps // _BPS

    def confirm_probability(self, colluders: int = 0) -> float:
        """The chance that a dispute over a real cheat is confirmed, when `colluders` of the drawn validators
        vote with the cheater and the others vote right with probability 1 − `validator_error`."""
        return _at_least(self.majority, self.validators_per_dispute - colluders, 1.0 - self.validator_error)

    def false_confirm_probability(self, colluders: int = 0) -> float:
        """The chance that a dispute over an honest answer is confirmed as a cheat, `colluders` voting cheat."""
        return _at_least(
            self.majority - colluders, self.validators_per_dispute - colluders, self.validator_error
        )

    @property
    def stake_multiple(self) -> float:
        """The least stake ÷ price per call at which cheating loses money at every cheat rate:
        gain ÷ (slash share × p × d × confirmation); infinite when nothing is ever slashed.

        A cheater at rate r gains r·gain·price per call and loses the slash with probability p·r·d per call, so
        r cancels: the same stake protects against every cheat rate."""
        per_call = self.slash_bps / _BPS * self.sample_rate * self.detection * self.confirm_probability()
        return math.inf if per_call <= 0 else self.gain / per_call

    def least_stake(self, price: int | None = None) -> int:
        """The stake at which cheating stops paying (at any rate) for an agent asking `price` per call (default
        `self.price`); any stake above it makes cheating lose. What a selection policy should require of an agent
        that serves a verifiable capability.

        Example:
            >>> Economics.published().least_stake(60 * GWEI)
            2400000000000
        """
        multiple = self.stake_multiple
        if math.isinf(multiple):
            raise ValueError("nothing is ever slashed (slash, p or d is 0): no stake makes cheating lose")
        return math.ceil(multiple * (self.price if price is None else price))


def _at_least(need: int, voters: int, chance: float) -> float:
    """P(Binomial(voters, chance) ≥ need)."""
    if need <= 0:
        return 1.0
    return sum(
        math.comb(voters, k) * chance**k * (1.0 - chance) ** (voters - k) for k in range(need, voters + 1)
    )


def catch_probability(*, calls: int, cheat_rate: float, sample_rate: float, detection: float = 1.0) -> float:
    """P(a cheater faking a share `cheat_rate` of its calls is caught within `calls` calls) = 1 − (1 − p·r·d)^n.

    Example:
        >>> round(catch_probability(calls=1_000, cheat_rate=0.10, sample_rate=0.05, detection=0.8), 4)
        0.9818
    """
    return 1.0 - (1.0 - sample_rate * cheat_rate * detection) ** calls


def calls_to_catch(
    *, cheat_rate: float, sample_rate: float, detection: float = 1.0, probability: float = 0.99
) -> int | None:
    """The fewest calls within which such a cheater is caught with at least `probability`; None if never.

    Example:
        >>> calls_to_catch(cheat_rate=0.01, sample_rate=0.25)
        1840
    """
    per_call = sample_rate * cheat_rate * detection
    if per_call <= 0.0:
        return None
    if per_call >= 1.0:
        return 1
    return math.ceil(math.log(1.0 - probability) / math.log(1.0 - per_call) - 1e-9)


@dataclass(frozen=True)
class Outcome:
    """One deviation against honest play: its expected advantage (its EV minus the honest EV of the same
    player) in closed form and as simulated. Negative means the deviation loses money."""

    role: str
    """"agent", "challenger" or "validator"."""
    strategy: str
    """What it does instead of playing honestly."""
    per: str
    """What the advantage is counted over ("agent, 1,000 calls", "dispute")."""
    expected: float
    """The closed form, wei."""
    simulated: float
    """The Monte-Carlo mean, wei."""
    stderr: float
    """The standard error of `simulated`, wei."""

    @property
    def loses(self) -> bool:
        return self.expected < 0 and self.simulated < 0


@dataclass(frozen=True)
class Condition:
    """One inequality the safety of the game rests on, with the numbers that decide it."""

    name: str
    holds: bool
    detail: str


@dataclass(frozen=True)
class Catch:
    """The detection curve of one cheat rate: P(caught within n calls) at each checkpoint, closed form and as
    simulated by `agents` cheaters."""

    cheat_rate: float
    checkpoints: tuple[int, ...]
    expected: tuple[float, ...]
    simulated: tuple[float, ...]
    agents: int

    def stderr(self, index: int) -> float:
        value = self.expected[index]
        return math.sqrt(max(value * (1.0 - value), 1e-12) / self.agents)


@dataclass(frozen=True)
class Analysis:
    """What `simulate` found: every deviation's outcome, the conditions, and the detection curves."""

    economics: Economics
    outcomes: tuple[Outcome, ...]
    conditions: tuple[Condition, ...]
    catches: tuple[Catch, ...]
    seed: int

    @property
    def problems(self) -> list[str]:
        """What makes the game unsafe: each deviation that does not lose, each condition that fails."""
        found = [
            f"{o.role} that {o.strategy}: expected {_gwei(o.expected)}, simulated {_gwei(o.simulated)} per {o.per}"
            for o in self.outcomes
            if not o.loses
        ]
        return found + [f"{c.name}: {c.detail}" for c in self.conditions if not c.holds]

    @property
    def safe(self) -> bool:
        """Every deviation loses money in expectation and every condition holds."""
        return not self.problems

    def cheating_loses(self) -> bool:
        return all(o.loses for o in self.outcomes if o.role == "agent")


# The game ---------------------------------------------------------------------------------------------------


def _cheater_expected(econ: Economics, rate: float, colluders: int = 0) -> float:
    """E[gain − slash] over the horizon: (1 − (1 − q)^N)·(r·g·P/q − slash) with q = p·r·d·c (Wald's identity:
    the expected cheated calls served before the catch are r × the expected calls served)."""
    q = econ.sample_rate * rate * econ.detection * econ.confirm_probability(colluders)
    gain = econ.gain * econ.price
    if q <= 0.0:
        return rate * gain * econ.calls
    return (1.0 - (1.0 - q) ** econ.calls) * (rate * gain / q - econ.slash)


def _play_cheaters(
    econ: Economics, rate: float, agents: int, rng: np.random.Generator, colluders: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each of `agents` cheaters serves up to `calls` calls, faking each with probability `rate`; each call is
    checked with probability p, a checked fake is caught with probability d, and each caught fake is disputed
    before K validators. Returns, per cheater, the index of the call whose dispute confirmed the cheat (`calls`
    if none did) and the cheated calls it served up to then."""
    n = econ.calls
    first = np.full(agents, n, dtype=np.int64)
    cheated = np.zeros(agents, dtype=np.int64)
    chunk = max(1, 1_000_000 // n)
    positions = np.arange(n)
    for start in range(0, agents, chunk):
        size = min(chunk, agents - start)
        cheats = rng.random((size, n), dtype=np.float32) < rate
        flagged = cheats & (rng.random((size, n), dtype=np.float32) < econ.sample_rate * econ.detection)
        rows, cols = np.nonzero(flagged)
        votes = rng.binomial(
            econ.validators_per_dispute - colluders, 1.0 - econ.validator_error, size=rows.size
        )
        confirmed = votes >= econ.majority
        caught = np.full(size, n, dtype=np.int64)
        np.minimum.at(caught, rows[confirmed], cols[confirmed])
        first[start : start + size] = caught
        cheated[start : start + size] = (cheats & (positions[None, :] <= caught[:, None])).sum(axis=1)
    return first, cheated


def _cheater_outcome(
    econ: Economics, rate: float, agents: int, rng: np.random.Generator, colluders: int = 0
) -> tuple[Outcome, Catch]:
    first, cheated = _play_cheaters(econ, rate, agents, rng, colluders)
    advantage = cheated * (econ.gain * econ.price) - (first < econ.calls) * float(econ.slash)
    with_colluder = " with one colluding validator" if colluders else ""
    outcome = Outcome(
        role="agent",
        strategy=f"cheats on {rate:.0%} of its calls{with_colluder}",
        per=f"agent, {econ.calls:,} calls",
        expected=_cheater_expected(econ, rate, colluders),
        simulated=float(advantage.mean()),
        stderr=float(advantage.std() / math.sqrt(agents)),
    )
    checkpoints = tuple(k for k in (1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000) if k <= econ.calls)
    detection = econ.detection * econ.confirm_probability(colluders)
    catch = Catch(
        cheat_rate=rate,
        checkpoints=checkpoints,
        expected=tuple(
            catch_probability(calls=k, cheat_rate=rate, sample_rate=econ.sample_rate, detection=detection)
            for k in checkpoints
        ),
        simulated=tuple(float((first < k).mean()) for k in checkpoints),
        agents=agents,
    )
    return outcome, catch


def _challenger_outcomes(econ: Economics, disputes: int, rng: np.random.Generator) -> list[Outcome]:
    gas = float(econ.dispute_gas * econ.gas_price)
    k = econ.validators_per_dispute
    # Griefing: dispute an honest answer; paid only if a majority of honest validators errs.
    false_confirmed = rng.binomial(k, econ.validator_error, size=disputes) >= econ.majority
    grief = np.where(false_confirmed, float(econ.reward), -float(econ.bond)) - gas
    f = econ.false_confirm_probability()
    # Letting a caught cheat go: forgo what disputing it would pay (the reward, or the bond if it fails).
    confirmed = rng.binomial(k, 1.0 - econ.validator_error, size=disputes) >= econ.majority
    forgo = -(np.where(confirmed, float(econ.reward), -float(econ.bond)) - gas)
    c = econ.confirm_probability()
    return [
        Outcome(
            role="challenger",
            strategy="disputes an honest answer (griefing)",
            per="dispute",
            expected=f * econ.reward - (1.0 - f) * econ.bond - gas,
            simulated=float(grief.mean()),
            stderr=float(grief.std() / math.sqrt(disputes)),
        ),
        Outcome(
            role="challenger",
            strategy="lets a caught cheat go (no dispute)",
            per="caught cheat",
            expected=-(c * econ.reward - (1.0 - c) * econ.bond - gas),
            simulated=float(forgo.mean()),
            stderr=float(forgo.std() / math.sqrt(disputes)),
        ),
    ]


@dataclass(frozen=True)
class _Validator:
    """How a validator plays a dispute: whether it re-runs, and what it reveals when it does not (None: no
    reveal). A validator that re-runs reveals what the re-run says."""

    strategy: str
    reruns: bool
    blind_vote: Verdict | None = None
    reveals: bool = True
    only_cheats: bool = False
    bribe: bool = False


_VALIDATORS: Final = (
    _Validator("votes cheat without re-running (lazy)", reruns=False, blind_vote=Verdict.CHEAT),
    _Validator("votes consistent without re-running (lazy)", reruns=False, blind_vote=Verdict.CONSISTENT),
    _Validator("votes inconclusive without re-running (lazy)", reruns=False, blind_vote=Verdict.INCONCLUSIVE),
    _Validator("commits and never reveals", reruns=False, reveals=False),
    _Validator(
        "votes with the cheater (one colluding validator)",
        reruns=False,
        blind_vote=Verdict.CONSISTENT,
        only_cheats=True,
        bribe=True,
    ),
)
_HONEST_VALIDATOR: Final = _Validator("re-runs and reveals what it finds", reruns=True)


def _validator_payoff(
    econ: Economics,
    play: _Validator,
    is_cheat: NDArray[np.bool_],
    others: NDArray[np.int64],
    wrong: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """What `play` earns in each dispute: `is_cheat` is the truth, `others` the cheat votes of the other drawn
    validators (honest), `wrong` whether this validator's re-run would err."""
    if play.reruns:
        votes_cheat = is_cheat ^ wrong
        vote = np.where(votes_cheat, int(Verdict.CHEAT), int(Verdict.CONSISTENT))
    elif play.reveals and play.blind_vote is not None:
        vote = np.full(is_cheat.shape, int(play.blind_vote))
    else:
        vote = np.zeros(is_cheat.shape, dtype=np.int64)  # no reveal
    outcome_cheat = others + (vote == int(Verdict.CHEAT)) >= econ.majority
    decisive = (vote == int(Verdict.CHEAT)) | (vote == int(Verdict.CONSISTENT))
    matches = decisive & ((vote == int(Verdict.CHEAT)) == outcome_cheat)
    pay = np.where(matches, float(econ.validator_fee), 0.0)
    pay -= np.where(decisive & ~matches, float(econ.validator_stake * econ.minority_bps // _BPS), 0.0)
    pay -= np.where(vote == 0, float(econ.validator_stake * econ.no_reveal_bps // _BPS), 0.0)
    gas = econ.commit_gas + (econ.reveal_gas if play.reveals else 0)
    pay -= float(gas * econ.gas_price)
    if play.reruns:
        pay -= econ.rerun_cost * econ.price
    if play.bribe:
        pay += float(econ.bribe)
    return pay


def _validator_expected(econ: Economics, play: _Validator, honest_share: float) -> float:
    """The closed form of `_validator_payoff`: enumerate the truth, this validator's error and the others' votes."""
    total = 0.0
    for is_cheat, weight in ((True, 1.0 - honest_share), (False, honest_share)):
        if weight == 0.0:
            continue
        cheat_vote = 1.0 - econ.validator_error if is_cheat else econ.validator_error
        for wrong, chance in ((False, 1.0 - econ.validator_error), (True, econ.validator_error)):
            if chance == 0.0:
                continue
            for others in range(econ.validators_per_dispute):
                n = econ.validators_per_dispute - 1
                p_others = math.comb(n, others) * cheat_vote**others * (1.0 - cheat_vote) ** (n - others)
                value = _validator_payoff(
                    econ,
                    play,
                    np.array([is_cheat]),
                    np.array([others], dtype=np.int64),
                    np.array([wrong]),
                )[0]
                total += weight * chance * p_others * float(value)
    return total


def _validator_outcomes(econ: Economics, disputes: int, rng: np.random.Generator) -> list[Outcome]:
    outcomes = []
    for play in _VALIDATORS:
        honest_share = 0.0 if play.only_cheats else econ.honest_disputes
        is_cheat = rng.random(disputes) >= honest_share
        others = rng.binomial(
            econ.validators_per_dispute - 1,
            np.where(is_cheat, 1.0 - econ.validator_error, econ.validator_error),
        ).astype(np.int64)
        wrong = rng.random(disputes) < econ.validator_error
        advantage = _validator_payoff(econ, play, is_cheat, others, wrong) - _validator_payoff(
            econ, _HONEST_VALIDATOR, is_cheat, others, wrong
        )
        outcomes.append(
            Outcome(
                role="validator",
                strategy=play.strategy,
                per="dispute over a cheat" if play.only_cheats else "dispute",
                expected=_validator_expected(econ, play, honest_share)
                - _validator_expected(econ, _HONEST_VALIDATOR, honest_share),
                simulated=float(advantage.mean()),
                stderr=float(advantage.std() / math.sqrt(disputes)),
            )
        )
    return outcomes


def _conditions(econ: Economics) -> list[Condition]:
    fee_gas = (econ.commit_gas + econ.reveal_gas) * econ.gas_price
    validator_net = econ.validator_fee - econ.rerun_cost * econ.price - fee_gas
    challenger_net = econ.confirm_probability() * econ.reward - econ.dispute_gas * econ.gas_price
    at_risk = econ.validator_fee + econ.validator_stake * econ.minority_bps // _BPS
    needed_share = econ.rerun_cost * econ.price / at_risk if at_risk else math.inf
    multiple = econ.stake / econ.price if econ.price else math.inf
    paid_out = econ.reward + econ.validators_per_dispute * econ.validator_fee
    return [
        Condition(
            "stake covers the price",
            multiple >= econ.stake_multiple,
            f"cheating loses at every rate when stake ≥ {econ.stake_multiple:,.0f} × price per call "
            f"(gain {econ.gain:g} ÷ (slash {econ.slash_bps / _BPS:g} × p {econ.sample_rate:g} × d "
            f"{econ.detection:g})); here {_gwei(econ.stake)} ÷ {_gwei(econ.price)} = {multiple:,.0f} ×",
        ),
        Condition(
            "disputing a caught cheat pays",
            challenger_net > 0,
            f"reward {_gwei(econ.reward)} − dispute gas {_gwei(econ.dispute_gas * econ.gas_price)} = "
            f"{_gwei(challenger_net)}; breaks even at {_gwei_per_gas(econ.reward / max(econ.dispute_gas, 1))} gas",
        ),
        Condition(
            "validating pays",
            validator_net > 0,
            f"fee {_gwei(econ.validator_fee)} − re-run {_gwei(econ.rerun_cost * econ.price)} − commit and reveal "
            f"gas {_gwei(fee_gas)} = {_gwei(validator_net)}; breaks even at "
            f"{_gwei_per_gas((econ.validator_fee - econ.rerun_cost * econ.price) / max(econ.commit_gas + econ.reveal_gas, 1))}"
            " gas",
        ),
        Condition(
            "validators cannot guess",
            econ.honest_disputes > needed_share,
            f"a blind cheat vote saves the re-run ({_gwei(econ.rerun_cost * econ.price)}) and risks fee + minority "
            f"penalty ({_gwei(at_risk)}) on disputes over honest answers: it loses while they are more than "
            f"{needed_share:.3%} of disputes (here {econ.honest_disputes:.2%}); with none (the verifier's dilemma) "
            "decoy disputes on known-honest receipts must keep them there",
        ),
        Condition(
            "the slash pays the reward and the fees",
            econ.slash >= paid_out,
            f"slash {_gwei(econ.slash)} ≥ reward {_gwei(econ.reward)} + {econ.validators_per_dispute} fees "
            f"{_gwei(econ.validators_per_dispute * econ.validator_fee)}",
        ),
    ]


def simulate(
    economics: Economics | None = None,
    *,
    cheat_rates: Sequence[float] = CHEAT_RATES,
    agents: int = 2_000,
    disputes: int = 20_000,
    seed: int = 15,
) -> Analysis:
    """Play every strategy against honest play under `economics` (default: the published numbers).

    `agents` cheaters per cheat rate each serve `economics.calls` calls; `disputes` disputes per challenger and
    validator strategy. The same `seed` gives the same analysis.

    Example:
        >>> simulate(Economics.published(), agents=200, disputes=2_000).safe
        True
    """
    econ = economics or Economics.published()
    rng = np.random.default_rng(seed)
    outcomes: list[Outcome] = []
    catches: list[Catch] = []
    for rate in cheat_rates:
        outcome, catch = _cheater_outcome(econ, rate, agents, rng)
        outcomes.append(outcome)
        catches.append(catch)
    if econ.validators_per_dispute >= 2:
        outcomes.append(_cheater_outcome(econ, 0.10, agents, rng, colluders=1)[0])
    outcomes += _challenger_outcomes(econ, disputes, rng)
    outcomes += _validator_outcomes(econ, disputes, rng)
    return Analysis(econ, tuple(outcomes), tuple(_conditions(econ)), tuple(catches), seed)


# The headline (B9) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """B9's claim: at the published defaults, a cheater faking ≥ `cheat_rate` of its calls is caught with
    probability ≥ `target` within `calls` calls, and cheating has negative expected value at every cheat rate.

    `detection_needed` is the least d (at this p) and `sample_rate_needed` the least p (at this d) that meet
    `target`."""

    sample_rate: float
    detection: float
    cheat_rate: float
    calls: int
    target: float
    catch_probability: float
    simulated_catch_probability: float
    detection_needed: float
    sample_rate_needed: float
    stake_multiple: float
    cheating_loses: bool
    deviations_lose: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def caught(self) -> bool:
        return self.catch_probability >= self.target

    @property
    def holds(self) -> bool:
        return self.caught and self.cheating_loses

    def __str__(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        return (
            f"B9 {verdict}: at p = {self.sample_rate:g} and d = {self.detection:g}, a cheater faking "
            f"{self.cheat_rate:.0%} of its calls is caught within {self.calls:,} calls with probability "
            f"{self.catch_probability:.2%} (simulated {self.simulated_catch_probability:.2%}; target "
            f"{self.target:.0%}, met for d ≥ {self.detection_needed:.3f}, or p ≥ {self.sample_rate_needed:.4f} "
            f"at this d); cheating {'loses' if self.cheating_loses else 'does NOT lose'} money at every cheat rate "
            f"(stake ≥ {self.stake_multiple:,.0f} × price per call); every deviation "
            f"{'loses' if self.deviations_lose else 'does NOT lose'}."
        )


def headline(
    economics: Economics | None = None,
    *,
    cheat_rate: float = 0.10,
    calls: int = 1_000,
    target: float = 0.99,
    analysis: Analysis | None = None,
    agents: int = 4_000,
    seed: int = 15,
) -> Headline:
    """B9's headline under `economics` (default: the published numbers); `analysis` reuses a `simulate` result.

    Example:
        >>> headline(agents=500).holds
        True
    """
    econ = replace(economics or Economics.published(), calls=calls)
    analysis = analysis or simulate(econ, seed=seed, agents=min(agents, 2_000))
    rng = np.random.default_rng(seed + 1)
    first, _ = _play_cheaters(econ, cheat_rate, agents, rng)
    confirm = econ.confirm_probability()
    per_call_needed = 1.0 - (1.0 - target) ** (1.0 / calls)
    return Headline(
        sample_rate=econ.sample_rate,
        detection=econ.detection,
        cheat_rate=cheat_rate,
        calls=calls,
        target=target,
        catch_probability=catch_probability(
            calls=calls,
            cheat_rate=cheat_rate,
            sample_rate=econ.sample_rate,
            detection=econ.detection * confirm,
        ),
        simulated_catch_probability=float((first < calls).mean()),
        detection_needed=per_call_needed / (econ.sample_rate * cheat_rate * confirm)
        if econ.sample_rate and confirm
        else math.inf,
        sample_rate_needed=per_call_needed / (cheat_rate * econ.detection * confirm)
        if econ.detection and confirm
        else math.inf,
        stake_multiple=econ.stake_multiple,
        cheating_loses=analysis.cheating_loses(),
        deviations_lose=analysis.safe,
        problems=tuple(analysis.problems),
    )


# Tables and the figure --------------------------------------------------------------------------------------


def _gwei(wei: float) -> str:
    if wei == 0 or abs(wei) >= GWEI:
        return f"{wei / GWEI:,.0f} gwei".replace("-", "−")
    return f"{wei / GWEI:,.3f} gwei".replace("-", "−")


def _gwei_per_gas(wei: float) -> str:
    return f"{wei / GWEI:.3g} gwei per"


def _parameters_table(econ: Economics) -> str:
    rows = [f"| {f.name} | {getattr(econ, f.name)!r} |" for f in fields(econ)]
    return "\n".join(["| parameter | value |", "|---|---|", *rows])


def _outcomes_table(analysis: Analysis) -> str:
    lines = [
        "| player | deviation | per | EV vs honest (closed form) | simulated (± 1 s.e.) | loses? |",
        "|---|---|---|---:|---:|---|",
    ]
    for o in analysis.outcomes:
        lines.append(
            f"| {o.role} | {o.strategy} | {o.per} | {_gwei(o.expected)} | {_gwei(o.simulated)} ± "
            f"{_gwei(o.stderr)} | {'yes' if o.loses else '**NO**'} |"
        )
    return "\n".join(lines)


def _conditions_table(analysis: Analysis) -> str:
    lines = ["| condition | holds | numbers |", "|---|---|---|"]
    lines += [f"| {c.name} | {'yes' if c.holds else '**NO**'} | {c.detail} |" for c in analysis.conditions]
    return "\n".join(lines)


def detection_table(econ: Economics, sample_rates: Sequence[float] = SAMPLE_RATES) -> str:
    """Calls until a cheater is caught with probability 99 %, by cheat rate (rows) and sample rate (columns)."""
    header = " | ".join(f"p = {p:g}" for p in sample_rates)
    lines = [f"| cheat rate | {header} |", "|---:|" + "---:|" * len(sample_rates)]
    for rate in CHEAT_RATES:
        cells = []
        for p in sample_rates:
            n = calls_to_catch(cheat_rate=rate, sample_rate=p, detection=econ.detection)
            cells.append("never" if n is None else f"{n:,}")
        lines.append(f"| {rate:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _curve_table(analysis: Analysis) -> str:
    """P(caught within n calls) at the analysis's p and d, closed form against simulation, by cheat rate."""
    if not analysis.catches:
        return ""
    checkpoints = analysis.catches[0].checkpoints
    lines = [
        "| cheat rate | " + " | ".join(f"n = {k:,}" for k in checkpoints) + " |",
        "|---:|" + "---:|" * len(checkpoints),
    ]
    for catch in analysis.catches:
        cells = [f"{e:.1%} ({s:.1%})" for e, s in zip(catch.expected, catch.simulated, strict=True)]
        lines.append(f"| {catch.cheat_rate:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_detection(
    path: Path | str, economics: Economics | None = None, *, analysis: Analysis | None = None
) -> Path:
    """Draw the detection curve as an SVG at `path`: P(caught) against calls, one line per cheat rate, at the
    published p (simulated points on top), and the calls until 99 % by cheat rate for several p.

    Needs matplotlib (`pip install -e '.[dev]'`); the rest of the module does not."""
    try:
        from matplotlib import rc_context
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - the dev extra installs it
        raise ImportError("plot_detection needs matplotlib: pip install -e '.[dev]'") from error

    econ = economics or Economics.published()
    analysis = analysis or simulate(econ)
    target = Path(path)
    calls = np.unique(np.logspace(0, 5, 400).astype(int))
    with rc_context({"svg.hashsalt": "motet-trust-detection", "svg.fonttype": "none", "font.size": 9}):
        figure = Figure(figsize=(10, 4.2), layout="constrained")
        left, right = figure.subplots(1, 2)
        colors = [f"C{i}" for i in range(len(CHEAT_RATES))]
        for color, rate in zip(colors, CHEAT_RATES, strict=True):
            q = econ.sample_rate * rate * econ.detection
            left.plot(calls, 1.0 - (1.0 - q) ** calls, color=color, label=f"r = {rate:.0%}")
        for color, catch in zip(colors, analysis.catches, strict=False):
            left.plot(catch.checkpoints, catch.simulated, "o", color=color, markersize=3.5)
        if econ.detection > _LOW_DETECTION:
            q = econ.sample_rate * 0.10 * _LOW_DETECTION
            left.plot(
                calls,
                1.0 - (1.0 - q) ** calls,
                color="C3",
                linestyle="--",
                label=f"r = 10%, d = {_LOW_DETECTION:g}",
            )
        left.axhline(0.99, color="0.4", linestyle=":", linewidth=1)
        left.axvline(1_000, color="0.4", linestyle=":", linewidth=1)
        left.set_xscale("log")
        left.set_xlabel("paid calls served")
        left.set_ylabel("P(cheater caught)")
        left.set_title(
            f"p = {econ.sample_rate:g}, d = {econ.detection:g} (lines: 1 − (1 − p·r·d)ⁿ; dots: simulated)"
        )
        left.legend(title="cheat rate", loc="upper left", fontsize=8)
        left.grid(True, which="major", alpha=0.3)
        rates = np.logspace(-2, 0, 100)
        for p in SAMPLE_RATES:
            needed = np.log(0.01) / np.log1p(-p * rates * econ.detection)
            bold = math.isclose(p, econ.sample_rate)
            label = f"p = {p:g}" + (" (published)" if bold else " (Pocket)" if math.isclose(p, 0.25) else "")
            right.plot(rates, needed, linewidth=2.4 if bold else 1.2, label=label)
        right.axhline(1_000, color="0.4", linestyle=":", linewidth=1)
        right.axvline(0.10, color="0.4", linestyle=":", linewidth=1)
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("cheat rate r (share of calls faked)")
        right.set_ylabel("calls until caught with 99 %")
        right.set_title(f"calls to 99 % by sample rate p (d = {econ.detection:g})")
        right.legend(loc="upper right", fontsize=8)
        right.grid(True, which="major", alpha=0.3)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="svg", metadata={"Date": None})
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m motet.trust.economics [--plot PATH] [--detection D] [--sample-rate P] [--seed N]`."""
    parser = argparse.ArgumentParser(
        prog="python -m motet.trust.economics",
        description="The trust economics at the published defaults: every deviation's expected value against "
        "honest play, the detection curve, and B9's headline.",
    )
    parser.add_argument("--plot", type=Path, help="also draw the detection curve as an SVG here")
    parser.add_argument("--detection", type=float, help="the check's detection rate d (default 1.0)")
    parser.add_argument("--sample-rate", type=float, help="p (default Settings().trust.sample_rate)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {}
    if args.detection is not None:
        changes["detection"] = args.detection
    if args.sample_rate is not None:
        changes["sample_rate"] = args.sample_rate
    econ = Economics.published(**changes)
    analysis = simulate(econ, seed=args.seed)
    sections = [
        ("Parameters", _parameters_table(econ)),
        ("Every deviation against honest play", _outcomes_table(analysis)),
        ("Conditions", _conditions_table(analysis)),
        (
            f"P(caught within n calls) at p = {econ.sample_rate:g}, d = {econ.detection:g}: closed form "
            f"(simulated, {analysis.catches[0].agents if analysis.catches else 0:,} cheaters)",
            _curve_table(analysis),
        ),
        (f"Calls until caught with 99 % (d = {econ.detection:g})", detection_table(econ)),
    ]
    for title, body in sections:
        print(f"## {title}\n\n{body}\n")
    print(headline(econ, analysis=analysis, seed=args.seed))
    if not math.isclose(econ.detection, _LOW_DETECTION):
        low = headline(replace(econ, detection=_LOW_DETECTION), analysis=analysis, seed=args.seed)
        print(
            f"At d = {_LOW_DETECTION:g} instead: caught within 1,000 calls with probability "
            f"{low.catch_probability:.2%}; p ≥ {low.sample_rate_needed:.4f} would meet 99 %."
        )
    if args.plot:
        print(f"wrote {plot_detection(args.plot, econ, analysis=analysis)}")
    for problem in analysis.problems:
        print(f"UNSAFE: {problem}", file=sys.stderr)
    return 0 if analysis.safe else 1


if __name__ == "__main__":
    raise SystemExit(main())
