"""Planning the cheapest type-compatible chain of capabilities for a goal."""

from __future__ import annotations

import doctest
import itertools
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from motet.agents import CapabilitySpec
from motet.agents.builtins import Answer, Keywords, Question, Sentiment, Summary, Text
from motet.composer import Offer, Path, Plan, _offer, _planner, plan
from motet.composer._schemas import fields_of, required_of
from motet.errors import NoPlan


class Url(BaseModel):
    url: str


class Page(BaseModel):
    context: str


class Cleaned(BaseModel):
    clean: str


class CleanText(BaseModel):
    clean: str


class Brief(BaseModel):
    summary: str
    keywords: list[str]
    sentiment: str


class Report(BaseModel):
    report: str


class Counted(BaseModel):
    summary: int


def spec(name: str, takes: type[BaseModel], gives: type[BaseModel]) -> CapabilitySpec:
    return CapabilitySpec(
        name=name, input_schema=takes.model_json_schema(), output_schema=gives.model_json_schema()
    )


SUMMARIZE = spec("summarize", Text, Summary)
KEYWORDS = spec("extract_keywords", Text, Keywords)
SENTIMENT = spec("classify_sentiment", Text, Sentiment)
ANSWER = spec("answer_from_context", Question, Answer)
FETCH = spec("fetch", Url, Page)
REPORT = spec("compose_report", Brief, Report)
TEXT = fields_of(Text.model_json_schema())
QUESTION_AND_URL = {"question": {"type": "string"}, "url": {"type": "string"}}


def steps(result: Plan) -> list[str]:
    return [step.capability for step in result.steps]


@pytest.mark.parametrize("module", [_planner, _offer])
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_direct_one_step_plan() -> None:
    result = plan("summarize", TEXT, [Offer(3, "smol", SUMMARIZE, 1_000)])
    assert steps(result) == ["summarize"]
    assert result.steps[0].inputs == {"text": "input.text"}
    assert result.steps[0].offer.agent_id == 3
    assert result.cost == 1_000
    assert result.paths == ()


def test_a_two_step_chain_when_the_goal_needs_a_field_only_another_capability_produces() -> None:
    offers = [Offer(1, "web", FETCH, 200), Offer(2, "smol", ANSWER, 1_000), Offer(3, "smol", SUMMARIZE, 10)]
    result = plan("answer_from_context", QUESTION_AND_URL, offers)
    assert steps(result) == ["fetch", "answer_from_context"]
    assert result.steps[0].inputs == {"url": "input.url"}
    assert result.steps[1].inputs == {"question": "input.question", "context": "fetch.context"}
    assert result.cost == 1_200


def test_a_goal_fed_by_several_capabilities_runs_them_all() -> None:
    offers = [
        Offer(1, "a", SUMMARIZE, 300),
        Offer(2, "b", KEYWORDS, 200),
        Offer(3, "c", SENTIMENT, 100),
        Offer(4, "d", REPORT, 50),
    ]
    result = plan("compose_report", TEXT, offers)
    assert steps(result) == ["classify_sentiment", "extract_keywords", "summarize", "compose_report"]
    assert result.steps[-1].inputs == {
        "summary": "summarize.summary",
        "keywords": "extract_keywords.keywords",
        "sentiment": "classify_sentiment.sentiment",
    }
    assert result.cost == 650


def test_the_cheapest_offer_is_chosen_among_duplicates_ties_to_the_lowest_agent_id() -> None:
    offers = [
        Offer(9, "big", SUMMARIZE, 2_000),
        Offer(5, "mid", SUMMARIZE, 1_000),
        Offer(3, "smol", SUMMARIZE, 1_000),
        Offer(7, "other", SUMMARIZE, 1_500),
    ]
    step = plan("summarize", TEXT, offers).steps[0]
    assert (step.offer.agent_id, step.offer.agent) == (3, "smol")
    assert [offer.price for offer in step.alternatives] == [1_000, 1_500, 2_000]


