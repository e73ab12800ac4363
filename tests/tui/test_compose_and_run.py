import asyncio

from support.tui import SIZE, brief_app, compile_brief, wait_for
from textual.widgets import DataTable, Static

from motet.agents import AgentServer, builtin_agent
from motet.chain import Chain
from motet.composer import CallPaid, NodeStarted
from motet.demo import Market, local_market
from motet.runtimes import Message
from motet.runtimes.testing import CallInfo, FunctionRuntime, deterministic_runtime
from motet.tui.screens.compose import ComposeScreen
from motet.tui.screens.run import RunScreen
from motet.tui.widgets.node_pane import NodePane


async def test_compose_shows_the_graph_agents_and_worst_case(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await compile_brief(pilot)
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        graph = str(screen.query_one("#graph", Static).render())
        assert "extract ──▶ summarize, keywords, sentiment" in graph
        # Why each node's agents were chosen: CompiledWorkflow.explain(), under the graph.
        assert "Why these agents\nextract (extract_text), policy trusted:" in graph
        assert "  2. summarizer (#2): score 0.56 · price 40 gwei · stake 0.2 ETH · slashes 0 · " in graph
        summary = str(screen.query_one("#summary", Static).render())
        assert "worst case 120 gwei" in summary  # 5 + 40 + 60 + 10 + 5: the dearest candidate per node
        table = screen.query_one("#nodes", DataTable)
        assert table.get_row("summarize")[2] == "flaky-summarizer (#7)"


async def test_swap_puts_the_next_candidate_first(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await compile_brief(pilot)
        await pilot.press("down", "s")  # the summarize node
        assert app.session.compiled is not None
        assert [c.agent for c in app.session.compiled.candidates["summarize"]] == [
            "summarizer",
            "flaky-summarizer",
        ]
        table = app.screen.query_one("#nodes", DataTable)
        assert table.get_row("summarize")[2] == "summarizer (#2)"


async def test_a_goal_is_planned_and_compiled(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        app.screen.query_one("#goal").focus()
        await pilot.press(*"classify_sentiment", "enter")
        await wait_for(pilot, lambda: app.session.compiled is not None)
        assert app.session.compiled is not None
        assert app.session.compiled.order == ["extract_text", "classify_sentiment"]


async def test_a_run_streams_pays_and_settles(market: Market) -> None:
    app = brief_app(market.chain, market)
    async with app.run_test(size=SIZE) as pilot:
        await compile_brief(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state == "settled")
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.report is not None
        assert screen.report.settlement is not None and screen.report.settlement.paid_calls == 5
        assert screen.query_one("#calls", DataTable).row_count == 5
        status = str(screen.query_one("#run-status", Static).render())
        assert "settled 75 gwei for 5 paid calls" in status and "per paid call" in status
        # the flaky summarizer was tried first, failed over, and was not paid
        paid = [e.agent for e in screen.report.events if isinstance(e, CallPaid)]
        assert "summarizer (#2)" in paid and "flaky-summarizer (#7)" not in paid
        # tokens streamed into the node's pane, then the answer in words
        pane = screen.query_one("#pane-keywords", NodePane)
        assert '"reading"' in pane.streamed
        assert pane.text.startswith("keywords: ") and "reading, " in pane.text and '"' not in pane.text


async def test_escape_cancels_a_run_and_the_unfinished_call_is_not_paid(chain: Chain) -> None:
    release = asyncio.Event()
    fast = deterministic_runtime()

    async def slow(messages: tuple[Message, ...], info: CallInfo) -> dict[str, str]:
        await asyncio.wait_for(release.wait(), timeout=5)
        return {"summary": "too late"}

    async with local_market(chain, fast, failing=False) as market:
        # A second, cheaper summarizer that never answers in time: the run waits on it.
        slow_agent = builtin_agent("summarize", runtime=FunctionRuntime(slow), name="slowpoke", price=1)
        server = AgentServer(slow_agent, chain=chain, account=chain.accounts[8])
        async with server.running():
            await server.register(market.registry, stake=10**17)
            app = brief_app(chain, market)
            async with app.run_test(size=SIZE) as pilot:
                await compile_brief(pilot)
                await pilot.press("r")

                def waiting() -> bool:
                    screen = app.screen
                    return (
                        isinstance(screen, RunScreen)
                        and screen.report is not None
                        and any(
                            isinstance(e, NodeStarted) and e.node == "summarize" for e in screen.report.events
                        )
                        and any(
                            isinstance(e, CallPaid) and e.node == "keywords" for e in screen.report.events
                        )
                    )

                await wait_for(pilot, waiting)
                await pilot.press("escape")
                await pilot.pause(0.3)
                release.set()
                await pilot.pause(0.5)
                screen = app.screen
                assert isinstance(screen, RunScreen) and screen.report is not None
                assert screen.state == "cancelled"
                paid_nodes = {e.node for e in screen.report.events if isinstance(e, CallPaid)}
                assert "summarize" not in paid_nodes and "report" not in paid_nodes
                assert screen.report.settlement is None
                assert app.session.payer.spent(screen.report.run_id) == sum(
                    e.price for e in screen.report.events if isinstance(e, CallPaid)
                )
