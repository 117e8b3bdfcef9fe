"""Cutting a file's text into chunks by tokens, as a vector store's ``chunking_strategy`` says.

``static`` takes ``max_chunk_size_tokens`` (100 to 4096) and ``chunk_overlap_tokens`` (at most
half of it), as OpenAI's. ``auto`` is headend's choice for its built-in model, which reads
256 tokens: chunks of ``AUTO_MAX`` tokens overlapping by ``AUTO_OVERLAP``. Tokens are the
built-in model's WordPiece tokens; a chunk is the text between its first token's start and
its last token's end, so no word is ever cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.knowledge.embedder import Span
from headend.types import Json

AUTO_MAX = 256
AUTO_OVERLAP = 64


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    tokens: int


def static_strategy(chunking: Json | None) -> Json:
    """The strategy as a vector store file reports it: ``auto`` spelled out as static."""
    if not chunking or chunking.get("type") == "auto":
        return {
            "type": "static",
            "static": {"max_chunk_size_tokens": AUTO_MAX, "chunk_overlap_tokens": AUTO_OVERLAP},
        }
    return chunking


def chunk(text: str, spans: list[Span], chunking: Json | None) -> list[Chunk]:
    static = static_strategy(chunking)["static"]
    size = int(static["max_chunk_size_tokens"])
    step = size - int(static["chunk_overlap_tokens"])
    chunks = []
    start = 0
    while start < len(spans):
        window = spans[start : start + size]
        chunks.append(Chunk(text[window[0].start : window[-1].end], len(window)))
        if start + size >= len(spans):
            break
        start += step
    return chunks