@pytest.mark.parametrize(
    ("premium", "clean", "cheap", "expected", "cost"),
    [
        (5_000, 100, 200, ["clean", "summarize_clean", "report"], 350),
        (250, 100, 200, ["summarize_premium", "report"], 300),
    ],
)
def test_the_total_cheapest_path_wins_whatever_its_length(
    premium: int, clean: int, cheap: int, expected: list[str], cost: int
) -> None:
    offers = [
        Offer(1, "premium", spec("summarize_premium", Text, Summary), premium),
        Offer(2, "cleaner", spec("clean", Text, Cleaned), clean),
        Offer(3, "cheap", spec("summarize_clean", CleanText, Summary), cheap),
        Offer(4, "reporter", spec("report", Summary, Report), 50),
    ]
    result = plan("report", TEXT, offers)
    assert steps(result) == expected
    assert result.cost == cost
    other = {("summarize_premium", "report"), ("clean", "summarize_clean", "report")} - {tuple(expected)}
    assert [path.capabilities for path in result.paths] == list(other)
    assert result.paths[0].cost > cost


def test_no_agent_offers_the_goal() -> None:
    with pytest.raises(NoPlan, match=r"^no agent offers 'translate'; offered: extract_keywords, summarize$"):
        plan("translate", TEXT, [Offer(1, "a", SUMMARIZE, 1), Offer(2, "b", KEYWORDS, 1)])


def test_inputs_that_cannot_produce_a_required_field_name_it() -> None:
    offers = [Offer(1, "web", FETCH, 200), Offer(2, "smol", ANSWER, 1_000)]
    with pytest.raises(NoPlan) as raised:
        plan("answer_from_context", {"question": {"type": "string"}}, offers)
    message = str(raised.value)
    assert message.startswith(
        "no plan reaches 'answer_from_context': its required input field cannot be produced from the inputs "
        "given (question): 'context' comes only from fetch, which cannot run on them."
    )


def test_a_field_nothing_produces_is_named() -> None:
    with pytest.raises(
        NoPlan, match="'question' is neither an input nor the output of any offered capability"
    ):
        plan("answer_from_context", {"context": {"type": "string"}}, [Offer(2, "smol", ANSWER, 1_000)])


def test_a_field_of_the_wrong_type_says_why() -> None:
    offers = [
        Offer(1, "counter", spec("count", Text, Counted), 1),
        Offer(2, "r", spec("report", Summary, Report), 1),
    ]
    with pytest.raises(NoPlan, match="'summary' from count does not fit: string expected, integer given"):
        plan("report", TEXT, offers)


def test_a_plan_longer_than_max_steps_is_refused() -> None:
    offers = [Offer(1, "web", FETCH, 200), Offer(2, "smol", ANSWER, 1_000)]
    with pytest.raises(NoPlan, match="in 1 step: it takes at least 2 from these inputs; raise max_steps"):
        plan("answer_from_context", QUESTION_AND_URL, offers, max_steps=1)
    assert len(plan("answer_from_context", QUESTION_AND_URL, offers, max_steps=2).steps) == 2


def test_explain_names_the_path_agents_prices_alternatives_and_other_paths() -> None:
    offers = [
        Offer(3, "smol", SUMMARIZE, 1_000),
        Offer(4, "mid", SUMMARIZE, 1_500),
        Offer(5, "big", SUMMARIZE, 2_000),
        Offer(6, "dup", spec("summarize_again", Text, Summary), 4_000),
        Offer(7, "rep", spec("report", Summary, Report), 500),
    ]
    text = plan("report", TEXT, offers).explain()
    assert text == (
        "plan for 'report': 2 steps, 1,500 wei in all\n"
        "  1. summarize: agent 3 'smol' at 1,000 wei (2 others: 1,500 wei, 2,000 wei)\n"
        "       text ← input.text\n"
        "  2. report: agent 7 'rep' at 500 wei (no other offer)\n"
        "       summary ← summarize.summary\n"
        "other paths considered:\n"
        "  summarize_again → report: 4,500 wei"
    )


def test_the_same_offers_in_any_order_give_the_same_plan() -> None:
    offers = market(random.Random(7))
    goal = "cap0"
    expected = plan(goal, {"f0": {"type": "string"}, "f1": {"type": "string"}}, offers)
    shuffler = random.Random(1)
    for _ in range(5):
        shuffled = list(offers)
        shuffler.shuffle(shuffled)
        assert plan(goal, {"f1": {"type": "string"}, "f0": {"type": "string"}}, shuffled) == expected


def test_equal_costs_go_to_fewer_steps() -> None:
    offers = [
        Offer(1, "a", spec("clean", Text, Cleaned), 0),
        Offer(2, "b", spec("summarize_clean", CleanText, Summary), 100),
        Offer(3, "c", spec("summarize", Text, Summary), 100),
        Offer(4, "d", spec("report", Summary, Report), 1),
    ]
    assert steps(plan("report", TEXT, offers)) == ["summarize", "report"]


