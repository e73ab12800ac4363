"""`MotetApp`: four modes (agents, compose, run, wallet) over one chain, one registry and one payer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import JsonValue
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from motet.chain import Chain
from motet.composer import CompiledWorkflow, Payer, Workflow
from motet.demo import DOCUMENT
from motet.market import Market, local_market, research_brief
from motet.registry import Registry
from motet.runtimes import Runtime
from motet.tui.format import GWEI
from motet.tui.screens.agents import AgentsScreen
from motet.tui.screens.compose import ComposeScreen
from motet.tui.screens.help import HelpScreen
from motet.tui.screens.loading import LoadingScreen
from motet.tui.screens.run import RunScreen
from motet.tui.screens.wallet import WalletScreen

DEFAULT_BUDGET = 1_000 * GWEI


class MotetApp(App[None]):
    """The market, the composer, runs and the wallet.

    Args:
        chain: where the registry and the payment channels live.
        market: a market already serving; when None the app serves `local_market(chain, runtime)` itself
            from mount to exit.
        runtime, failing: for the market the app serves (`failing` adds an agent that always fails).
        workflows: name → workflow offered on the compose screen; the research brief by default.
        payer_index: which of `chain.accounts` pays.
    """

    CSS_PATH = "app.tcss"
    TITLE = "motet"
    MODES: ClassVar[dict[str, str | Any]] = {
        "agents": AgentsScreen,
        "compose": ComposeScreen,
        "run": RunScreen,
        "wallet": WalletScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "switch_mode('agents')", "Agents"),
        Binding("f3", "switch_mode('compose')", "Compose"),
        Binding("f4", "switch_mode('run')", "Run"),
        Binding("f5", "switch_mode('wallet')", "Wallet"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+t", "change_theme", "Theme", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        chain: Chain,
        *,
        market: Market | None = None,
        runtime: Runtime | None = None,
        failing: bool = True,
        workflows: Mapping[str, Workflow] | None = None,
        inputs: Mapping[str, JsonValue] | None = None,
        budget: int = DEFAULT_BUDGET,
        payer_index: int = 0,
    ) -> None:
        super().__init__()
        self.chain = chain
        self.market = market
        self.runtime = runtime
        self.failing = failing
        self.workflows: dict[str, Workflow] = dict(workflows or {"research-brief": research_brief()})
        self.inputs: dict[str, JsonValue] = dict(inputs or {"document": DOCUMENT})
        self.budget = budget
        self.account = chain.accounts[payer_index]
        self.payer = Payer(chain, self.account)
        self.compiled: CompiledWorkflow | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def registry(self) -> Registry:
        if self.market is None:
            raise RuntimeError("the market is not serving yet")
        return self.market.registry

    async def on_mount(self) -> None:
        # The agents' own logs (a failing agent's traceback) belong to their operators, not to this screen.
        logging.getLogger("motet.agents.server").setLevel(logging.CRITICAL)
        if self.market is None:
            await self.push_screen(LoadingScreen())
            self.run_worker(self._serve_market(), exclusive=True, group="market")
        else:
            await self.switch_mode("agents")

    async def _serve_market(self) -> None:
        if self.runtime is None:
            from motet.runtimes import LlamaCppRuntime

            self.runtime = LlamaCppRuntime()
        try:
            self.market = await self._stack.enter_async_context(
                local_market(self.chain, self.runtime, failing=self.failing)
            )
        except Exception as exc:
            self.notify(
                f"{exc}\nCheck the model is installed (`make install`).", severity="error", timeout=30
            )
            return
        await self.switch_mode("agents")

    async def on_unmount(self) -> None:
        await self.payer.aclose()
        await self._stack.aclose()

    # -- actions shared by the screens ------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    def start_run(self, compiled: CompiledWorkflow, inputs: Mapping[str, JsonValue]) -> None:
        """Switch to the run screen and run `compiled` there."""
        self.compiled = compiled

        async def go() -> None:
            await self.switch_mode("run")
            screen = self.screen
            assert isinstance(screen, RunScreen)
            await screen.start(compiled, dict(inputs))

        self.call_later(go)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Agents", "The registry's agents, filtered", lambda: self._mode("agents"))
        yield SystemCommand("Compose", "Compile a workflow or a goal", lambda: self._mode("compose"))
        yield SystemCommand("Run", "Stream the current run", lambda: self._mode("run"))
        yield SystemCommand("Wallet", "Balance and payment channels", lambda: self._mode("wallet"))
        yield SystemCommand("Help", "Keys of this screen (F1)", self.action_help)
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                action = binding.action
                yield SystemCommand(
                    f"{screen.TITLE or type(screen).__name__}: {binding.description}",
                    f"key {binding.key}",
                    lambda action=action, screen=screen: self.call_later(screen.run_action, action),
                )

    def _mode(self, mode: str) -> None:
        self.call_later(self.switch_mode, mode)


def workflows_from(paths: Iterable[str | Path]) -> dict[str, Workflow]:
    """The research brief and the workflow files at `paths`, by name."""
    flows = {"research-brief": research_brief()}
    for path in paths:
        flow = Workflow.load(path)
        flows[flow.name] = flow
    return flows
