"""The test doubles behave like a runtime: the shared conformance suite, then what only they do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from support.conformance import KEYWORDS_SCHEMA, Keywords, RuntimeConformance

from motet.agents import BUILTINS, builtin_agent
from motet.errors import ContextOverflow, InvalidModelOutput, InvalidSchema
from motet.runtimes import Completion, Message, Runtime, Sampling, TextDelta
from motet.runtimes.testing import CallInfo, FunctionRuntime, ScriptedRuntime, deterministic_runtime

KEYWORDS = {"keywords": ["red", "green", "blue"]}


class TestScriptedConformance(RuntimeConformance):
    @pytest.fixture
    def runtime(self) -> ScriptedRuntime:
        return ScriptedRuntime([KEYWORDS] * 8)

    @pytest.fixture
    def model_calls(self, runtime: ScriptedRuntime) -> Callable[[], int]:
        return lambda: len(runtime.calls)


class TestFunctionConformance(RuntimeConformance):
    @pytest.fixture
    def runtime(self) -> FunctionRuntime:
        return FunctionRuntime(lambda messages, info: {"keywords": messages[-1].content.split()[:5]})

    @pytest.fixture
    def model_calls(self, runtime: FunctionRuntime) -> Callable[[], int]:
        return lambda: len(runtime.calls)


async def test_scripted_answers_in_order_records_calls_and_runs_out() -> None:
    runtime = ScriptedRuntime(["First answer.", KEYWORDS])
    first = await runtime.complete("one", Sampling(max_tokens=8, seed=4, stop=["never"]))
    second = await runtime.complete([{"role": "user", "content": "two"}], schema=KEYWORDS_SCHEMA)
    assert (first.text, first.parsed) == ("First answer.", None)
    assert (second.text, second.parsed) == ('{"keywords": ["red", "green", "blue"]}', KEYWORDS)
    assert [call.index for call in runtime.calls] == [0, 1]
    assert runtime.calls[0] == CallInfo(
        (Message("user", "one"),), Sampling(max_tokens=8, seed=4, stop=("never",)), None, 0
    )
    assert runtime.calls[1].schema == KEYWORDS_SCHEMA
    assert runtime.remaining == 0
    with pytest.raises(IndexError, match="no response for call 3: its script has 2"):
        await runtime.complete("three")


async def test_usage_counts_words_and_max_tokens_cuts_the_answer() -> None:
    runtime = ScriptedRuntime(["one two three four five", "one two three four five"])
    whole = await runtime.complete("a b c", Sampling(max_tokens=5))
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.finish_reason) == (3, 5, "stop")
    cut = await runtime.complete("a b c", Sampling(max_tokens=2))
    assert (cut.text, cut.usage.completion_tokens, cut.finish_reason) == ("one two", 2, "length")


async def test_stop_sequences_end_the_answer_early() -> None:
    runtime = ScriptedRuntime(["Answer: yes.\nExplanation: long"])
    done = await runtime.complete("?", Sampling(stop=["\n", "zzz"]))
    assert (done.text, done.finish_reason) == ("Answer: yes.", "stop")


async def test_stream_yields_word_deltas_then_the_completion() -> None:
    runtime = ScriptedRuntime(["  Hello there,  world. "])
    events = [event async for event in runtime.stream("hi")]
    assert [event.text for event in events if isinstance(event, TextDelta)] == [
        "  Hello",
        " there,",
        "  world. ",
    ]
    assert isinstance(events[-1], Completion)
    assert events[-1].text == "  Hello there,  world. "


async def test_output_that_breaks_the_schema_raises_invalid_model_output() -> None:
    runtime = ScriptedRuntime(["not json", {"keywords": list("abcdef")}, '{"keywords": ["a", "b"'])
    with pytest.raises(InvalidModelOutput, match="not JSON"):
        await runtime.complete("?", schema=KEYWORDS_SCHEMA)
    with pytest.raises(
        InvalidModelOutput, match="does not match Keywords: keywords: List should have at most 5"
    ):
        await runtime.complete("?", schema=Keywords)
    with pytest.raises(InvalidModelOutput, match=r"stopped at the call.s max_tokens: pass a larger Sampling"):
        await runtime.complete("?", Sampling(max_tokens=2), schema=KEYWORDS_SCHEMA)


async def test_streamed_output_that_breaks_the_schema_raises_after_its_deltas() -> None:
    runtime = ScriptedRuntime(["not json at all"])
    seen: list[str] = []

    async def consume() -> None:
        async for event in runtime.stream("?", schema=KEYWORDS_SCHEMA):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    with pytest.raises(InvalidModelOutput):
        await consume()
    assert "".join(seen) == "not json at all"


async def test_bad_arguments_are_rejected_before_the_call() -> None:
    runtime = ScriptedRuntime(["unused"])
    with pytest.raises(InvalidSchema, match="pass a JSON Schema dict or a pydantic model class"):
        await runtime.complete("?", schema=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="role 'robot'"):
        await runtime.complete([{"role": "robot", "content": "beep"}])
    with pytest.raises(TypeError, match="sampling is 8: pass a Sampling"):
        await runtime.complete("?", 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="messages is empty"):
        await runtime.complete([])
    with pytest.raises(ContextOverflow):
        await ScriptedRuntime(["unused"], n_ctx=10).complete("one two three", Sampling(max_tokens=8))
    assert runtime.calls == []


async def test_function_runtime_calls_sync_and_async_functions_with_the_call_info() -> None:
    async def shout(messages: tuple[Message, ...], info: CallInfo) -> str:
        await asyncio.sleep(0)
        return f"{messages[-1].content.upper()} (call {info.index}, max {info.sampling.max_tokens})"

    runtime = FunctionRuntime(shout)
    assert isinstance(runtime, Runtime)
    assert (await runtime.complete("hey", Sampling(max_tokens=9))).text == "HEY (call 0, max 9)"
    assert (await runtime.complete("you", Sampling(max_tokens=9))).text == "YOU (call 1, max 9)"
    assert runtime.model_ref.model.endswith("shout")
    typed = FunctionRuntime(lambda messages, info: {"keywords": [str(info.schema is not None)]})
    assert (await typed.complete("?", schema=Keywords)).parsed == {"keywords": ["True"]}


@pytest.mark.parametrize("capability", sorted(BUILTINS))
async def test_deterministic_runtime_answers_every_builtin_capability_to_its_schema(capability: str) -> None:
    agent = builtin_agent(capability, runtime=deterministic_runtime())
    found = agent.get(capability)
    request = {name: "The new library downtown." for name in found.input.model_fields}
    streamed: list[str] = []
    result = await agent.invoke(capability, request, on_token=streamed.append)
    assert set(result.output) == set(found.output.model_fields)
    assert json.loads("".join(streamed)) == result.output


def test_model_refs_tell_scripts_apart() -> None:
    one, other = ScriptedRuntime(["a"]).model_ref, ScriptedRuntime(["b"]).model_ref
    assert one.runtime == "test"
    assert one.sha256 != other.sha256
    assert one == ScriptedRuntime(["a"]).model_ref
