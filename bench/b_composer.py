"""B2 (orchestration rate) and B6 (compile + plan), on the embedded chain.

B2: a 5-node graph (one node, three in parallel, one) whose agents are Python functions served over HTTP on
127.0.0.1, every call signed by the payer (checked by the agent) and paid with a voucher (receipt checked, voucher signed,
persisted and handed over): paid
node-steps per second, against bare LangGraph running the same graph with nodes that do nothing.

B6: `compile()` of a 20-node graph against a registry of 100 agents (5 per capability), and `plan()` of a
20-step goal over the same 100 offers.

Run alone with `python -m bench.b_composer`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import re
import time
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import Payer, Workflow, plan, registry_offers
from motet.composer._schemas import fields_of
from motet.registry import Registry

B2_TARGET = 1_000
B6_TARGET_MS = 50.0


class Text(BaseModel):
    text: str


class Part(BaseModel):
    part: str


class Parts(BaseModel):
    text: str
    part: str


def _graph_agents() -> list[Agent]:
    first, left, middle, right, join = (Agent(name, price=1_000) for name in ("first", "a", "b", "c", "join"))

    @first.capability("start")
    async def start(request: Text, ctx: CallContext) -> Text:
        return request

    for agent, name in ((left, "left"), (middle, "middle"), (right, "right")):

        async def branch(request: Text, ctx: CallContext) -> Part:
            return Part(part=request.text)

        agent.capability(name)(branch)

    @join.capability("join")
    async def joined(request: Parts, ctx: CallContext) -> Text:
        return Text(text=request.text + request.part)

    return [first, left, middle, right, join]


def _flow() -> Workflow:
    return (
        Workflow("b2", inputs=Text)
        .add("start", "start")
        .add("left", "left", after="start")
        .add("middle", "middle", after="start")
        .add("right", "right", after="start")
        .add("join", "join", after=["left", "middle", "right"], inputs={"part": "left.part"})
    )


async def _motet_rate(runs: int, profile: cProfile.Profile | None = None) -> float:
    chain = Chain.embedded()
    registry = Registry(chain)
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate(_graph_agents(), start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            await server.register(registry, stake=10**17)
        payer = Payer(chain, chain.accounts[8], deposit_calls=10 * runs)
        runnable = await _flow().compile(registry, payer=payer, budget=10**18)
        await runnable.run({"text": "x"}, settle=False)  # opens the channels
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        for _ in range(runs):
            await runnable.run({"text": "x"}, settle=False)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        await payer.aclose()
    return 5 * runs / elapsed


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class _State(TypedDict):
    outputs: Annotated[dict[str, Any], _merge]  # as motet's own graph state


async def _langgraph_rate(runs: int) -> float:
    from langgraph.graph import END, START, StateGraph

    def node(name: str) -> Any:
        async def run(state: _State) -> dict[str, Any]:
            return {"outputs": {name: {"text": "x"}}}

        return run

    builder = StateGraph(_State)
    for name in ("start", "left", "middle", "right", "join"):
        builder.add_node(name, node(name))
    builder.add_edge(START, "start")
    for name in ("left", "middle", "right"):
        builder.add_edge("start", name)
    builder.add_edge(["left", "middle", "right"], "join")
    builder.add_edge("join", END)
    graph = builder.compile()
    await graph.ainvoke({"outputs": {}})
    started = time.perf_counter()
    for _ in range(runs):
        await graph.ainvoke({"outputs": {}})
    return 5 * runs / (time.perf_counter() - started)


def bench_b2(runs: int = 100) -> tuple[float, float]:
    """(motet paid node-steps/s, bare LangGraph node-steps/s)."""
    ours = asyncio.run(_motet_rate(runs))
    bare = asyncio.run(_langgraph_rate(runs * 10))
    print(f"B2: motet {ours:,.0f} paid node-steps/s; bare LangGraph {bare:,.0f} node-steps/s")
    return ours, bare


def _market(registry: Registry, chain: Chain, capabilities: int, per_capability: int) -> None:
    for c in range(capabilities):
        for a in range(per_capability):
            agent = Agent(f"agent-{c}-{a}", price=1_000 * (a + 1))

            async def step(request: Text, ctx: CallContext) -> Text:
                return request

            agent.capability(f"step{c}")(step)
            account = chain.accounts[1 + (c * per_capability + a) % (len(chain.accounts) - 1)]
            asyncio.run(
                agent.register(registry, url=f"http://127.0.0.1:9/{c}/{a}", account=account, stake=10**15)
            )


def bench_b6(repetitions: int = 5) -> tuple[float, float, float]:
    """(first compile ms, best compile ms, best plan ms) for 20 nodes over 100 registered agents."""
    chain = Chain.embedded(accounts=20)
    registry = Registry(chain)
    _market(registry, chain, capabilities=20, per_capability=5)
    registry.sync()
    flow = Workflow("b6", inputs=Text)
    for c in range(20):
        flow.add(f"n{c}", f"step{c}", after=[f"n{c - 1}"] if c else [])
    payer = Payer(chain)

    async def compile_once() -> float:
        started = time.perf_counter()
        await flow.compile(registry, payer=payer, budget=10**18)
        return (time.perf_counter() - started) * 1000

    async def plan_once() -> float:
        offers = await registry_offers(registry)
        started = time.perf_counter()
        plan("step19", fields_of(Text.model_json_schema()), offers, max_steps=20)
        return (time.perf_counter() - started) * 1000

    gc.collect()  # the garbage of the benchmarks before this one is theirs to collect, not this compile's
    compile_times = [asyncio.run(compile_once()) for _ in range(repetitions)]
    plan_ms = min(asyncio.run(plan_once()) for _ in range(repetitions))
    print(
        f"B6: compile {compile_times[0]:.1f} ms first, {min(compile_times):.1f} ms after; plan {plan_ms:.1f} ms "
        "(20 nodes, 100 agents)"
    )
    return compile_times[0], min(compile_times), plan_ms


LAYERS = (
    "motet/agents/_client.py",
    "motet/agents/_server.py",
    "motet/composer/_payer.py",
    "motet/composer/_compiled.py",
    "motet/payments/",
    "aiohttp/client.py",
    "starlette/applications.py",
    "uvicorn/protocols/http/",
    "langgraph/pregel/main.py",
    "sqlite3.Connection",
)
"""Where a cumulative line of the profile is worth showing: motet's layers and the libraries under them."""


