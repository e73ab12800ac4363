"""`MotetApp`: four modes (agents, compose, run, wallet) over one `Session` (chain, market, payer)."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, NamedTuple

from pydantic import BaseModel, JsonValue
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.tui._session import Market, MarketFactory, Session
from motet.tui.screens.agents import AgentsScreen
from motet.tui.screens.compose import ComposeScreen
from motet.tui.screens.help import HelpScreen
from motet.tui.screens.loading import LoadingScreen
from motet.tui.screens.run import RunScreen
from motet.tui.screens.wallet import WalletScreen
from motet.units import GWEI, Wei

DEFAULT_BUDGET = Wei(1_000 * GWEI)


class _Mode(NamedTuple):
    name: str
    key: str
    screen: Callable[[Session], Screen[None]]
    """Builds the mode's screen over the session."""
    palette: str
    """What the command palette says of it."""


_MODES: Final = (
    _Mode("agents", "f2", AgentsScreen, "The registry's agents, filtered"),
    _Mode("compose", "f3", ComposeScreen, "Compile a workflow or a goal"),
    _Mode("run", "f4", RunScreen, "Stream the current run"),
    _Mode("wallet", "f5", WalletScreen, "Balance and payment channels"),
)


class MotetApp(App[None]):
    """The market, the composer, runs and the wallet.

    Args:
        session: what the screens share (see `make_app`, which builds one).
        serve: when `session.market` is None, serves the market from mount to exit (the app shows a loading
            screen until it serves).
    """

    CSS_PATH = "app.tcss"
    TITLE = "motet"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(m.key, f"switch_mode('{m.name}')", m.name.title()) for m in _MODES),
        Binding("f1", "help", "Help"),
        Binding("ctrl+t", "change_theme", "Theme", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, session: Session, *, serve: MarketFactory | None = None) -> None:
        super().__init__()
        if session.market is None and serve is None:
            raise ValueError("MotetApp needs a market: a served one in the session, or `serve` to serve one")
        self.session = session
        self._serve = serve
        self._stack = contextlib.AsyncExitStack()
        for mode in _MODES:
            self.add_mode(mode.name, functools.partial(mode.screen, session))

    async def on_mount(self) -> None:
        # The agents' own logs (a failing agent's traceback) belong to their operators, not to this screen.
        logging.getLogger("motet.agents.server").setLevel(logging.CRITICAL)
        if self.session.market is None:
            await self.push_screen(LoadingScreen())
            self.run_worker(self._serve_market(), exclusive=True, group="market")
        else:
            await self.switch_mode("agents")

    async def _serve_market(self) -> None:
        assert self._serve is not None
        try:
            self.session.market = await self._stack.enter_async_context(self._serve())
        except Exception as exc:  # whatever stops the market from serving, the person reads it here
            self.notify(
                f"{exc}\nCheck the model is installed (`make install`).", severity="error", timeout=30
            )
            return
        await self.switch_mode("agents")

    async def on_unmount(self) -> None:
        await self.session.payer.aclose()
        await self._stack.aclose()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    @on(ComposeScreen.RunRequested)
    def _run_requested(self, request: ComposeScreen.RunRequested) -> None:
        """Switch to the run screen and run the compiled workflow there."""

        async def go() -> None:
            await self.switch_mode("run")
            screen = self.screen
            assert isinstance(screen, RunScreen)
            await screen.start(request.compiled, request.inputs)

        self.call_later(go)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode in _MODES:
            yield SystemCommand(mode.name.title(), mode.palette, lambda name=mode.name: self._mode(name))
        yield SystemCommand("Help", "Keys of this screen (F1)", self.action_help)
        for binding in Binding.make_bindings(screen.BINDINGS):
            if binding.description:
                action = binding.action
                yield SystemCommand(
                    f"{screen.TITLE or type(screen).__name__}: {binding.description}",
                    f"key {binding.key}",
                    lambda action=action, screen=screen: self.call_later(screen.run_action, action),
                )

    def _mode(self, mode: str) -> None:
        self.call_later(self.switch_mode, mode)


def make_app(
    chain: Chain,
    market: Market | MarketFactory,
    *,
    workflows: Mapping[str, Workflow],
    inputs: Mapping[str, JsonValue] | None = None,
    goal_inputs: type[BaseModel] | Mapping[str, Any] | None = None,
    budget: int = DEFAULT_BUDGET,
    payer_index: int = 0,
) -> MotetApp:
    """The TUI over `chain`, paying from `chain.accounts[payer_index]`.

    Args:
        market: a market already serving, or a factory whose context serves one while the app runs (called
            on mount: the app shows a loading screen meanwhile).
        workflows: name → workflow offered on the compose screen (at least one).
        inputs: the run's inputs to start from: each workflow's form is filled with those its schema has.
        goal_inputs: the input schema a goal typed on the compose screen is planned from; None: no goals.
        budget: the compose screen's budget to start with, in wei.
    """
    if not workflows:
        raise ValueError("make_app needs at least one workflow to offer on the compose screen")
    session = Session(
        chain=chain,
        payer=Payer(chain, chain.accounts[payer_index]),
        workflows=dict(workflows),
        inputs=dict(inputs or {}),
        goal_inputs=goal_inputs,
        budget=Wei(budget),
    )
    if callable(market):
        return MotetApp(session, serve=market)
    session.market = market
    return MotetApp(session)
