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
    def __init__(self, parallel: int, *, reuse: bool = True) -> None:
        self._tokens: dict[int, list[int]] = {seq: [] for seq in range(parallel)}
        self._free: deque[int] = deque(range(parallel))  # least recently used first
        self._reuse = reuse  # False: a model that cannot drop the end of a sequence

    def has_free(self) -> bool:
        return bool(self._free)

    def place(self, prompt: Sequence[int]) -> Placement:
        """A free sequence for ``prompt`` and the longest cached prefix of it anywhere.

        The sequence is the free one whose cached tokens the prompt would throw away the
        fewest of (an empty one, or one holding a prefix of the prompt), the least recently
        used among equals: a conversation that may continue keeps its cache. The prefix
        may come from any sequence, running or not (the chosen one itself among equals).
        At least the prompt's last token is left to compute: its logits give the first
        answer token."""
        shared = {seq: common_prefix(tokens, prompt) for seq, tokens in self._tokens.items()}
        seq_id = min(
            self._free, key=lambda seq: (len(self._tokens[seq]) - shared[seq], -shared[seq])
        )
        self._free.remove(seq_id)
        source = max(self._tokens, key=lambda seq: (shared[seq], seq == seq_id))
        reused = min(shared[source], len(prompt) - 1) if self._reuse else 0
        return Placement(seq_id, source, max(0, reused))

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

    def forget_all(self) -> None:
        for tokens in self._tokens.values():
            tokens.clear()
