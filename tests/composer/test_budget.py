"""A budget never lets more be committed than its cap, under any interleaving of branches (D1, O2, O7)."""

from __future__ import annotations

import asyncio
import doctest
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import motet.composer._budget as budget_module
from motet.composer import Budget, Reservation
from motet.errors import BudgetExceeded, PaymentError


def test_docstring_examples_run() -> None:
    result = doctest.testmod(budget_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_reserve_then_commit_moves_actual_and_frees_the_rest() -> None:
    budget = Budget(100)
    call = budget.reserve(60)
    assert (budget.committed, budget.reserved, budget.remaining) == (0, 60, 40)
    call.commit(45)
    assert (budget.committed, budget.reserved, budget.remaining) == (45, 0, 55)
    assert (call.state, call.actual, call.amount) == ("committed", 45, 60)


def test_release_costs_nothing() -> None:
    budget = Budget(100)
    call = budget.reserve(100)
    assert budget.remaining == 0
    call.release()
    assert (budget.committed, budget.reserved, budget.remaining) == (0, 0, 100)
    assert (call.state, call.actual) == ("released", 0)


def test_reserve_past_the_cap_is_refused_and_changes_nothing() -> None:
    budget = Budget(100)
    budget.reserve(30).commit(30)
    budget.reserve(50)
    with pytest.raises(BudgetExceeded, match=r"node 'x' could cost 21 wei, and with 80 wei already") as info:
        budget.reserve(21, what="node 'x'")
    assert isinstance(info.value, PaymentError)
    assert (info.value.cap, info.value.spent, info.value.amount) == (100, 80, 21)
    assert (budget.committed, budget.reserved, budget.remaining) == (30, 50, 20)
    budget.reserve(20)  # exactly up to the cap fits
    assert budget.remaining == 0
    budget.reserve(0)  # a free call always fits
    with pytest.raises(BudgetExceeded, match="this call could cost 1 wei"):
        budget.reserve(1)


def test_zero_cap_admits_only_free_calls() -> None:
    budget = Budget(0)
    budget.reserve(0).commit(0)
    with pytest.raises(BudgetExceeded):
        budget.reserve(1)


@pytest.mark.parametrize("actual", [-1, 61])
def test_commit_outside_zero_to_reserved_is_refused_and_leaves_it_open(actual: int) -> None:
    budget = Budget(100)
    call = budget.reserve(60, what="node 'a'")
    with pytest.raises(ValueError, match=str(actual)) as info:
        call.commit(actual)
    if actual > 0:
        assert "60" in str(info.value)
        assert "node 'a'" in str(info.value)
    assert call.state == "open"
    assert (budget.committed, budget.reserved) == (0, 60)
    call.commit(60)
    assert budget.committed == 60


def test_negative_and_non_integer_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="cap must not be negative"):
        Budget(-1)
    budget = Budget(100)
    with pytest.raises(ValueError, match="amount must not be negative"):
        budget.reserve(-5)
    with pytest.raises(ValueError, match="amount must not be negative"):
        budget.check_worst_case(-5, "graph 'g' worst case")
    for bad in (1.5, True, "10", None):
        with pytest.raises(TypeError, match="smallest unit"):
            budget.reserve(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Budget(10.0)  # type: ignore[arg-type]
    call = budget.reserve(10)
    with pytest.raises(TypeError):
        call.commit(5.0)  # type: ignore[arg-type]
    assert (budget.committed, budget.reserved) == (0, 10)


@pytest.mark.parametrize(
    ("first", "second"),
    [("commit", "commit"), ("commit", "release"), ("release", "commit"), ("release", "release")],
)
def test_each_reservation_settles_once(first: str, second: str) -> None:
    budget = Budget(100)
    call = budget.reserve(40)
    call.commit(40) if first == "commit" else call.release()
    before = (budget.committed, budget.reserved)
    with pytest.raises(RuntimeError, match="already settled"):
        call.commit(1) if second == "commit" else call.release()
    assert (budget.committed, budget.reserved) == before


def test_a_reservation_not_made_by_reserve_cannot_settle() -> None:
    budget = Budget(100)
    forged = Reservation(budget, 1_000, "forged")
    with pytest.raises(RuntimeError, match="already settled"):
        forged.commit(1_000)
    assert (budget.committed, budget.reserved) == (0, 0)


def test_context_manager_releases_unless_committed() -> None:
    budget = Budget(100)
    with budget.reserve(30) as call:
        assert budget.reserved == 30
    assert call.state == "released"
    assert (budget.committed, budget.reserved) == (0, 0)

    with budget.reserve(30) as call:
        call.commit(20)
    assert (budget.committed, budget.reserved) == (20, 0)

    with pytest.raises(KeyError), budget.reserve(30) as call:
        raise KeyError("the agent failed")
    assert call.state == "released"
    assert (budget.committed, budget.reserved) == (20, 0)

    with budget.reserve(30) as call:
        call.release()  # settling inside the block is fine; exit does not settle twice
    assert (budget.committed, budget.reserved) == (20, 0)


def test_reserve_past_the_cap_raises_before_entering_the_block() -> None:
    budget = Budget(10)
    entered = False
    with pytest.raises(BudgetExceeded), budget.reserve(11):
        entered = True
    assert not entered


def test_cap_cannot_be_raised() -> None:
    budget = Budget(100)
    with pytest.raises(AttributeError):
        budget.cap = 1_000  # type: ignore[misc]
    with pytest.raises(AttributeError):
        budget.remaining = 1_000  # type: ignore[misc]
    with pytest.raises(AttributeError):
        budget.extra = 1  # type: ignore[attr-defined]
    call = budget.reserve(10)
    with pytest.raises(AttributeError):
        call.amount = 1_000  # type: ignore[misc]
    assert budget.cap == 100
    public = {name for name in dir(budget) if not name.startswith("_")}
    assert public == {"cap", "committed", "reserved", "remaining", "reserve", "check_worst_case"}


def test_check_worst_case_compares_against_the_whole_cap() -> None:
    budget = Budget(100)
    budget.reserve(90)
    budget.check_worst_case(100, "graph 'g' worst case")  # reservations do not count at compile time
    with pytest.raises(BudgetExceeded, match="graph 'g' worst case could cost 101 wei") as info:
        budget.check_worst_case(101, "graph 'g' worst case")
    assert (info.value.cap, info.value.amount) == (100, 101)
    assert (budget.committed, budget.reserved) == (0, 90)


def test_repr_shows_the_numbers() -> None:
    budget = Budget(100)
    call = budget.reserve(25, what="node 'a'")
    assert repr(budget) == "Budget(cap=100, committed=0, reserved=25, remaining=75)"
    assert repr(call) == "Reservation(amount=25, what=\"node 'a'\", state='open')"


async def test_tasks_sharing_a_budget_never_overcommit() -> None:
    budget = Budget(100)
    started = asyncio.Event()

    async def call(price: int) -> bool:
        try:
            reservation = budget.reserve(price)
        except BudgetExceeded:
            return False
        with reservation:
            await started.wait()  # every task reserves before any settles
            reservation.commit(price)
        return True

    tasks = [asyncio.create_task(call(30)) for _ in range(5)]
    await asyncio.sleep(0)
    started.set()
    results = await asyncio.gather(*tasks)
    assert results.count(True) == 3
    assert budget.committed == 90


# --- properties --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    worst: int
    actual: int
    outcome: str  # "commit", "release" (explicit), or "raise" (the call fails inside the `with` block)
    yields_before: int
    yields_between: int


@st.composite
def calls(draw: st.DrawFn) -> Call:
    worst = draw(st.integers(0, 60))
    return Call(
        worst=worst,
        actual=draw(st.integers(0, worst)),
        outcome=draw(st.sampled_from(["commit", "release", "raise"])),
        yields_before=draw(st.integers(0, 3)),
        yields_between=draw(st.integers(0, 5)),
    )


branches_strategy = st.lists(st.lists(calls(), max_size=8), min_size=1, max_size=6)


class _CallFailed(Exception):
    pass


@dataclass
class Outcome:
    budget: Budget
    signed: list[int]
    refused: int
    steps: int


async def _yield(times: int) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def run_branches(cap: int, branches: list[list[Call]]) -> Outcome:
    """Run every branch concurrently on one budget, checking the invariants after every step."""
    budget = Budget(cap)
    signed: list[int] = []  # what a signer would have signed, in order
    refused = 0
    steps = 0
    done = False

    def check() -> None:
        nonlocal steps
        steps += 1
        assert budget.committed + budget.reserved <= cap
        assert budget.remaining == cap - budget.committed - budget.reserved >= 0
        assert budget.committed == sum(signed) <= cap
        assert budget.cap == cap

    async def branch(branch_calls: list[Call]) -> None:
        nonlocal refused
        for call in branch_calls:
            await _yield(call.yields_before)
            fits = budget.committed + budget.reserved + call.worst <= cap
            try:
                reservation = budget.reserve(call.worst)
            except BudgetExceeded:
                # Refused exactly when it would not fit: the budget does not over-refuse either.
                assert not fits
                refused += 1
                check()
                continue
            assert fits
            check()
            try:
                with reservation:
                    await _yield(call.yields_between)
                    check()
                    if call.outcome == "raise":
                        raise _CallFailed
                    if call.outcome == "release":
                        reservation.release()
                    else:
                        signed.append(call.actual)
                        reservation.commit(call.actual)
            except _CallFailed:
                pass
            assert reservation.state != "open"
            check()

    async def checker() -> None:
        while not done:
            check()
            await asyncio.sleep(0)

    async def main() -> None:
        nonlocal done
        watch = asyncio.create_task(checker())
        try:
            await asyncio.gather(*(branch(b) for b in branches))
        finally:
            done = True
            await watch

    asyncio.run(main())
    return Outcome(budget, signed, refused, steps)


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(0, 300), branches=branches_strategy)
def test_parallel_branches_never_sign_past_the_cap(cap: int, branches: list[list[Call]]) -> None:
    outcome = run_branches(cap, branches)
    budget = outcome.budget
    assert outcome.steps > 0
    assert budget.reserved == 0
    assert budget.committed == sum(outcome.signed) <= cap
    assert budget.remaining == cap - budget.committed
    total_calls = sum(len(b) for b in branches)
    if sum(c.worst for b in branches for c in b) <= cap:
        assert outcome.refused == 0  # everything fits at worst case: nothing may be refused
    assert outcome.refused <= total_calls


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(0, 300), branches=branches_strategy)
def test_failed_calls_cost_nothing(cap: int, branches: list[list[Call]]) -> None:
    failing = [[replace(c, outcome="raise" if c.actual % 2 else "release") for c in b] for b in branches]
    outcome = run_branches(cap, failing)
    assert outcome.signed == []
    assert (outcome.budget.committed, outcome.budget.reserved, outcome.budget.remaining) == (0, 0, cap)
    # With nothing committed, every single call that fits the cap alone could still be reserved afterwards.
    outcome.budget.reserve(cap).release()