def profile_b2(runs: int = 100, top: int = 15) -> str:
    """cProfile of B2's timed runs (set-up and the warm-up excluded), as text: the `top` functions by own time,
    then the layers (motet's and the libraries' under them) by cumulative time. Paths are cut to the package."""
    profile = cProfile.Profile()
    rate = asyncio.run(_motet_rate(runs, profile))
    own, layers = io.StringIO(), io.StringIO()
    pstats.Stats(profile, stream=own).sort_stats("tottime").print_stats(top)
    pstats.Stats(profile, stream=layers).sort_stats("cumtime").print_stats("|".join(LAYERS), top)
    lines = [_short(line) for line in own.getvalue().splitlines() if line.strip()]
    wanted = [_short(line) for line in layers.getvalue().splitlines() if "(" in line or "ncalls" in line]
    return (
        f"B2 under cProfile, {runs} runs ({5 * runs} paid steps): {rate:,.0f} paid node-steps/s (profiling slows "
        "it)\n\nTop by own time:\n"
        + "\n".join(lines)
        + "\n\nThe layers, by cumulative time (each step of a coroutine counts as a call):\n"
        + "\n".join(wanted)
        + "\n"
    )


def _short(line: str) -> str:
    """A profile line with its file path cut to the package (`aiohttp/client.py`, `motet/agents/_client.py`)."""
    return re.sub(r"/\S*/(site-packages|lib/python3\.\d+)/", "", re.sub(r"/\S*/(?=motet/|bench/)", "", line))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.b_composer", description=__doc__)
    parser.add_argument("--profile", action="store_true", help="print B2's profile (top 15 by own time)")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    if args.profile:
        print(profile_b2(args.runs))
    else:
        bench_b2(args.runs)
        bench_b6()
