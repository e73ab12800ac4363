"""OpenAIEndpointRuntime against real HTTP servers on 127.0.0.1.

A `python -m llama_cpp.server` serving the bundled SmolLM2 GGUF stands in for a DePIN node and runs the
shared conformance suite; a hostile server shows that every way an endpoint can misbehave ends in its own
error within the configured bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing

import pytest
from support.conformance import KEYWORDS_PROMPT, KEYWORDS_SCHEMA, PROMPT, Keywords, RuntimeConformance
from support.models import smollm2_path
from support.servers import HostileServer, LlamaServer, free_port, llama_server

from motet.errors import (
    ContextOverflow,
    EndpointHTTPError,
    EndpointLimitExceeded,
    EndpointProtocolError,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidModelOutput,
    InvalidRuntimeArgument,
    InvalidSampling,
)
from motet.runtimes import PRESETS, Completion, OpenAIEndpointRuntime, Sampling, Schema, TextDelta
from motet.runtimes.gguf import file_sha256

IDLE = 0.5
"""The idle bound the hostile tests configure; each must end well within IDLE + SLACK."""
SLACK = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(smollm2_path(), "smollm2", log) as running:
        yield running


def endpoint_runtime(server: LlamaServer, **options: object) -> OpenAIEndpointRuntime:
    settings: dict[str, object] = {
        "base_url": server.base_url,
        "schema_format": "json_object",  # llama-cpp-python's server takes schemas in this form
        "weights_sha256": file_sha256(smollm2_path()),
        "quantization": "Q4_1",
        "timeout": 60.0,
    }
    settings.update(options)
    return OpenAIEndpointRuntime("smollm2", **settings)  # type: ignore[arg-type]


class TestEndpointConformance(RuntimeConformance):
    """The suite every runtime passes, through HTTP, litellm and llama.cpp's OpenAI server."""

    stream_prompt_tokens = "estimated"  # llama-cpp-python's server streams no usage
    seeded_sampling_repeats = False  # its server reuses the sampler across calls; greedy still repeats

    @pytest.fixture
    def runtime(self, server: LlamaServer) -> OpenAIEndpointRuntime:
        return endpoint_runtime(server, n_ctx=2048)

    @pytest.fixture
    def model_calls(self, server: LlamaServer) -> Callable[[], int]:
        return server.generations


async def test_model_ref_names_the_endpoint_and_what_it_serves(server: LlamaServer) -> None:
    done = await endpoint_runtime(server).complete(PROMPT, Sampling(max_tokens=2))
    ref = done.model_ref
    assert (ref.runtime, ref.model, ref.endpoint) == ("openai-endpoint", "smollm2", server.base_url)
    assert ref.sha256 == file_sha256(smollm2_path())
    assert "at http://127.0.0.1" in str(ref)
    unknown = await OpenAIEndpointRuntime("smollm2", base_url=server.base_url).complete(
        PROMPT, Sampling(max_tokens=2)
    )
    assert (unknown.model_ref.sha256, unknown.model_ref.quantization) == ("unknown", "unknown")


async def test_overflow_the_server_reports_becomes_context_overflow_with_its_counts(
    server: LlamaServer,
) -> None:
    before = server.generations()
    runtime = endpoint_runtime(server)  # no n_ctx: the server is the one to notice
    with pytest.raises(ContextOverflow) as caught:
        await runtime.complete("word " * 3000, Sampling(max_tokens=16))
    assert caught.value.n_ctx == 2048
    assert caught.value.prompt_tokens > 2048
    assert caught.value.max_tokens == 16
    assert server.generations() == before


async def test_the_stream_is_bounded_by_max_tokens_and_stops_when_left(server: LlamaServer) -> None:
    runtime = endpoint_runtime(server)
    async with aclosing(
        runtime.stream("Write a long story about a robot.", Sampling(max_tokens=200))
    ) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break
    done = await runtime.complete("Hi", Sampling(max_tokens=2))  # the server is free again
    assert done.usage.completion_tokens <= 2


