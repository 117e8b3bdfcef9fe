"""Continuous batching: every running request to one embedded model decoded together.

One worker thread owns the llama.cpp context. Each step it builds one batch holding, for
every running sequence, the token it sampled last, and, for the first sequence still
reading its prompt, the next chunk of it (see ``_fill``); one ``llama_decode`` computes them
all, and each sequence then samples its next token from its own row with its own sampler
chain. A request joins at the next step (waiting in FIFO order while ``parallel`` sequences
run) and leaves when it ends or its reader goes away. The sequences share the context's
cache (``kv_unified``): one with a long conversation may use what others do not.

A prompt starts from the longest prefix of it already in the cache (``llama_cache``): its
sequence's own from an earlier request, or another's, shared by copying (in a unified
cache a copy only marks the cells as the other sequence's too). A finished sequence's
tokens stay in the cache for that.

When the cache has no room left for a step, finished sequences' tokens go first (least
recently used first); then the running sequence holding the most of it ends with
``finish_reason: "length"``, and the step is tried again without it.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headend.errors import ProviderError
from headend.providers.base import FinishReason
from headend.providers.llama_cache import CacheMap
from headend.providers.llama_logprobs import LogprobReader, TokenLogprob
from headend.providers.llama_text import AnswerText

log = logging.getLogger(__name__)

NO_ROOM = 1  # llama_decode: no cache slot for the batch
SHARED_CHUNK = 128  # prompt tokens a step takes while other sequences decode
# After each step, from the worker thread: prompt tokens read, tokens sampled, seconds.
StepReport = Callable[[int, int, float], None]


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of the prompt, reused from the cache


@dataclass(frozen=True, slots=True)
class Piece:
    """Text with the log probabilities of the tokens that wrote it."""

    text: str
    logprobs: tuple[TokenLogprob, ...]


@dataclass(slots=True)
class SequenceRequest:
    """One generation: its prompt, how to sample, when to stop, and where its text goes
    (``emit`` is called on the worker thread with text — a ``Piece`` when ``logprobs`` is
    asked for —, a ``Finished`` or an error)."""

    prompt: list[int]
    sampler: Any  # a llama-cpp-python LlamaSampler chain, owned by the engine once submitted
    stops: list[str]
    max_tokens: int | None
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    logprobs: int | None = None  # top alternatives per token; None: none reported
    special: bool = False  # write special tokens (tool-call markers) as their text


@dataclass(slots=True)
class _Running:
    request: SequenceRequest
    seq_id: int
    text: AnswerText
    fed: int = 0  # prompt tokens in the cache
    pos: int = 0  # tokens of this sequence in the cache
    reused: int = 0  # prompt tokens found in the cache when it joined
    last: int = -1  # the token sampled last, fed at the next step
    generated: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of text not yet released

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.request.prompt)


class BatchEngine:
    def __init__(
        self,
        model: Any,
        context: Any,
        *,
        parallel: int,
        n_batch: int,
        name: str,
        on_step: StepReport | None = None,
    ) -> None:
        import llama_cpp

        self._llama = llama_cpp
        self._model = model
        self._context = context
        self._n_batch = n_batch
        self._n_ctx = context.n_ctx()
        self._pending: deque[SequenceRequest] = deque()
        self._running: list[_Running] = []
        # Recurrent and hybrid models cannot drop the end of a sequence's state.
        self._cache = CacheMap(
            parallel,
            reuse=not (
                llama_cpp.llama_model_is_recurrent(model.model)
                or llama_cpp.llama_model_is_hybrid(model.model)
            ),
        )
        self._on_step = on_step
        self._wake = threading.Condition()
        self._closed = False
        self._piece = ctypes.create_string_buffer(256)
        self._logprobs = LogprobReader(context, model.n_vocab(), self._piece_of)
        self._thread = threading.Thread(target=self._work, name=f"llama-{name}", daemon=True)
        self._thread.start()

    def submit(self, request: SequenceRequest) -> None:
        with self._wake:
            if self._closed:
                request.sampler.close()
                raise ProviderError("the embedded model is shutting down")
            self._pending.append(request)
            self._wake.notify()

    def wake(self) -> None:
        """A reader went away: let the worker notice even when it is idle."""
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    # ---- the worker thread
    def _work(self) -> None:
        batch = self._llama.llama_batch_init(self._n_batch, 0, 1)
        try:
            while self._admit():
                try:
                    self._step(batch)
                except Exception as exc:  # llama.cpp failed: every running sequence ends
                    log.exception("embedded model step failed")
                    for running in list(self._running):
                        self._end(running, ProviderError(f"the embedded model failed: {exc}"))
                    self._forget_all()
        finally:
            for running in list(self._running):
                self._end(running, ProviderError("the embedded model is shutting down"))
            for request in self._pending:
                request.emit(ProviderError("the embedded model is shutting down"))
                request.sampler.close()
            self._llama.llama_batch_free(batch)

    def _admit(self) -> bool:
        """Let waiting requests in, in order, while slots are free; wait when there is
        nothing to do. False once closed."""
        with self._wake:
            while True:
                if self._closed:
                    return False
                self._running = [r for r in self._running if not self._gone(r)]
                self._pending = deque(p for p in self._pending if not self._dropped(p))
                while self._pending and self._cache.has_free():
                    self._running.append(self._join(self._pending.popleft()))
                if self._running:
                    return True
                self._wake.wait()

    def _join(self, request: SequenceRequest) -> _Running:
        """A sequence for the request, holding the longest cached prefix of its prompt."""
        place = self._cache.place(request.prompt)
        seq_id, reused, memory = place.seq_id, place.reused, self._context.memory
        if place.source != seq_id or not self._llama.llama_memory_seq_rm(
            memory, seq_id, reused, -1
        ):
            self._llama.llama_memory_seq_rm(memory, seq_id, -1, -1)
            if place.source == seq_id:  # the model could not drop only part of it
                reused = 0
            elif reused:
                self._llama.llama_memory_seq_cp(memory, place.source, seq_id, 0, reused)
        self._cache.keep(seq_id, request.prompt[:reused])
        text = AnswerText(request.stops)
        return _Running(request, seq_id, text, fed=reused, pos=reused, reused=reused)

    def _forget_all(self) -> None:
        self._llama.llama_memory_clear(self._context.memory, True)
        self._cache.forget_all()

    def _dropped(self, request: SequenceRequest) -> bool:
        if request.cancelled.is_set():
            request.sampler.close()
            return True
        return False

    def _gone(self, running: _Running) -> bool:
        """A sequence whose reader left: its slot is free now (its tokens stay cached)."""
        if not running.request.cancelled.is_set():
            return False
        self._release(running)
        return True

    def _step(self, batch: Any) -> None:
        while self._running:
            rows = self._fill(batch)
            started = time.perf_counter()
            status = self._llama.llama_decode(self._context.ctx, batch)
            if status == 0:
                if self._on_step is not None:
                    decoding = sum(1 for running, _, _ in rows if not running.prefilling)
                    sampled = sum(1 for _, _, row in rows if row >= 0)
                    seconds = time.perf_counter() - started
                    self._on_step(batch.n_tokens - decoding, sampled, seconds)
                self._advance(rows)
                return
            if status != NO_ROOM:
                raise RuntimeError(f"llama_decode returned {status}")
            idle = self._cache.evictable()
            if idle is not None:
                self._llama.llama_memory_seq_rm(self._context.memory, idle, -1, -1)
                self._cache.forget(idle)
                continue
            fullest = max(self._running, key=lambda r: r.pos)
            self._end(fullest, self._finished(fullest, "length"))

    def _fill(self, batch: Any) -> list[tuple[_Running, int, int]]:
        """The step's batch: one token per decoding sequence, then a chunk of the prompt of
        the first sequence still reading one (in the order they joined). Prompts take turns
        so that the first of several arriving together answers after its own prompt, not
        after all of them; while others decode, a chunk is at most ``SHARED_CHUNK`` tokens
        so that their next token is not held up by a long prompt for long. Returns
        (sequence, tokens added, logits row or -1)."""
        batch.n_tokens = 0
        rows: list[tuple[_Running, int, int]] = []
        for running in self._running:
            if not running.prefilling:
                row = self._put(batch, running.last, running.pos, running.seq_id, True)
                rows.append((running, 1, row))
        reading = next((r for r in self._running if r.prefilling), None)
        if reading is None:
            return rows
        room = self._n_batch - len(rows)
        if rows:
            room = min(room, SHARED_CHUNK)
        prompt = reading.request.prompt
        chunk = prompt[reading.fed : reading.fed + room]
        row = -1
        for offset, token in enumerate(chunk):
            last = reading.fed + offset == len(prompt) - 1
            added = self._put(batch, token, reading.pos + offset, reading.seq_id, last)
            row = added if last else row
        rows.append((reading, len(chunk), row))
        return rows

    @staticmethod
    def _put(batch: Any, token: int, pos: int, seq_id: int, logits: bool) -> int:
        row: int = batch.n_tokens
        batch.token[row] = token
        batch.pos[row] = pos
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq_id
        batch.logits[row] = logits
        batch.n_tokens = row + 1
        return row

    def _advance(self, rows: list[tuple[_Running, int, int]]) -> None:
        for running, added, row in rows:
            if running.prefilling:
                fed = running.request.prompt[running.fed : running.fed + added]
                self._cache.extend(running.seq_id, fed)
                running.fed += added
            else:
                self._cache.extend(running.seq_id, (running.last,))
            running.pos += added
            if row >= 0 and running in self._running:
                self._sample(running, row)

    def _sample(self, running: _Running, row: int) -> None:
        request = running.request
        token = request.sampler.sample(self._context, row)
        if self._llama.llama_vocab_is_eog(self._model.vocab, token):
            self._end(running, self._finished(running, "stop"))
            return
        running.generated += 1
        running.last = token
        if request.logprobs is not None:
            running.logprobs.append(self._logprobs.read(row, token, request.logprobs))
        text = running.text.add(self._piece_of(token, request.special))
        if text:
            self._emit_text(running, text)
        if running.text.stopped:
            self._end(running, self._finished(running, "stop"))
        elif (request.max_tokens is not None and running.generated >= request.max_tokens) or (
            running.pos + 1 >= self._n_ctx
        ):
            self._end(running, self._finished(running, "length"))

    @staticmethod
    def _emit_text(running: _Running, text: str) -> None:
        if running.request.logprobs is None:
            running.request.emit(text)
            return
        running.request.emit(Piece(text, tuple(running.logprobs)))
        running.logprobs.clear()

    def _piece_of(self, token: int, special: bool = False) -> bytes:
        size = self._llama.llama_token_to_piece(
            self._model.vocab, token, self._piece, len(self._piece), 0, special
        )
        if size < 0:  # longer than the buffer: once, for this token
            buffer = ctypes.create_string_buffer(-size)
            size = self._llama.llama_token_to_piece(
                self._model.vocab, token, buffer, -size, 0, special
            )
            return buffer.raw[:size]
        return self._piece.raw[:size]

    def _finished(self, running: _Running, reason: FinishReason) -> Finished:
        rest = running.text.finish()
        if rest:
            self._emit_text(running, rest)
        return Finished(reason, len(running.request.prompt), running.generated, running.reused)

    def _end(self, running: _Running, outcome: object) -> None:
        running.request.emit(outcome)
        self._release(running)
        if running in self._running:
            self._running.remove(running)

    def _release(self, running: _Running) -> None:
        """The sequence's slot is free; its tokens stay in the cache for a later prompt."""
        running.request.sampler.close()
        self._cache.release(running.seq_id)
