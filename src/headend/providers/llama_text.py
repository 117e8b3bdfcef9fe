"""A sequence's answer as text, token by token: UTF-8 pieces joined without breaking a
character, and stop sequences cut out even when they arrive split across tokens.

Text that might be the start of a stop sequence is held back until the next token says
whether it is; what is released is never taken back.
"""

from __future__ import annotations

import codecs


class AnswerText:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self.stopped = False

    def add(self, piece: bytes) -> str:
        """The text this token's bytes release (maybe none); sets ``stopped`` when a stop
        sequence appeared (the text before it is released, the stop itself never)."""
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(piece)
        cut = min((i for stop in self.stops if (i := text.find(stop)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._partial_stop(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """What is still held when the answer ends without a stop sequence."""
        if self.stopped:
            return ""
        text, self._held = self._held + self._decoder.decode(b"", final=True), ""
        return text

    def _partial_stop(self, text: str) -> int:
        """How many characters at the end of ``text`` begin some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
