"""Runtimes: models behind one async interface, `Runtime`, with usage, finish reason and model reference.

`LlamaCppRuntime` runs a GGUF model in-process with llama.cpp (the bundled SmolLM2-135M-Instruct by
default); `OpenAIEndpointRuntime` calls any OpenAI-compatible endpoint (DePIN providers, vLLM,
`llama_cpp.server`) through litellm with hard bounds. `Sampling` says how a call generates (`max_tokens`,
`temperature`, `seed`, `stop`). `motet.runtimes.gguf` locates and hashes GGUF files; `motet.runtimes.testing` has scripted and function-backed runtimes for tests.

Example:
    >>> import asyncio
    >>> runtime = LlamaCppRuntime()
    >>> done = asyncio.run(runtime.complete("Name one colour.", Sampling(max_tokens=8, seed=1)))
    >>> done.finish_reason in ("stop", "length")
    True
"""

from motet.runtimes._llama_cpp import LlamaCppRuntime
from motet.runtimes._openai_endpoint import PRESETS, EndpointPreset, OpenAIEndpointRuntime
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
    Message,
    Messages,
    ModelRef,
    Role,
    Runtime,
    Sampling,
    Schema,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "PRESETS",
    "Completion",
    "EndpointPreset",
    "FinishReason",
    "LlamaCppRuntime",
    "Message",
    "Messages",
    "ModelRef",
    "OpenAIEndpointRuntime",
    "Role",
    "Runtime",
    "Sampling",
    "Schema",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