def test_a_negative_price_is_refused() -> None:
    with pytest.raises(ValueError, match="offers 'summarize' at -1 wei: a price is never negative"):
        Offer(1, "a", SUMMARIZE, -1)


def test_offers_hash_by_agent_and_price() -> None:
    assert len({Offer(1, "a", SUMMARIZE, 5), Offer(1, "a", SUMMARIZE, 5), Offer(2, "a", SUMMARIZE, 5)}) == 2


def test_planning_100_offers_over_20_capabilities_is_fast() -> None:
    offers = market(random.Random(3))
    assert len(offers) == 100
    assert len({offer.capability.name for offer in offers}) == 20
    available = {"f0": {"type": "string"}, "f1": {"type": "string"}}
    timings = []
    plans = 0
    for goal in [f"cap{index}" for index in range(20)]:
        started = time.perf_counter()
        try:
            plan(goal, available, offers)
            plans += 1
        except NoPlan:
            pass
        timings.append(time.perf_counter() - started)
    assert plans >= 5  # the market is built so that a good part of it can be planned
    # Well under 100 ms on a laptop; the bound leaves room for a loaded CI machine.
    assert max(timings) < 0.1, [round(timing * 1000, 1) for timing in timings]


def market(rng: random.Random, capabilities: int = 20, offers: int = 100, fields: int = 10) -> list[Offer]:
    """Capabilities that each turn one or two string fields into one or two others, offered at random prices."""
    names = [f"f{index}" for index in range(fields)]
    specs = []
    for index in range(capabilities):
        takes = rng.sample(names, rng.randint(1, 2))
        gives = rng.sample(names, rng.randint(1, 2))
        specs.append(
            CapabilitySpec(name=f"cap{index}", input_schema=_object(takes), output_schema=_object(gives))
        )
    return [
        Offer(index + 1, f"agent{index}", specs[index % capabilities], rng.randint(1, 50) * 100)
        for index in range(offers)
    ]


def _object(names: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": names, "properties": {name: {"type": "string"} for name in names}}


def _brute_force(goal: str, available: set[str], offers: list[Offer], max_steps: int) -> int | None:
    """The cheapest plan cost by trying every set of other capabilities: a set runs if, run greedily, it all runs."""
    best: dict[str, Offer] = {}
    for offer in offers:
        name = offer.capability.name
        if name not in best or offer.price < best[name].price:
            best[name] = offer
    needs = {name: required_of(offer.capability.input_schema) for name, offer in best.items()}
    gives = {name: set(fields_of(offer.capability.output_schema)) for name, offer in best.items()}
    others = sorted(set(best) - {goal})
    cheapest: int | None = None
    for size in range(max_steps):
        for chosen in itertools.combinations(others, size):
            have, pending = set(available), set(chosen)
            progress = True
            while pending and progress:
                ready = {name for name in pending if needs[name] <= have}
                progress = bool(ready)
                for name in ready:
                    have |= gives[name]
                pending -= ready
            if not pending and needs[goal] <= have:
                cost = sum(best[name].price for name in chosen) + best[goal].price
                cheapest = cost if cheapest is None else min(cheapest, cost)
    return cheapest


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_steps=st.integers(1, 4))
def test_the_plan_costs_what_the_cheapest_set_of_steps_costs(seed: int, max_steps: int) -> None:
    rng = random.Random(seed)
    offers = market(rng, capabilities=8, offers=14, fields=6)
    goal = f"cap{rng.randrange(8)}"
    available = {name: {"type": "string"} for name in rng.sample([f"f{i}" for i in range(6)], 2)}
    expected = _brute_force(goal, set(available), offers, max_steps)
    try:
        result = plan(goal, available, offers, max_steps=max_steps)
    except NoPlan:
        assert expected is None
        return
    assert result.cost == expected
    assert len(result.steps) <= max_steps
    assert result.steps[-1].capability == goal
    produced = set(available)
    for step in result.steps:  # every step can run on what the steps before it produced
        assert {ref.split(".")[1] for ref in step.inputs.values()} <= produced
        assert all(
            ref.split(".")[0] in {"input", *(s.capability for s in result.steps)}
            for ref in step.inputs.values()
        )
        produced |= set(fields_of(step.offer.capability.output_schema))
    assert all(isinstance(path, Path) and path.cost >= result.cost for path in result.paths)
