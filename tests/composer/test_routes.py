"""Conditional routes on a node's typed output, and workflows from TOML and YAML files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CallPaid, NodeSkipped, Payer, Workflow
from motet.errors import GraphError
from motet.registry import Registry

PRICE = 10**12


class Text(BaseModel):
    text: str


class Mood(BaseModel):
    text: str
    mood: str


class Reply(BaseModel):
    reply: str


@pytest.fixture
async def registry(chain: Chain) -> AsyncIterator[Registry]:
    judge, soothe, cheer = (
        Agent("judge", price=PRICE),
        Agent("soother", price=PRICE),
        Agent("cheerer", price=PRICE),
    )

    @judge.capability("judge")
    async def judged(request: Text, ctx: CallContext) -> Mood:
        return Mood(text=request.text, mood="negative" if "bad" in request.text else "positive")

    @soothe.capability("soothe")
    async def soothing(request: Mood, ctx: CallContext) -> Reply:
        return Reply(reply=f"sorry about: {request.text}")

    @cheer.capability("cheer")
    async def cheering(request: Mood, ctx: CallContext) -> Reply:
        return Reply(reply=f"great: {request.text}")

    registry = Registry(chain)
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate([judge, soothe, cheer], start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            await server.register(registry, stake=10**17)
        yield registry


def routed() -> Workflow:
    return (
        Workflow("routed", inputs=Text)
        .add("judge", "judge")
        .add("soothe", "soothe", after="judge")
        .add("cheer", "cheer", after="judge")
        .route("judge", on="mood", cases={"negative": "soothe"}, default="cheer")
    )


@pytest.mark.parametrize(
    ("text", "ran", "skipped"), [("a bad day", "soothe", "cheer"), ("sun", "cheer", "soothe")]
)
async def test_a_route_runs_one_branch_and_the_other_costs_nothing(
    registry: Registry, chain: Chain, text: str, ran: str, skipped: str
) -> None:
    payer = Payer(chain, chain.accounts[8])
    runnable = await routed().compile(registry, payer=payer, budget=10**15)
    assert "mood = negative" in runnable.ascii() and "otherwise" in runnable.ascii()
    report = await runnable.run({"text": text})
    await payer.aclose()
    assert set(report.outputs) == {"judge", ran}
    assert any(isinstance(e, NodeSkipped) and e.node == skipped for e in report.events)
    assert sorted(e.node for e in report.events if isinstance(e, CallPaid)) == sorted(["judge", ran])
    assert report.spent == 2 * PRICE


def test_a_routed_branch_may_not_join_others() -> None:
    flow = routed().add("both", "cheer", after=["soothe", "cheer"])
    with pytest.raises(GraphError, match="joins a routed branch"):
        flow._graph()


TOML = """
name = "file-routed"
[inputs]
text = { type = "string" }
[[nodes]]
id = "judge"
capability = "judge"
[[nodes]]
id = "cheer"
capability = "cheer"
after = ["judge"]
"""

YAML = """
name: file-routed
inputs:
  text: {type: string}
nodes:
  - {id: judge, capability: judge}
  - {id: cheer, capability: cheer, after: [judge]}
"""


async def test_workflow_files_in_toml_and_yaml_load_alike(
    registry: Registry, chain: Chain, tmp_path: Path
) -> None:
    (tmp_path / "flow.toml").write_text(TOML)
    (tmp_path / "flow.yaml").write_text(YAML)
    flows = [Workflow.load(tmp_path / "flow.toml"), Workflow.load(tmp_path / "flow.yaml")]
    assert flows[0].nodes == flows[1].nodes and flows[0].input_schema == flows[1].input_schema
    payer = Payer(chain, chain.accounts[8])
    report = await (await flows[1].compile(registry, payer=payer, budget=10**15)).run({"text": "ok"})
    await payer.aclose()
    assert report.outputs["cheer"] == {"reply": "great: ok"}
    with pytest.raises(GraphError, match="workflow file: no nodes"):
        Workflow.from_dict({"name": "x", "nodes": []})
    (tmp_path / "flow.json").write_text("{}")
    with pytest.raises(GraphError, match=r"\.toml, \.yaml or \.yml"):
        Workflow.load(tmp_path / "flow.json")
