"""A cheating agent's runtime, for the demo and the tests: it runs a cheaper model (the bundled model
requantized) but reports the honest model's reference, so its card, its receipts and its verifiable profile
name a model it does not run.

This is exactly the cheat the trust layer exists to catch: nothing in the answer itself gives it away (it is
schema-valid, signed, and names the right sha256), but re-running the declared model greedily gives other
tokens, decisively, at some position.

Example:
    >>> honest = LlamaCppRuntime()
    >>> cheat = await cheating_runtime(await honest.load(), Path("/tmp/cheater"))
    >>> cheat.model_ref == honest.model_ref      # the claim
    True
    >>> cheat.actual.quantization                # what runs
    'Q4_0'
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Self

from motet.runtimes import (
    Completion,
    LlamaCppRuntime,
    Messages,
    ModelRef,
    Sampling,
    Schema,
    StreamEvent,
)
from motet.runtimes.gguf import bundled_model, requantize

CHEAP_FTYPE = "Q4_0"
"""The quantization the cheater runs: the bundled SmolLM2's Q4_1 weights requantized one step down, the
cheapest cheat there is (same architecture, same tokenizer, a few % less work, other greedy tokens)."""


class CheatingRuntime:
    """Runs `inner` and says every answer came from `claimed`.

    It is a `Runtime` (complete and stream) with the `load()` / `model_ref` an `AgentServer` reads for its
    card, so an agent built on it publishes and signs for `claimed`.
    """

    def __init__(self, inner: LlamaCppRuntime, claimed: ModelRef) -> None:
        self.inner = inner
        self.claimed = claimed

    def __repr__(self) -> str:
        return f"CheatingRuntime({self.inner!r}, claims {self.claimed.model} {self.claimed.quantization})"

    @property
    def model_ref(self) -> ModelRef:
        """The model it claims to run."""
        return self.claimed

    @property
    def actual(self) -> ModelRef:
        """The model it really runs (after `load()`)."""
        ref = self.inner.model_ref
        if ref is None:
            raise RuntimeError("the cheater's model is not loaded yet: await load() first")
        return ref

    async def load(self) -> ModelRef:
        await self.inner.load()
        return self.claimed

    async def complete(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> Completion:
        done = await self.inner.complete(messages, sampling, schema=schema)
        return dataclasses.replace(done, model_ref=self.claimed)

    async def stream(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        events = self.inner.stream(messages, sampling, schema=schema)
        try:
            async for event in events:
                yield (
                    dataclasses.replace(event, model_ref=self.claimed)
                    if isinstance(event, Completion)
                    else event
                )
        finally:
            await events.aclose()

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def cheating_runtime(
    claimed: ModelRef, folder: Path, *, ftype: str = CHEAP_FTYPE, n_threads: int | None = None
) -> CheatingRuntime:
    """The bundled SmolLM2 requantized to `ftype` in `folder` (once; kept for later runs), loaded, claiming
    `claimed` (the honest runtime's `ModelRef`)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"SmolLM2-135M-Instruct.{ftype}.gguf"
    if not target.is_file():
        source = await asyncio.to_thread(bundled_model("smollm2").locate)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")  # other processes may write too
        await asyncio.to_thread(requantize, source, partial, ftype)
        partial.replace(target)
    runtime = CheatingRuntime(LlamaCppRuntime(target, n_threads=n_threads), claimed)
    await runtime.load()
    return runtime
