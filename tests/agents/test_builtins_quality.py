"""Built-in agents stay faithful on the bundled SmolLM2: every keyword is a word of the text (the grammar of each
call allows nothing else), sentiment is one of its labels, and an extractive capability stays verifiable: a
checker derives the same grammar from the same input."""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import pytest

from motet.agents import BUILTINS, Agent, builtin_agent
from motet.agents.builtins import Keywords, Sentiment, Text
from motet.errors import InvalidAgentDefinition
from motet.runtimes import LlamaCppRuntime
from motet.trust import Checker, Verdict

pytestmark = pytest.mark.slow

LIBRARY = (
    "The old city library reopened on Monday after two years of repairs. Readers found quiet study rooms, "
    "a children's corner and thousands of new books on the shelves."
)
"""A text about a library: the keywords agent once answered "bonfire_smoke_smell_of_sunshine" for one."""
TEXTS = (
    "Rising sea temperatures are bleaching coral reefs faster than they can recover, scientists warned.",
    "The laptop overheats after ten minutes and the battery barely lasts an hour. I want a refund.",
)
LABELS = set(typing.get_args(Sentiment.model_fields["sentiment"].annotation))


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+(?:['’-][^\W_]+)*", text))


async def test_every_keyword_is_a_word_of_the_text_and_the_check_rederives_the_grammar(
    smollm2: LlamaCppRuntime,
) -> None:
    plain = builtin_agent("extract_keywords", runtime=smollm2)
    for text in TEXTS:
        keywords = Keywords.model_validate(
            (await plain.invoke("extract_keywords", {"text": text})).output
        ).keywords
        assert keywords, text
        assert set(keywords) <= words_of(text), (keywords, text)
        assert len(set(keywords)) == len(keywords), keywords

    # The same capability, verifiable: its card publishes wordsFrom, and a checker derives the same grammar.
    agent = Agent("keywords", runtime=smollm2)
    agent.prompt("extract_keywords", **dataclasses.asdict(BUILTINS["extract_keywords"]), verifiable=True)
    done = await agent.invoke("extract_keywords", {"text": LIBRARY})
    assert done.text is not None
    keywords = json.loads(done.text)["keywords"]
    assert keywords and set(keywords) <= words_of(LIBRARY), keywords
    profile = agent.capabilities["extract_keywords"].profile(done.model_ref)
    assert profile is not None and profile.to_json()["wordsFrom"] == "text"
    checker = Checker([smollm2])
    honest = await checker.check(profile, {"text": LIBRARY}, done.text)
    assert honest.verdict is Verdict.CONSISTENT, honest.detail
    # The embarrassing answer is not one the grammar allows: a checker calls it a cheat.
    made_up = await checker.check(
        profile, {"text": LIBRARY}, '{"keywords": ["bonfire_smoke_smell_of_sunshine"]}'
    )
    assert made_up.verdict is Verdict.CHEAT, made_up.detail


async def test_sentiment_is_one_of_its_labels(smollm2: LlamaCppRuntime) -> None:
    assert sorted(LABELS) == ["negative", "neutral", "positive"]
    agent = builtin_agent("classify_sentiment", runtime=smollm2)
    for text in (LIBRARY, *TEXTS):
        done = await agent.invoke("classify_sentiment", {"text": text})
        assert done.output["sentiment"] in LABELS, (done.output, text)


def test_words_from_must_name_an_input_field() -> None:
    with pytest.raises(InvalidAgentDefinition, match="words_from='body' of 'k' is not a field of Text"):
        Agent("a").prompt("k", input=Text, output=Keywords, instructions="i", words_from="body")