async def test_pydantic_schema_through_json_schema_format_is_refused_by_llama_cpp_server(
    server: LlamaServer,
) -> None:
    """llama-cpp-python's server rejects OpenAI's `json_schema` form: a clear HTTP error, not a hang."""
    runtime = endpoint_runtime(server, schema_format="json_schema")
    with pytest.raises(EndpointHTTPError) as caught:
        await runtime.complete(KEYWORDS_PROMPT, Sampling(max_tokens=8), schema=Keywords)
    assert "json_object" in caught.value.detail


def test_arguments_and_environment_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTET_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MOTET_ENDPOINT_MODEL", raising=False)
    with pytest.raises(ValueError, match="set MOTET_ENDPOINT_MODEL"):
        OpenAIEndpointRuntime()
    with pytest.raises(ValueError, match="set MOTET_ENDPOINT_URL"):
        OpenAIEndpointRuntime("m")
    with pytest.raises(ValueError, match="not an http"):
        OpenAIEndpointRuntime("m", base_url="ftp://x")
    with pytest.raises(ValueError, match="idle_timeout is 0"):
        OpenAIEndpointRuntime("m", base_url="http://x", idle_timeout=0)
    monkeypatch.setenv("MOTET_ENDPOINT_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("MOTET_ENDPOINT_MODEL", "qwen")
    runtime = OpenAIEndpointRuntime()
    assert (runtime.model, runtime.base_url) == ("qwen", "http://127.0.0.1:9/v1")


def test_presets_are_configuration_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(PRESETS) == {"ionet", "akash", "hyperbolic"}
    for preset in PRESETS.values():
        assert preset.base_url.startswith("https://")
        monkeypatch.delenv(preset.api_key_env, raising=False)
        with pytest.raises(ValueError, match=preset.api_key_env):
            OpenAIEndpointRuntime.preset(preset.name)
        monkeypatch.setenv(preset.api_key_env, "sk-test")
        runtime = OpenAIEndpointRuntime.preset(preset.name, "some/model")
        assert (runtime.base_url, runtime.model) == (preset.base_url, "some/model")
    with pytest.raises(ValueError, match="unknown provider 'render'"):
        OpenAIEndpointRuntime.preset("render")


async def test_max_tokens_above_the_runtime_cap_is_refused_before_sending() -> None:
    async with HostileServer() as hostile:
        runtime = OpenAIEndpointRuntime("good", base_url=hostile.base_url, max_output_tokens=64)
        with pytest.raises(
            InvalidSampling, match="max_tokens is 65: this runtime accepts at most max_output_tokens=64"
        ):
            await runtime.complete("Hi", Sampling(max_tokens=65))
        assert hostile.requests == 0
        done = await runtime.complete("Hi", Sampling(max_tokens=64))
        assert done.text == "Hi!"


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer() as running:
        yield running


def bounded(hostile: HostileServer, mode: str, **options: object) -> OpenAIEndpointRuntime:
    settings: dict[str, object] = {"base_url": hostile.base_url, "idle_timeout": IDLE, "timeout": 4.0}
    settings.update(options)
    return OpenAIEndpointRuntime(mode, **settings)  # type: ignore[arg-type]


async def run_call(
    runtime: OpenAIEndpointRuntime, how: str, *, max_tokens: int = 16, schema: Schema | None = None
) -> Completion:
    """One call, by `complete()` or by draining `stream()`."""
    sampling = Sampling(max_tokens=max_tokens)
    if how == "complete":
        return await runtime.complete("Hi", sampling, schema=schema)
    events = [event async for event in runtime.stream("Hi", sampling, schema=schema)]
    last = events[-1]
    assert isinstance(last, Completion)
    return last


HOSTILE_CASES: list[tuple[str, str, type[Exception], str]] = [
    ("stall-headers", "complete", EndpointTimeout, "sent no response within 0.5 s"),
    ("stall-headers", "stream", EndpointTimeout, "sent no response within 0.5 s"),
    ("stall-stream", "stream", EndpointTimeout, "sent nothing for 0.5 s in the middle"),
    ("endless", "stream", EndpointLimitExceeded, "max_tokens=16"),
    ("repeat", "stream", EndpointLimitExceeded, "max_tokens=16"),
    ("ignores-max-tokens", "stream", EndpointLimitExceeded, "max_tokens=16"),
    ("ignores-max-tokens", "complete", EndpointLimitExceeded, "max_tokens=16"),
    ("huge", "complete", EndpointLimitExceeded, "max_response_bytes=4,194,304"),
    ("huge-chunked", "complete", EndpointLimitExceeded, "max_response_bytes=4,194,304"),
    ("invalid-json", "complete", EndpointProtocolError, "not a chat completion"),
    ("wrong-shape", "complete", EndpointProtocolError, "not a chat completion"),
    ("http-500", "complete", EndpointHTTPError, "HTTP 500: GPU fell off the bus"),
    ("http-500", "stream", EndpointHTTPError, "HTTP 500: GPU fell off the bus"),
]


@pytest.mark.parametrize(("mode", "how", "error", "message"), HOSTILE_CASES)
async def test_hostile_endpoint_ends_in_a_specific_error_within_the_bound(
    hostile: HostileServer, mode: str, how: str, error: type[Exception], message: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(error, match=message) as caught:
        await run_call(bounded(hostile, mode), how)
    elapsed = time.perf_counter() - started
    assert elapsed < IDLE + SLACK, f"{mode} took {elapsed:.2f} s"
    assert type(caught.value) is error
    assert hostile.requests == 1  # no hidden retry
    if mode.startswith("huge"):
        assert hostile.bytes_sent < 20 * 1024 * 1024  # the connection was dropped, not drained


async def test_wrong_schema_output_is_invalid_model_output(hostile: HostileServer) -> None:
    with pytest.raises(
        InvalidModelOutput, match="does not match the schema: the value: 'keywords' is a required"
    ):
        await run_call(bounded(hostile, "wrong-schema"), "complete", schema=KEYWORDS_SCHEMA)
    with pytest.raises(InvalidModelOutput, match="does not match Keywords: keywords: Field required"):
        await run_call(bounded(hostile, "wrong-schema"), "complete", schema=Keywords)


async def test_a_stream_that_never_ends_slowly_hits_the_call_deadline(hostile: HostileServer) -> None:
    runtime = bounded(hostile, "endless", timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(EndpointTimeout, match=r"did not finish its answer within 1 s"):
        await run_call(runtime, "stream", max_tokens=4096)
    assert time.perf_counter() - started < 1.0 + SLACK


async def test_a_stalled_call_is_cut_by_the_call_deadline_before_the_idle_one(hostile: HostileServer) -> None:
    runtime = bounded(hostile, "stall-headers", timeout=0.3, idle_timeout=30)
    started = time.perf_counter()
    with pytest.raises(EndpointTimeout, match=r"within 0\.3 s") as caught:
        await run_call(runtime, "complete")
    assert caught.value.phase == "call"
    assert time.perf_counter() - started < 0.3 + SLACK


async def test_nothing_listening_is_endpoint_unreachable() -> None:
    runtime = OpenAIEndpointRuntime("m", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=5)
    for how in ("complete", "stream"):
        with pytest.raises(EndpointUnreachable, match="cannot connect"):
            await run_call(runtime, how)


async def test_a_well_behaved_endpoint_without_stream_usage_is_flagged_estimated(
    hostile: HostileServer,
) -> None:
    runtime = bounded(hostile, "good")
    done = await run_call(runtime, "complete")
    assert (done.text, done.usage.completion_tokens, done.usage.estimated) == ("Hi!", 3, False)
    streamed = await run_call(runtime, "stream")
    assert (streamed.text, streamed.usage.completion_tokens, streamed.usage.estimated) == ("Hi!", 2, True)


async def test_cancelling_a_call_closes_its_connection(hostile: HostileServer) -> None:
    runtime = bounded(hostile, "stall-headers", idle_timeout=30, timeout=30)
    task = asyncio.create_task(run_call(runtime, "complete"))
    async with asyncio.timeout(30):  # the first call imports litellm, which takes seconds on a busy machine
        await hostile.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hostile.requests == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: OpenAIEndpointRuntime("m", base_url="ftp://host/v1"),
        lambda: OpenAIEndpointRuntime("m", base_url="http://127.0.0.1:1/v1", max_output_tokens=0),
        lambda: OpenAIEndpointRuntime.preset("nowhere"),
    ],
    ids=["not-http", "no-output-tokens", "unknown-provider"],
)
def test_a_runtime_set_up_wrongly_names_the_argument(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidRuntimeArgument) as caught:
        make()
    assert isinstance(caught.value, ValueError)
