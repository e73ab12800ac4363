"""F1: the keys of the screen below and of the app."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

_INTRO = """\
# motet

**F2** agents · **F3** compose · **F4** run · **F5** wallet · **ctrl+p** every command · **ctrl+t** theme
· **F1** this help · **ctrl+q** quit · **Esc** closes this help (↑↓ scroll it)

"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss", "Close"),
    ]

    def __init__(self, below: Screen[Any]) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        rows = ["| key | what it does |", "|---|---|"]
        for binding in Binding.make_bindings(self.below.BINDINGS):
            rows.append(f"| `{binding.key}` | {binding.description or binding.action} |")
        title = self.below.TITLE or type(self.below).__name__
        body = _INTRO + f"## {title}\n\n" + (self.below.__doc__ or "").strip() + "\n\n" + "\n".join(rows)
        with VerticalScroll(id="help"):
            yield Markdown(body)
