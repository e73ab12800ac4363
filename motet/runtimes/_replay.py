"""Replaying a claimed answer through llama.cpp: where the model's greedy choice departs from the claim, and by
how much (the logit margin).

`LlamaCppRuntime.replay()` runs `walk()` on its worker thread. The walk is a greedy decode guided by the claimed
text, under the same chat template, grammar and sampling chain the runtime generates with:

- at each step the grammar-allowed token with the highest logit (the model's greedy choice, `g`) is taken when
  its text begins the rest of the claimed text (a different segmentation of the same text is no divergence);
- otherwise the best grammar-allowed token `t` whose text begins the rest of the claim is found, and the step
  is a `Divergence` with margin `logit[g] - logit[t]` (infinite when no such `t` exists): up to `tolerance` the
  walk follows `t` (an honest near-tie: floating-point sums differ between thread counts, batch sizes, cached
  prompts and machines), above it the walk stops (the decisive divergence);
- when the claimed text is used up, the model must end the answer (an end-of-generation token; or the answer
  reached `max_tokens`): a model that would go on gives a divergence whose margin is `logit[g] - logit[end]`;
- where two tokens that both begin the rest of the claim are within `tolerance` (`' ['` and `' ["'`), the agent
  may have taken either and the rest of its answer follows from that choice: a path that ends in a decisive
  divergence goes back to try the other (a bounded search; cut short, it gives no verdict).

A fast path gives the same decisions at a fraction of the cost: the claimed text is tokenized and evaluated in
chunks (one batched prefill, logits at every position) and each step is accepted when the claimed token is the
grammar-masked greedy choice; at the first step where it is not, the walk carries on one token at a time from
there.

Everything here runs on the runtime's worker thread and touches llama-cpp-python's `Llama` internals
(`_ctx`, `_batch`, `input_ids`, `n_tokens`) the way `Llama.eval` does, so that the next `complete()` reuses or
resets the context as usual.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from motet.runtimes._protocol import ModelRef

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    Logits = npt.NDArray[np.float32]

# Claimed tokens are evaluated at most this many at a time on the fast path: every position's logits are kept
# by llama.cpp until the next decode (n_vocab floats each), so a chunk bounds that memory (64 x 49,152 x 4 B).
FAST_CHUNK = 64
# Greedy choice under a grammar: candidates are tested for grammar acceptance in blocks of this many, best
# logits first, so a step usually costs one small grammar call instead of one over the whole vocabulary.
_GREEDY_BLOCK = 32


@dataclass(frozen=True)
class Divergence:
    """One step where the model's greedy choice is not the claimed text.

    Example:
        >>> Divergence(3, "cat", "dog", 0.02).describe()
        "token 3: the model prefers 'dog' to the claimed 'cat' by 0.02 logits"
    """

    position: int
    """Index of the answer token (from 0) at which it happens."""
    claimed: str
    """The claimed token's text; empty when the claim ends here."""
    model: str
    """The model's greedy token's text; empty when the model ends the answer here."""
    margin: float
    """logit(model's choice) - logit(claimed); `inf` when the grammar allows nothing that continues the claim."""

    def describe(self) -> str:
        """A sentence saying where and why."""
        claimed = repr(self.claimed) if self.claimed else "end of the answer"
        model = repr(self.model) if self.model else "ending the answer"
        if math.isinf(self.margin):
            if not self.claimed:
                return f"token {self.position}: the answer ends where the output schema does not allow it to"
            return f"token {self.position}: no token the output schema allows here continues the claimed text"
        return f"token {self.position}: the model prefers {model} to the claimed {claimed} by {self.margin:.3g} logits"


