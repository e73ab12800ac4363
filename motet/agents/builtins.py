"""Built-in agents on a local model: summarize, translate, extract keywords, classify sentiment, answer from
context, critique. Each is a prompt capability with typed input and schema-constrained output.

Example:
    >>> agent = builtin_agent("summarize", price=1_000)
    >>> list(agent.capabilities), agent.price
    (['summarize'], 1000)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from motet.agents.define import Agent
from motet.runtimes import Runtime

MAX_TEXT = 8_000
"""Characters of text a built-in capability reads; the bundled models' context is 2,048 tokens."""


class Text(BaseModel):
    """A text to work on."""

    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The text.")


Phrase = Annotated[str, Field(max_length=40)]


class Summary(BaseModel):
    summary: str = Field(max_length=300, description="A one- or two-sentence summary.")


class TranslationRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    target_language: str = Field(min_length=2, max_length=40, description="For example 'French'.")


class Translation(BaseModel):
    translation: str = Field(max_length=2_000)


class Keywords(BaseModel):
    keywords: list[Phrase] = Field(max_length=5, description="Up to five keywords, most important first.")


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]


class Question(BaseModel):
    question: str = Field(min_length=1, max_length=1_000)
    context: str = Field(min_length=1, max_length=MAX_TEXT, description="The text that holds the answer.")


class Answer(BaseModel):
    answer: str = Field(max_length=300)


class Critique(BaseModel):
    strengths: list[Annotated[str, Field(max_length=80)]] = Field(max_length=3)
    weaknesses: list[Annotated[str, Field(max_length=80)]] = Field(max_length=3)


def _summarize(agent: Agent) -> None:
    agent.prompt(
        "summarize",
        input=Text,
        output=Summary,
        instructions="Summarise the user's text in one short sentence. Answer in JSON.",
        template="{text}",
        description="Summarise a text in one or two sentences.",
        max_tokens=128,
        examples=[
            ({"text": "The cat sat on the mat all day."}, {"summary": "A cat spent the day on a mat."})
        ],
    )


def _translate(agent: Agent) -> None:
    agent.prompt(
        "translate",
        input=TranslationRequest,
        output=Translation,
        instructions="Translate the user's text. Answer in JSON with the translation only.",
        template="Translate into {target_language}:\n{text}",
        description="Translate a text into another language.",
        max_tokens=192,
    )


def _keywords(agent: Agent) -> None:
    agent.prompt(
        "extract_keywords",
        input=Text,
        output=Keywords,
        instructions="List the main keywords of the user's text. Answer in JSON.",
        template="{text}",
        description="Extract up to five keywords from a text.",
        max_tokens=96,
    )


def _sentiment(agent: Agent) -> None:
    agent.prompt(
        "classify_sentiment",
        input=Text,
        output=Sentiment,
        instructions="Is the user's text positive, negative or neutral? Answer in JSON.",
        template="{text}",
        description="Classify a text as positive, negative or neutral.",
        max_tokens=16,
    )


def _answer(agent: Agent) -> None:
    agent.prompt(
        "answer_from_context",
        input=Question,
        output=Answer,
        instructions="Answer the question using only the context. Answer in JSON.",
        template="Context:\n{context}\n\nQuestion: {question}",
        description="Answer a question from a given context.",
        max_tokens=128,
    )


def _critique(agent: Agent) -> None:
    agent.prompt(
        "critique",
        input=Text,
        output=Critique,
        instructions="Give the strengths and weaknesses of the user's text. Answer in JSON.",
        template="{text}",
        description="List a text's strengths and weaknesses.",
        max_tokens=224,
    )


BUILTINS = {
    "summarize": _summarize,
    "translate": _translate,
    "extract_keywords": _keywords,
    "classify_sentiment": _sentiment,
    "answer_from_context": _answer,
    "critique": _critique,
}
"""Capability name → what adds it to an agent."""


def builtin_agent(
    *capabilities: str,
    runtime: Runtime | None = None,
    name: str | None = None,
    price: int = 0,
    price_per_1k_tokens: int = 0,
) -> Agent:
    """An agent with the named built-in capabilities (all of them when none are named).

    `runtime` defaults to the bundled SmolLM2 through `LlamaCppRuntime`, loaded on first use.
    """
    names = capabilities or tuple(BUILTINS)
    unknown = [n for n in names if n not in BUILTINS]
    if unknown:
        raise ValueError(f"no built-in capability {unknown[0]!r}: there are {sorted(BUILTINS)}")
    if runtime is None:
        from motet.runtimes import LlamaCppRuntime

        runtime = LlamaCppRuntime()
    agent = Agent(
        name or ("-".join(names) if len(names) < 3 else "motet-builtins"),
        description="Built-in motet agent on an open-source model: " + ", ".join(names) + ".",
        runtime=runtime,
        price=price,
        price_per_1k_tokens=price_per_1k_tokens,
    )
    for each in names:
        BUILTINS[each](agent)
    return agent
