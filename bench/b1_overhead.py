"""B1, framework overhead: a 5-node graph on the llama.cpp runtime, against the same prompts sent straight to
`llama_cpp.Llama`.

motet's side is everything: five built-in agents served over HTTP on 127.0.0.1, found in the registry on the
embedded chain, the graph compiled and run on LangGraph (three nodes in parallel), every answer's receipt
checked and paid with a voucher. The raw side calls `Llama.create_chat_completion` directly, one node after
another, with the same messages, JSON grammar, `max_tokens`, greedy decoding and seed (each side resets its
context before a seeded call, as `LlamaCppRuntime` does). Both sides use their own `Llama` with the same
settings. Settlement is left out of the timed runs: it is one transaction per run, measured by B4.

Run alone with `python -m bench.b1_overhead`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar
from pydantic import BaseModel

from motet.agents import AgentServer, CallContext, builtin_agent
from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.registry import Registry
from motet.runtimes import Completion, LlamaCppRuntime, ModelRef, Sampling, Usage
from motet.runtimes._protocol import Messages, StreamEvent, to_messages
from motet.runtimes._schema import OutputSchema
from motet.runtimes.gguf import bundled_model

TARGET = 0.01
TEXT = (
    "The city opened a new public library downtown. Visitors praised the bright reading rooms, the large "
    "children's section and the friendly staff. It is open every day until nine."
)
CAPABILITIES = ("summarize", "extract_keywords", "classify_sentiment", "critique", "answer_from_context")


class Inputs(BaseModel):
    text: str
    question: str


def workflow() -> Workflow:
    return (
        Workflow("b1", inputs=Inputs)
        .add("summarize", "summarize")
        .add("keywords", "extract_keywords")
        .add("sentiment", "classify_sentiment")
        .add("critique", "critique")
        .add("answer", "answer_from_context", after="summarize", inputs={"context": "summarize.summary"})
    )


class RawLlama:
    """The raw side: `create_chat_completion` called directly, no thread, no HTTP, no payment."""

    def __init__(self, llama: llama_cpp.Llama) -> None:
        self.llama = llama
        self.grammars: dict[str, LlamaGrammar] = {}
        self.tokens = 0

    async def complete(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Any = None
    ) -> Completion:
        sampling = sampling if sampling is not None else Sampling()
        output = OutputSchema.of(schema)
        assert output is not None
        key = output.grammar_key
        grammar = self.grammars.get(key) or self.grammars.setdefault(
            key, LlamaGrammar.from_json_schema(key, verbose=False)
        )
        if sampling.seed is not None:
            self.llama.reset()  # type: ignore[no-untyped-call]
        chat: Any = [{"role": m.role, "content": m.content} for m in to_messages(messages)]
        response: Any = self.llama.create_chat_completion(
            chat,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            seed=sampling.seed,
            grammar=grammar,
        )
        text = response["choices"][0]["message"]["content"]
        usage = Usage(response["usage"]["prompt_tokens"], response["usage"]["completion_tokens"])
        self.tokens += usage.completion_tokens
        ref = ModelRef("raw", "-", "raw", "unknown", "unknown")
        return Completion(text, output.parse(text, "stop"), usage, "stop", 0.0, ref)

    def stream(self, messages: Messages, **options: Any) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError


async def _raw_run(raw: RawLlama, outputs: dict[str, dict[str, Any]], question: str) -> None:
    agent = builtin_agent(*CAPABILITIES, runtime=raw)
    calls: Sequence[tuple[str, dict[str, Any]]] = [
        ("summarize", {"text": TEXT}),
        ("extract_keywords", {"text": TEXT}),
        ("classify_sentiment", {"text": TEXT}),
        ("critique", {"text": TEXT}),
        ("answer_from_context", {"question": question, "context": outputs["summarize"]["summary"]}),
    ]
    for name, value in calls:
        capability = agent.get(name)
        await capability.handler(capability.parse_input(value), CallContext(raw))


async def _measure(runs: int, threads: int) -> tuple[float, float, int, int]:
    path = bundled_model("smollm2").locate()
    runtime = LlamaCppRuntime(path, n_threads=threads)
    chain = Chain.embedded()
    registry = Registry(chain)
    question = "When is the library open?"
    async with contextlib.AsyncExitStack() as stack:
        for index, name in enumerate(CAPABILITIES, start=1):
            server = AgentServer(
                builtin_agent(name, runtime=runtime, name=name, price=10**9),
                chain=chain,
                account=chain.accounts[index],
            )
            await stack.enter_async_context(server.running())
            await server.register(registry, stake=10**17)
        payer = Payer(chain, chain.accounts[8], deposit_calls=10 * runs)
        runnable = await workflow().compile(registry, payer=payer, budget=10**18)
        inputs = {"text": TEXT, "question": question}
        warm = await runnable.run(inputs, settle=False)
        raw = RawLlama(llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                                        n_gpu_layers=-1 if llama_cpp.llama_supports_gpu_offload() else 0,
                                        verbose=False))  # fmt: skip
        await _raw_run(raw, warm.outputs, question)
        raw.tokens = 0
        ours = theirs = 0.0
        ours_tokens = 0
        for _ in range(runs):  # alternate, so that the machine's noise falls on both sides
            started = time.perf_counter()
            report = await runnable.run(inputs, settle=False)
            ours += time.perf_counter() - started
            ours_tokens += sum(node.completion_tokens for node in report.nodes.values())
            started = time.perf_counter()
            await _raw_run(raw, warm.outputs, question)
            theirs += time.perf_counter() - started
        await payer.aclose()
    runtime.close()
    return ours, theirs, ours_tokens, raw.tokens


def bench_b1(runs: int = 3, threads: int = 1) -> tuple[float, float, float, int, int]:
    """(motet s per run, raw s per run, overhead fraction, motet tokens, raw tokens), printed."""
    ours, theirs, ours_tokens, raw_tokens = asyncio.run(_measure(runs, threads))
    overhead = ours / theirs - 1
    print(
        f"B1: motet {ours / runs:.2f} s per run vs raw llama.cpp {theirs / runs:.2f} s "
        f"({ours_tokens} vs {raw_tokens} tokens): overhead {overhead:+.1%}"
    )
    return ours / runs, theirs / runs, overhead, ours_tokens, raw_tokens


if __name__ == "__main__":
    bench_b1()