@dataclass(frozen=True)
class Replay:
    """What re-running the model along a claimed answer found.

    `decisive` is the divergence above the tolerance that ended the walk (when every near-tie alternative failed
    too: the one on the path that got furthest); `divergences` lists the divergences on the path reported, the
    decisive one last. With `tolerance=inf` nothing is decisive and every margin on the greedy path is recorded.
    """

    tokens: int
    """Answer tokens walked (accepted or followed)."""
    divergences: tuple[Divergence, ...]
    decisive: Divergence | None
    complete: bool
    """The whole claimed text was walked and its end checked (False when stopped at a decisive divergence)."""
    fast: bool
    """Every step was confirmed on the fast path (no divergence, not even a different segmentation)."""
    cpu_s: float
    """CPU seconds of the process while it ran (`time.process_time`, llama.cpp's threads included)."""
    model_ref: ModelRef

    @property
    def max_margin(self) -> float:
        """The largest margin among the divergences (0 when there are none)."""
        return max((d.margin for d in self.divergences), default=0.0)


@dataclass
class Vocabulary:
    """A model's token texts as the completion text spells them, and its end-of-generation tokens."""

    pieces: list[bytes]
    by_piece: dict[bytes, list[int]]
    longest: int
    eog: list[int]

    @classmethod
    def of(cls, llama: Llama) -> Vocabulary:
        import llama_cpp

        vocab = llama._model.vocab
        n_vocab = llama.n_vocab()
        buffer = ctypes.create_string_buffer(256)
        pieces: list[bytes] = []
        by_piece: dict[bytes, list[int]] = {}
        eog: list[int] = []
        for token in range(n_vocab):
            # special=False, lstrip 0: exactly what llama-cpp-python's detokenize() writes into the text.
            size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, False)
            piece = buffer.raw[:size] if size > 0 else b""
            pieces.append(piece)
            if piece:
                by_piece.setdefault(piece, []).append(token)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                eog.append(token)
        return cls(pieces, by_piece, max(map(len, pieces), default=1), eog)

    def starting(self, rest: bytes) -> list[int]:
        """Tokens whose (non-empty) text begins `rest`."""
        found: list[int] = []
        for size in range(1, min(self.longest, len(rest)) + 1):
            found.extend(self.by_piece.get(rest[:size], ()))
        return found


class _Grammar:
    """A llama.cpp grammar sampler used on its own: which tokens it allows now, and advancing it."""

    def __init__(self, llama: Llama, grammar: LlamaGrammar | None) -> None:
        import llama_cpp
        import numpy as np

        self._lib = llama_cpp
        self._sampler: Any = None
        if grammar is not None:
            self._sampler = llama_cpp.llama_sampler_init_grammar(
                llama._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not self._sampler:
                raise RuntimeError("llama.cpp could not build the output schema's grammar")
        self._dtype = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)

    def allowed(self, tokens: npt.NDArray[np.intc]) -> npt.NDArray[np.bool_]:
        """For each token, whether the grammar allows it next (all allowed without a grammar)."""
        import numpy as np

        if self._sampler is None or len(tokens) == 0:
            return np.ones(len(tokens), dtype=np.bool_)
        data = np.zeros(len(tokens), dtype=self._dtype)
        data["id"] = tokens
        array = self._lib.llama_token_data_array(
            data=data.ctypes.data_as(self._lib.llama_token_data_p),
            size=len(tokens),
            selected=-1,
            sorted=False,
        )
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return cast("npt.NDArray[np.bool_]", np.isfinite(data["logit"]))

    def clone(self) -> _Grammar:
        """An independent copy in the same state."""
        copy = object.__new__(_Grammar)
        copy._lib, copy._dtype = self._lib, self._dtype
        copy._sampler = self._lib.llama_sampler_clone(self._sampler) if self._sampler is not None else None
        return copy

    def accept(self, token: int) -> None:
        if self._sampler is not None:
            self._lib.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler is not None:
            self._lib.llama_sampler_free(self._sampler)
            self._sampler = None


def _greedy(logits: Logits, grammar: _Grammar) -> int | None:
    """The grammar-allowed token with the highest logit (the lowest id among equal logits), as llama.cpp's
    grammar + greedy chain picks it; None when the grammar allows nothing."""
    import numpy as np

    order = np.argsort(-logits, kind="stable")
    start, block = 0, _GREEDY_BLOCK
    while start < len(order):
        candidates = order[start : start + block].astype(np.intc)
        allowed = grammar.allowed(candidates)
        if allowed.any():
            return int(candidates[int(np.argmax(allowed))])
        start, block = start + block, block * 8
    return None


