"""Shown while the app starts its local market (loading a model can take a few seconds)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, LoadingIndicator, Static


class LoadingScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading the model and starting the agents…", id="loading-text")
        yield LoadingIndicator()
        yield Footer()
