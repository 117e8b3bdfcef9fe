"""Token arrays to embedding vectors with a llama.cpp context made for embeddings.

The pooling is the model's own (from its GGUF metadata: mean, CLS, last token); a model
without one, such as a chat model, is mean-pooled over its tokens here. Inputs are packed
into one batch while they fit (``max_sequences`` inputs, ``max_tokens`` tokens), a
sequence each, and the context's memory is cleared before each batch. Every vector is
L2-normalized, as llama.cpp's server and OpenAI's models return them.

Blocking: call it off the event loop. Callers take turns: a caller that stops waiting (a
client gone) does not free the context before its work has stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from headend.errors import ClientDisconnected, ConfigError

Vector = npt.NDArray[np.float64]


def normalized(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class Encoder:
    def __init__(self, model: Any, context: Any, *, max_sequences: int, name: str) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaBatch

        self._context = context
        self._pooling = context.pooling_type()
        if self._pooling == llama_cpp.LLAMA_POOLING_TYPE_RANK:
            raise ConfigError(
                [f"providers.{name}: the model is a reranker (rank pooling), not an embedder"]
            )
        self._per_token = self._pooling == llama_cpp.LLAMA_POOLING_TYPE_NONE
        self._encoder_only = llama_cpp.llama_model_has_encoder(
            model.model
        ) and not llama_cpp.llama_model_has_decoder(model.model)
        self.dimensions: int = model.n_embd()
        self.max_tokens: int = context.n_ctx()
        self.max_sequences = max_sequences
        self._batch: Any = LlamaBatch(
            n_tokens=self.max_tokens, embd=0, n_seq_max=max_sequences, verbose=False
        )
        self._turn = threading.Lock()

    def vectors(self, inputs: Sequence[list[int]], cancelled: threading.Event) -> list[Vector]:
        """One normalized vector per input (each at most ``max_tokens`` tokens)."""
        out: list[Vector] = []
        with self._turn:
            for group in self._groups(inputs):
                if cancelled.is_set():
                    raise ClientDisconnected("The client closed the connection.")
                out += self._encode(group)
        return out

    def _groups(self, inputs: Sequence[list[int]]) -> Iterator[list[list[int]]]:
        group: list[list[int]] = []
        size = 0
        for tokens in inputs:
            if group and (size + len(tokens) > self.max_tokens or len(group) == self.max_sequences):
                yield group
                group, size = [], 0
            group.append(tokens)
            size += len(tokens)
        if group:
            yield group

    def _encode(self, group: list[list[int]]) -> list[Vector]:
        import llama_cpp

        context, batch = self._context, self._batch
        context.kv_cache_clear()
        batch.reset()
        for seq, tokens in enumerate(group):
            batch.add_sequence(tokens, seq, logits_all=self._per_token)
        if self._encoder_only:
            context.encode(batch)
        else:
            context.decode(batch)
        if self._per_token:
            total = sum(len(tokens) for tokens in group)
            pointer = llama_cpp.llama_get_embeddings(context.ctx)
            every = np.ctypeslib.as_array(pointer, shape=(total, self.dimensions))
            found, start = [], 0
            for tokens in group:
                found.append(
                    normalized(every[start : start + len(tokens)].mean(axis=0, dtype=np.float64))
                )
                start += len(tokens)
            return found
        return [
            normalized(
                np.ctypeslib.as_array(
                    llama_cpp.llama_get_embeddings_seq(context.ctx, seq), shape=(self.dimensions,)
                ).astype(np.float64)
            )
            for seq in range(len(group))
        ]

    def close(self) -> None:
        self._batch.close()
