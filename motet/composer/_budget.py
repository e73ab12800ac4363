"""`Budget`: what a run may sign, held to a fixed cap under any interleaving of parallel branches (D1).

Every paid call goes through two steps:

1. **reserve** its worst-case price before the call is sent. `Budget.reserve` checks
   `committed + reserved + price <= cap` and records the reservation in one synchronous step, so no other
   branch can run between the check and the record (there is no `await` inside it, and a lock covers
   threads too). A call that does not fit is refused with `BudgetExceeded` before anything is sent.
2. **settle** the reservation exactly once, after the result is judged:
   `Reservation.commit(actual)` with `0 <= actual <= reserved` when the result is accepted and its
   voucher is signed, or `Reservation.release()` when the call failed, which frees everything (a failed
   call costs 0, O2).

Why this bounds what is signed: `committed + reserved <= cap` holds after every reserve (it is the check),
and neither commit nor release can raise the sum, since each moves at most the reserved amount into
`committed` and frees the rest. Every signed amount was first reserved and is counted in `committed`, so
the total signed is at most `committed <= cap`, whatever order the branches reach their awaits in. The
cap is fixed when the budget is made: no method raises it, so no model output can (O7).

Example:
    >>> budget = Budget(100)
    >>> with budget.reserve(60, what="node 'summarize'") as call:
    ...     call.commit(45)                # the agent's result was accepted: sign 45
    >>> budget
    Budget(cap=100, committed=45, reserved=0, remaining=55)
    >>> with budget.reserve(50) as call:
    ...     pass                           # the call failed: leaving without commit releases
    >>> budget.committed
    45
    >>> budget.reserve(60, what="node 'translate'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    motet.errors.BudgetExceeded: node 'translate' could cost 60 wei, and with 45 wei already spent or reserved ...
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from motet.errors import BudgetExceeded, InvalidAmount

__all__ = ["Budget", "Reservation"]

ReservationState = Literal["open", "committed", "released"]


def _check_amount(name: str, value: object) -> int:
    # Money is an int in the smallest unit: a float or a bool here is a bug upstream, not a price.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in the asset's smallest unit, got {value!r}")
    if value < 0:
        raise InvalidAmount(str(value), f"{name} must not be negative")
    return value


class Budget:
    """A spend tracker with a fixed `cap`, in the asset's smallest unit.

    Safe to share between the tasks of one event loop (and between threads): every method is synchronous
    and runs under one lock.

    Example:
        >>> budget = Budget(1_000)
        >>> call = budget.reserve(300)
        >>> budget.remaining
        700
        >>> call.commit(120)
        >>> (budget.committed, budget.reserved, budget.remaining)
        (120, 0, 880)
    """

    __slots__ = ("_cap", "_committed", "_lock", "_open", "_reserved")

    def __init__(self, cap: int) -> None:
        self._cap = _check_amount("cap", cap)
        self._committed = 0
        self._reserved = 0
        self._open: set[Reservation] = set()
        self._lock = threading.Lock()

    @property
    def cap(self) -> int:
        """The most this budget will ever let be committed; fixed at creation."""
        return self._cap

    @property
    def committed(self) -> int:
        """What was actually paid: the sum of every committed amount."""
        return self._committed

    @property
    def reserved(self) -> int:
        """What open reservations hold for calls still in flight."""
        return self._reserved

    @property
    def remaining(self) -> int:
        """What a new reservation may still take: `cap - committed - reserved`."""
        return self._cap - self._committed - self._reserved

    def reserve(self, amount: int, *, what: str = "this call") -> Reservation:
        """Hold `amount` (a call's worst-case price) for one call, or raise `BudgetExceeded` if it does not fit.

        `what` names the call in the error, e.g. `"node 'summarize'"`. Settle the returned reservation
        exactly once, or use it as a context manager so that leaving the block without `commit` releases it.
        """
        _check_amount("amount", amount)
        with self._lock:
            spent = self._committed + self._reserved
            if spent + amount > self._cap:
                raise BudgetExceeded(self._cap, spent, amount, what=what)
            reservation = Reservation(self, amount, what)
            self._reserved += amount
            self._open.add(reservation)
        return reservation

    def check_worst_case(self, amount: int, what: str) -> None:
        """Raise `BudgetExceeded` if `amount` (e.g. a graph's worst-case cost) is more than the whole cap.

        Used at compile time, before anything is reserved:
        `budget.check_worst_case(cost, "graph 'report' worst case")`.
        """
        _check_amount("amount", amount)
        if amount > self._cap:
            raise BudgetExceeded(self._cap, 0, amount, what=what)

    def _settle(self, reservation: Reservation, actual: int) -> None:
        # The open-set check, not Reservation._state, is what makes a settle happen once: it runs under the
        # lock, and a Reservation built outside `reserve` is never in the set.
        with self._lock:
            if reservation not in self._open:
                raise RuntimeError(f"{reservation!r} is already settled; settle each reservation once")
            if actual > reservation.amount:
                raise InvalidAmount(
                    str(actual),
                    f"cannot commit {actual:,} wei for {reservation.what}: its reservation holds only "
                    f"{reservation.amount:,} wei; commit between 0 and {reservation.amount:,} wei",
                )
            self._open.remove(reservation)
            self._reserved -= reservation.amount
            self._committed += actual

    def __repr__(self) -> str:
        return (
            f"Budget(cap={self._cap}, committed={self._committed}, reserved={self._reserved}, "
            f"remaining={self.remaining})"
        )


@dataclass(eq=False, slots=True)
class _Outcome:
    """How a reservation settled: the one part of it that changes, once."""

    state: ReservationState = "open"
    actual: int | None = None


@dataclass(frozen=True, eq=False, slots=True)
class Reservation:
    """An amount held in a `Budget` for one call; made by `Budget.reserve`, settled exactly once.

    `commit(actual)` pays `actual` (at most the reserved amount) and frees the rest; `release()` frees it
    all. A second settle raises `RuntimeError`. As a context manager it releases on exit unless settled.
    """

    _budget: Budget
    amount: int
    """The amount held: the call's worst-case price."""
    what: str
    """The call this reservation is for, as named in errors."""
    _outcome: _Outcome = field(default_factory=_Outcome)

    @property
    def actual(self) -> int | None:
        """What was committed (0 after a release); `None` while open."""
        return self._outcome.actual

    @property
    def state(self) -> ReservationState:
        """`"open"` until settled, then `"committed"` or `"released"`."""
        return self._outcome.state

    def commit(self, actual: int) -> None:
        """Record that `actual` (`0 <= actual <= amount`) was paid for this call, and free the rest."""
        self._settle(actual, "committed")

    def release(self) -> None:
        """Free the whole amount: the call failed or was not sent, so it costs 0."""
        self._settle(0, "released")

    def _settle(self, actual: int, state: ReservationState) -> None:
        if self._outcome.state != "open":
            raise RuntimeError(f"{self!r} is already settled; settle each reservation once")
        self._budget._settle(self, _check_amount("actual", actual))
        self._outcome.state, self._outcome.actual = state, actual

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._outcome.state == "open":
            self.release()

    def __repr__(self) -> str:
        return f"Reservation(amount={self.amount}, what={self.what!r}, state={self.state!r})"
