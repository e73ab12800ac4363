"""Modal dialogs: a yes/no confirmation and an amount (with an optional payee to choose)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from motet.errors import InvalidAmount
from motet.units import AMOUNT_HELP, parse_amount


class ConfirmScreen(ModalScreen[bool]):
    """Answers True for yes (y, or the Yes button), False for no (n, Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class AmountScreen(ModalScreen[tuple[str | None, int] | None]):
    """Asks for an amount (`100`, i.e. 100 gwei, or `0.01eth`), and a payee when `payees` are given; answers
    (payee, wei), or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, payees: list[tuple[str, str]] | None = None, default: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.payees = payees
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            if self.payees:
                yield Select(self.payees, prompt="payee", id="payee", value=self.payees[0][1])
            yield Input(
                self.default, placeholder="amount, e.g. 100gwei or 0.01eth", id="amount", tooltip=AMOUNT_HELP
            )
            with Horizontal(classes="buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        try:
            amount = parse_amount(self.query_one("#amount", Input).value)
        except InvalidAmount as exc:
            self.notify(str(exc), severity="error")
            return
        payee: str | None = None
        if self.payees:
            value = self.query_one("#payee", Select).value
            payee = value if isinstance(value, str) else None
        self.dismiss((payee, amount))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