def _best(logits: Logits, tokens: Sequence[int], grammar: _Grammar) -> int | None:
    """The grammar-allowed token among `tokens` with the highest logit; None when none is allowed."""
    import numpy as np

    if not tokens:
        return None
    ids = np.array(sorted(set(tokens)), dtype=np.intc)
    allowed = grammar.allowed(ids)
    if not allowed.any():
        return None
    kept = ids[allowed]
    return int(kept[int(np.argmax(logits[kept]))])


class _Context:
    """The `Llama`'s context, decoded the way `Llama.eval` does but with logits where the walk needs them."""

    def __init__(self, llama: Llama) -> None:
        import numpy as np

        self.llama = llama
        self.n_vocab = llama.n_vocab()
        self._np = np

    def start(self, prompt: Sequence[int], reuse: bool) -> Logits:
        """Evaluate the prompt (reusing the cached prefix when `reuse`); the logits after its last token."""
        llama = self.llama
        keep = 0
        if reuse:
            for cached, token in zip(llama._input_ids.tolist(), prompt[:-1], strict=False):
                if cached != token:
                    break
                keep += 1
        if not llama._ctx.kv_cache_seq_rm(-1, keep, -1):  # a cache that cannot drop a suffix: start afresh
            llama._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
            keep = 0
        llama.n_tokens = keep
        rows = self.decode(prompt[keep:], first_logits=len(prompt) - keep - 1)
        return rows[-1].copy()

    def truncate(self, n_tokens: int) -> None:
        """Forget every position from `n_tokens` on."""
        self.llama._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
        self.llama.n_tokens = n_tokens

    def decode(self, tokens: Sequence[int], first_logits: int = 0) -> list[Logits]:
        """Evaluate `tokens` after the context's current ones, in batches of at most `n_batch`; the logits after
        each of `tokens[first_logits:]`, as views valid until the next decode."""
        import llama_cpp

        llama = self.llama
        batch = llama._batch
        rows: list[Logits] = []
        for start in range(0, len(tokens), llama.n_batch):
            chunk = tokens[start : start + llama.n_batch]
            n_past = llama.n_tokens
            raw = batch.batch
            raw.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                raw.token[i] = token
                raw.pos[i] = n_past + i
                raw.seq_id[i][0] = 0
                raw.n_seq_id[i] = 1
                raw.logits[i] = start + i >= first_logits
            llama._ctx.decode(batch)
            llama.input_ids[n_past : n_past + len(chunk)] = chunk
            llama.n_tokens += len(chunk)
            llama._requires_eval = False
            for i in range(len(chunk)):
                if start + i >= first_logits:
                    pointer = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, i)
                    rows.append(self._np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)))
        return rows


def walk(
    llama: Llama,
    vocabulary: Vocabulary,
    prompt: Sequence[int],
    text: str,
    *,
    grammar: LlamaGrammar | None,
    max_tokens: int,
    stops: Sequence[str],
    tolerance: float,
    reuse_prompt: bool,
    model_ref: ModelRef,
) -> Replay:
    """Replay `text` as the answer to the formatted `prompt`; see the module docstring.

    Where several tokens that begin the rest of the claim are within `tolerance` of the greedy choice (a near-tie
    between two splits of the same text, such as `' ['` and `' ["'`), the agent may have taken either, and the
    rest of its answer follows from that choice: the walk takes the best and, if that path ends in a decisive
    divergence, comes back to try the others (at most `MAX_BACKTRACKS` times; a search cut short is no verdict).
    """
    started = time.process_time()
    claimed = text.encode("utf-8")
    context = _Context(llama)
    logits = context.start(prompt, reuse_prompt)
    sampler = _Grammar(llama, grammar)
    try:
        position, consumed, fast = _fast_path(
            context, vocabulary, sampler, claimed, logits.copy(), len(prompt)
        )
        search = _Search(context, vocabulary, claimed, len(prompt), max_tokens, stops, tolerance)
        found = search.run(sampler, position, consumed, fast.logits)
        if found.decisive is not None and position > 0:
            # The fast path took the claim's own split without looking for others: search from the start.
            sampler.close()
            sampler = _Grammar(llama, grammar)
            context.truncate(len(prompt))
            again = search.run(sampler, 0, 0, logits)
            if again.decisive is None:
                found = again
            elif found.decisive is not None and again.decisive is not None:
                found = again if again.decisive.position > found.decisive.position else found
        whole = fast.whole and found.complete and not found.divergences
        return Replay(
            found.tokens,
            tuple(found.divergences),
            found.decisive,
            found.complete,
            whole,
            time.process_time() - started,
            model_ref,
        )
    finally:
        sampler.close()


