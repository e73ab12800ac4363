"""One node of a run: its agent and status in the border, its tokens (wrapped) as they stream."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class NodePane(VerticalScroll):
    """Tokens of one node; the border says which agent answers and how it went."""

    def __init__(self, node: str, capability: str) -> None:
        super().__init__(classes="node-pane pending", id=f"pane-{node}")
        self.node = node
        self.text = ""
        self.border_title = f"{node} · {capability}"
        self.border_subtitle = "pending"

    def compose(self) -> ComposeResult:
        yield Static(classes="tokens")

    def status(self, text: str, state: str) -> None:
        self.border_subtitle = text
        self.set_classes(f"node-pane {state}")

    def tokens(self, text: str) -> None:
        self.text += text
        self._show()

    def line(self, text: str) -> None:
        self.text += ("\n" if self.text and not self.text.endswith("\n") else "") + text + "\n"
        self._show()

    def _show(self) -> None:
        self.query_one(".tokens", Static).update(Text(self.text))
        # After the refresh, once the text's new height is laid out: scrolling now could stop short of the end.
        self.call_after_refresh(self.scroll_end, animate=False)
