"""Which tokens each sequence holds in the shared cache, so that a new prompt reuses the
longest prefix already computed instead of computing it again.

Requests to one agent start with the same system prompt, a session's next turn starts with
its whole conversation so far, and a tool loop's next call with the one before: all of
that is in the cache of some sequence, running or finished. A finished sequence keeps its
tokens until its slot is reused or the cache needs the room (oldest first).

Pure bookkeeping: the engine makes the matching llama.cpp calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a prompt runs (``seq_id``) and the prefix it reuses: ``reused`` tokens, held
    by ``source`` (``seq_id`` itself, or a sequence to copy them from)."""

    seq_id: int
    source: int
    reused: int


class CacheMap:
    def __init__(self, parallel: int) -> None:
        self._tokens: dict[int, list[int]] = {seq: [] for seq in range(parallel)}
        self._free: deque[int] = deque(range(parallel))  # least recently used first

    def has_free(self) -> bool:
        return bool(self._free)

    def place(self, prompt: Sequence[int]) -> Placement:
        """A free sequence for ``prompt`` and the longest cached prefix of it anywhere.

        The sequence is the free one whose cached tokens the prompt would throw away the
        fewest of (an empty one, or one holding a prefix of the prompt), the least recently
        used among equals: a conversation that may continue keeps its cache. The prefix
        may come from any sequence, running or not. At least the prompt's last token is
        left to compute: its logits give the first answer token."""

        def cost(seq: int) -> tuple[int, int]:
            shared = common_prefix(self._tokens[seq], prompt)
            return len(self._tokens[seq]) - shared, -shared

        seq_id = min(self._free, key=cost)
        self._free.remove(seq_id)
        source, reused = seq_id, common_prefix(self._tokens[seq_id], prompt)
        for other, tokens in self._tokens.items():
            shared = common_prefix(tokens, prompt)
            if shared > reused:
                source, reused = other, shared
        return Placement(seq_id, source, max(0, min(reused, len(prompt) - 1)))

    def holds(self, seq_id: int) -> list[int]:
        return self._tokens[seq_id]

    def keep(self, seq_id: int, tokens: Sequence[int]) -> None:
        """``seq_id`` holds exactly ``tokens`` now."""
        self._tokens[seq_id] = list(tokens)

    def extend(self, seq_id: int, tokens: Sequence[int]) -> None:
        self._tokens[seq_id].extend(tokens)

    def release(self, seq_id: int) -> None:
        """The sequence is free again; its tokens stay for a later prompt to reuse."""
        self._free.append(seq_id)

    def evictable(self) -> int | None:
        """The least recently used free sequence that still holds tokens."""
        return next((seq for seq in self._free if self._tokens[seq]), None)

    def forget(self, seq_id: int) -> None:
        self._tokens[seq_id] = []
