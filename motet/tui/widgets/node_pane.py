"""One node of a run: its agent and status in the border, its tokens (wrapped) as they stream, then its answer
in words (strings as text, objects as `key: value` lines) once the node is done."""

from __future__ import annotations

from pydantic import JsonValue
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from motet.tui._format import readable


class NodePane(VerticalScroll):
    """Tokens of one node; the border says which agent answers and how it went."""

    def __init__(self, node: str, capability: str) -> None:
        super().__init__(classes="node-pane pending", id=f"pane-{node}")
        self.node = node
        self.text = ""
        """What the pane shows."""
        self.streamed = ""
        """The tokens as the agent streamed them (a model's raw JSON)."""
        self.notes: list[str] = []
        """Lines about the node (failovers, checks): kept above its answer."""
        self.border_title = f"{node} · {capability}"
        self.border_subtitle = "pending"

    def compose(self) -> ComposeResult:
        yield Static(classes="tokens")

    def status(self, text: str, state: str) -> None:
        self.border_subtitle = text
        self.set_classes(f"node-pane {state}")

    def tokens(self, text: str) -> None:
        self.streamed += text
        self.text += text
        self._show()

    def line(self, text: str) -> None:
        self.notes.append(text)
        self.text += ("\n" if self.text and not self.text.endswith("\n") else "") + text + "\n"
        self._show()

    def output(self, value: JsonValue) -> None:
        """Show the node's answer readably in place of the streamed tokens, below the notes so far."""
        self.text = "".join(note + "\n" for note in self.notes) + readable(value) + "\n"
        self._show()

    def _show(self) -> None:
        self.query_one(".tokens", Static).update(Text(self.text))
        # After the refresh, once the text's new height is laid out: scrolling now could stop short of the end.
        self.call_after_refresh(self.scroll_end, animate=False)