MAX_BACKTRACKS = 32
"""How many near-tie alternatives one replay may go back to try."""


@dataclass
class _Found:
    tokens: int
    divergences: list[Divergence]
    decisive: Divergence | None
    complete: bool


@dataclass
class _Branch:
    """A step where other tokens continuing the claim were within the tolerance: what it takes to try them."""

    position: int
    consumed: int
    logits: Logits
    sampler: _Grammar
    greedy: int | None
    alternatives: list[int]
    divergences: int


class _Search:
    def __init__(
        self,
        context: _Context,
        vocabulary: Vocabulary,
        claimed: bytes,
        n_prompt: int,
        max_tokens: int,
        stops: Sequence[str],
        tolerance: float,
    ) -> None:
        self.context = context
        self.vocabulary = vocabulary
        self.claimed = claimed
        self.n_prompt = n_prompt
        self.max_tokens = max_tokens
        self.stops = stops
        self.tolerance = tolerance

    def run(self, sampler: _Grammar, position: int, consumed: int, logits: Logits) -> _Found:
        vocabulary, claimed, tolerance = self.vocabulary, self.claimed, self.tolerance
        branches: list[_Branch] = []
        divergences: list[Divergence] = []
        furthest: _Found | None = None
        backtracks = 0
        limit = self.max_tokens + len(claimed) + 8  # every step consumes a byte, but for empty-text tokens
        try:
            while True:
                failed: Divergence | None = None
                follow: int | None = None
                rest = claimed[consumed:]
                greedy = _greedy(logits, sampler)
                if position > limit:
                    return _Found(position, divergences, None, False)
                if not rest:
                    end = _end_divergence(
                        vocabulary, sampler, logits, greedy, position, self.max_tokens, self.stops
                    )
                    if end is not None:
                        divergences.append(end)
                    if end is None or end.margin <= tolerance:
                        return _Found(position, divergences, None, True)
                    failed = end
                else:
                    options = _continuations(logits, vocabulary.starting(rest), sampler)
                    if greedy is not None and greedy not in vocabulary.eog and greedy in options:
                        follow = greedy
                    elif options:
                        follow = options[0]
                        margin = math.inf if greedy is None else float(logits[greedy] - logits[follow])
                        divergence = Divergence(
                            position, _text(vocabulary.pieces[follow]), _piece(vocabulary, greedy), margin
                        )
                        divergences.append(divergence)
                        if margin > tolerance:
                            failed = divergence
                    else:
                        failed = Divergence(position, _text(rest[:16]), _piece(vocabulary, greedy), math.inf)
                        divergences.append(failed)
                    if failed is None and follow is not None:
                        top = float(logits[greedy]) if greedy is not None else float(logits[follow])
                        others = [t for t in options if t != follow and top - float(logits[t]) <= tolerance]
                        if others:
                            branches.append(
                                _Branch(
                                    position,
                                    consumed,
                                    logits.copy(),
                                    sampler.clone(),
                                    greedy,
                                    others,
                                    len(divergences),
                                )
                            )
                if failed is not None:
                    if furthest is None or position > (
                        furthest.decisive.position if furthest.decisive else -1
                    ):
                        furthest = _Found(position, list(divergences), failed, False)
                    while branches and not branches[-1].alternatives:
                        branches.pop().sampler.close()
                    if not branches:
                        return furthest
                    if backtracks >= MAX_BACKTRACKS:
                        return _Found(position, divergences, None, False)
                    backtracks += 1
                    branch = branches[-1]
                    follow = branch.alternatives.pop(0)
                    position, consumed, logits = branch.position, branch.consumed, branch.logits.copy()
                    sampler.close()
                    sampler = branch.sampler.clone()
                    self.context.truncate(self.n_prompt + position)
                    del divergences[branch.divergences :]
                    if branch.greedy is not None and branch.greedy != follow:
                        divergences.append(
                            Divergence(
                                position,
                                _text(vocabulary.pieces[follow]),
                                _piece(vocabulary, branch.greedy),
                                float(logits[branch.greedy] - logits[follow]),
                            )
                        )
                assert follow is not None
                sampler.accept(follow)
                consumed += len(vocabulary.pieces[follow])
                position += 1
                logits = self.context.decode([follow])[0]
        finally:
            for branch in branches:
                branch.sampler.close()
            sampler.close()


