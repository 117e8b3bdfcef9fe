"""Comparing two greedy answers of the embedded model that were computed differently.

Batched with other sequences, or from a prompt partly read from the cache, an answer is
added up in another order than alone: llama.cpp's attention sums over the cache's cells in
their order (in 16-bit floats, with flash attention, its default on the CPU), and a model
with quantized weights requantizes every layer's activations, so rounding moves a
log-probability by up to about 0.2 on the bundled model. A wrong cache (another sequence's
tokens, wrong positions, a token twice) moves them by far more.
"""

from __future__ import annotations

from typing import Any

ROUNDING = 0.25  # the most a token's log-probability may move
NEAR_TIE = 0.3  # log-probability between the two likeliest tokens where a choice may differ


def assert_same_but_rounding(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
    """Two answers' tokens (OpenAI logprobs ``content``, with ``top_logprobs`` of at least
    2) agree, each within rounding, up to a point where the model was all but undecided."""
    compared = 0
    for one, other in zip(first, second, strict=False):
        best, runner_up = one["top_logprobs"][:2]
        if one["token"] != other["token"]:
            assert best["logprob"] - runner_up["logprob"] < NEAR_TIE, (one, other)
            break
        assert abs(one["logprob"] - other["logprob"]) < ROUNDING, (one, other)
        compared += 1
    else:
        assert len(first) == len(second)
    assert compared >= 3, "the answers parted at once"
