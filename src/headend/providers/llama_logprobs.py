"""Log probabilities of a sampled token and its top alternatives, from the model's logits
for that step (before any sampler reshaped them), as OpenAI reports them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Alternative:
    token: str
    bytes: bytes
    logprob: float

    def openai(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "bytes": list(self.bytes)}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    chosen: Alternative
    top: tuple[Alternative, ...]

    def openai(self) -> dict[str, Any]:
        return {**self.chosen.openai(), "top_logprobs": [a.openai() for a in self.top]}


class LogprobReader:
    def __init__(self, context: Any, n_vocab: int, piece_of: Callable[[int], bytes]) -> None:
        self._llama: Any = importlib.import_module("llama_cpp")
        self._context = context
        self._n_vocab = n_vocab
        self._piece_of = piece_of

    def read(self, row: int, token: int, top: int) -> TokenLogprob:
        pointer = self._llama.llama_get_logits_ith(self._context.ctx, row)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        peak = logits.max()
        logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        best: list[int] = []
        if top:
            candidates = np.argpartition(-logprobs, top - 1)[:top]
            best = sorted(candidates.tolist(), key=lambda t: -logprobs[t])
        return TokenLogprob(
            self._alternative(token, logprobs),
            tuple(self._alternative(t, logprobs) for t in best),
        )

    def _alternative(self, token: int, logprobs: Any) -> Alternative:
        raw = self._piece_of(token)
        return Alternative(raw.decode("utf-8", errors="replace"), raw, float(logprobs[token]))
