"""A run's budget: what it spent of it, in gwei, and what is left: a meter, not a progress bar."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from motet.units import format_gwei

WIDTH = 24
"""Cells of the meter."""


class BudgetMeter(Static):
    """`budget  ■■■□□□□□  spent 75 gwei of 1,000 gwei · 925 gwei left`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spent = 0
        self.budget = 0

    def set(self, spent: int, budget: int) -> None:
        self.spent, self.budget = spent, budget
        self.update(self.text())

    def add(self, wei: int) -> None:
        self.set(self.spent + wei, self.budget)

    def text(self) -> Text:
        if not self.budget:
            return Text("budget: no run yet", style="dim")
        filled = min(WIDTH, round(WIDTH * self.spent / self.budget))
        left = max(self.budget - self.spent, 0)
        return Text.assemble(
            ("budget ", "bold"),
            ("■" * filled, "yellow"),
            ("□" * (WIDTH - filled), "dim"),
            f"  spent {format_gwei(self.spent)} of {format_gwei(self.budget)} · {format_gwei(left)} left",
        )
