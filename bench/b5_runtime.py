"""B5, runtime fidelity: `LlamaCppRuntime.complete` tokens/s against raw `llama_cpp.Llama`.

Both sides run the bundled SmolLM2-135M-Instruct GGUF with the same prompt, thread count, context size,
GPU offload, `max_tokens` and greedy decoding. Each has its own `Llama`, so each reuses its own cached
prompt prefix the same way; each is warmed up once, then the two alternate, so that noise from the machine
falls on both. Tokens/s is completion tokens over the wall time the caller waits for the call: for the
runtime that includes the hop to its worker thread and back, which is the cost being measured.

Run alone with `python -m bench.b5_runtime`.
"""

from __future__ import annotations

import asyncio
import time

import llama_cpp

from motet.runtimes import LlamaCppRuntime, Sampling
from motet.runtimes.gguf import bundled_model

PROMPT = "Write a short story about a robot who learns to paint."
TARGET = 0.97


def bench_b5(
    repetitions: int = 5, max_tokens: int = 64, n_threads: int | None = None, n_ctx: int = 2048
) -> tuple[float, float, float]:
    """Return (runtime tokens/s, raw tokens/s, runtime / raw) and print them."""
    path = bundled_model("smollm2").locate()
    gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
    runtime = LlamaCppRuntime(path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=gpu_layers)
    raw = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,  # as LlamaCppRuntime sets them
        n_gpu_layers=gpu_layers,
        verbose=False,
    )
    messages: list[llama_cpp.ChatCompletionRequestMessage] = [{"role": "user", "content": PROMPT}]

    async def timed_runtime() -> tuple[int, float]:
        started = time.perf_counter()
        done = await runtime.complete(PROMPT, Sampling(max_tokens=max_tokens, temperature=0.0))
        return done.usage.completion_tokens, time.perf_counter() - started

    def timed_raw() -> tuple[int, float]:
        started = time.perf_counter()
        response = raw.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0)
        assert isinstance(response, dict)
        return response["usage"]["completion_tokens"], time.perf_counter() - started

    async def measure() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        await timed_runtime()
        timed_raw()
        ours: list[tuple[int, float]] = []
        theirs: list[tuple[int, float]] = []
        for i in range(repetitions):
            if i % 2 == 0:
                ours.append(await timed_runtime())
                theirs.append(timed_raw())
            else:
                theirs.append(timed_raw())
                ours.append(await timed_runtime())
        return ours, theirs

    try:
        ours, theirs = asyncio.run(measure())
    finally:
        runtime.close()
        raw.close()
    runtime_tps = sum(n for n, _ in ours) / sum(t for _, t in ours)
    raw_tps = sum(n for n, _ in theirs) / sum(t for _, t in theirs)
    ratio = runtime_tps / raw_tps
    threads = raw.context_params.n_threads
    print(
        f"B5 runtime fidelity ({threads} threads, {max_tokens} tokens x {repetitions}): LlamaCppRuntime "
        f"{runtime_tps:.1f} tok/s, raw llama_cpp {raw_tps:.1f} tok/s, ratio {ratio:.3f} (target >= {TARGET})"
    )
    return runtime_tps, raw_tps, ratio


if __name__ == "__main__":
    bench_b5()
