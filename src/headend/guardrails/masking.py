"""Placeholders for what a check masks: ``<EMAIL_1>`` goes to the model in place of the value,
and the value is put back wherever the model writes the placeholder, across a stream's
chunks too. One ``Masker`` per run: a value keeps its placeholder through the run."""

from __future__ import annotations

import re
from collections.abc import Sequence

from headend.guardrails.detectors import Hit

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*_\d+)>")
_OPEN_TAIL = re.compile(r"<[A-Z0-9_]*\Z")  # a placeholder's start, cut by a chunk's end
LONGEST_PLACEHOLDER = 48


def merged(hits: Sequence[Hit]) -> list[Hit]:
    """Hits in order with none overlapping (the earlier, then the longer, wins)."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
    return kept


class Masker:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # placeholder -> value
        self._placeholders: dict[str, str] = {}  # value -> placeholder
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.values)

    def placeholder(self, kind: str, value: str) -> str:
        found = self._placeholders.get(value)
        if found is None:
            kind = re.sub(r"[^A-Z0-9_]", "_", kind.upper())[:32] or "REDACTED"
            number = self._counts[kind] = self._counts.get(kind, 0) + 1
            found = self._placeholders[value] = f"<{kind}_{number}>"
            self.values[found] = value
        return found

    def mask(self, text: str, hits: Sequence[Hit]) -> str:
        """``text`` with each hit replaced by its placeholder."""
        out: list[str] = []
        at = 0
        for hit in merged(hits):
            out += (text[at : hit.start], self.placeholder(hit.kind, text[hit.start : hit.end]))
            at = hit.end
        out.append(text[at:])
        return "".join(out)

    def knows(self, value: str) -> bool:
        """A value this run masked: the user's own."""
        return value in self._placeholders

    def mask_known(self, text: str) -> str:
        """Values masked before, masked wherever they come again (a tool's result that
        repeats what the user said)."""
        for value in sorted(self._placeholders, key=len, reverse=True):
            if value in text:
                text = text.replace(value, self._placeholders[value])
        return text

    def restore(self, text: str) -> str:
        """Every placeholder of this run's put back as its value."""
        if not self.values or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.values.get(m.group(0), m.group(0)), text)


class Restorer:
    """A stream's text with placeholders put back, one chunk at a time: the start of a
    placeholder cut by a chunk's end waits for the next chunk."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.pending = ""

    def feed(self, delta: str) -> str:
        text = self.pending + delta
        cut = _OPEN_TAIL.search(text, max(0, len(text) - LONGEST_PLACEHOLDER))
        if cut is None:
            self.pending = ""
            return self.masker.restore(text)
        self.pending = text[cut.start() :]
        return self.masker.restore(text[: cut.start()])

    def end(self) -> str:
        text, self.pending = self.pending, ""
        return self.masker.restore(text)