def _continuations(logits: Logits, tokens: Sequence[int], grammar: _Grammar) -> list[int]:
    """The grammar-allowed tokens among `tokens`, best logit first."""
    import numpy as np

    if not tokens:
        return []
    ids = np.array(sorted(set(tokens)), dtype=np.intc)
    kept = ids[grammar.allowed(ids)]
    return [int(t) for t in sorted(kept.tolist(), key=lambda t: (-float(logits[t]), t))]


def _piece(vocabulary: Vocabulary, token: int | None) -> str:
    if token is None or token in vocabulary.eog:
        return ""
    return _text(vocabulary.pieces[token])


@dataclass
class _Fast:
    logits: Logits
    whole: bool


def _fast_path(
    context: _Context,
    vocabulary: Vocabulary,
    sampler: _Grammar,
    claimed: bytes,
    logits: Logits,
    n_prompt: int,
) -> tuple[int, int, _Fast]:
    """Accept the claimed text's own tokenization while each token is the grammar-masked greedy choice.

    Returns (tokens accepted, bytes consumed, the logits for the next step and whether all were accepted).
    """
    import numpy as np

    llama = context.llama
    tokens = llama.tokenize(claimed, add_bos=False, special=False) if claimed else []
    if b"".join(vocabulary.pieces[t] for t in tokens) != claimed:
        return 0, 0, _Fast(logits, False)  # this tokenizer does not spell the text back (a space prefix)
    position, consumed = 0, 0
    chunk_size = max(1, min(FAST_CHUNK, llama.n_batch))
    for start in range(0, len(tokens), chunk_size):
        chunk = tokens[start : start + chunk_size]
        rows = context.decode(chunk)
        for token, row in zip(chunk, rows, strict=True):
            higher = np.flatnonzero(logits > logits[token]).astype(np.intc)
            matches = bool(sampler.allowed(np.array([token], dtype=np.intc))[0]) and not (
                len(higher) and sampler.allowed(higher).any()
            )
            if not matches:
                context.truncate(n_prompt + position)
                return position, consumed, _Fast(logits, False)
            sampler.accept(token)
            position += 1
            consumed += len(vocabulary.pieces[token])
            logits = row
        logits = logits.copy()  # the rows are overwritten by the next decode
    return position, consumed, _Fast(logits, True)


def _end_divergence(
    vocabulary: Vocabulary,
    sampler: _Grammar,
    logits: Logits,
    greedy: int | None,
    position: int,
    max_tokens: int,
    stops: Sequence[str],
) -> Divergence | None:
    """At the end of the claimed text: None when the model ends the answer too, else how much it would rather
    go on."""
    if greedy is None or greedy in vocabulary.eog or position >= max_tokens:
        return None
    piece = _text(vocabulary.pieces[greedy])
    if piece and any(stop.startswith(piece) or piece.startswith(stop) for stop in stops if stop):
        return None  # it goes on to a stop sequence, which the completion cuts off
    end = _best(logits, vocabulary.eog, sampler)
    margin = math.inf if end is None else float(logits[greedy] - logits[end])
    return Divergence(position, "", piece, margin)


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")
