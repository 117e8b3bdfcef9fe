"""The model's text split, as it streams, into the answer and the tool calls after it.

Text is released as content the moment it cannot be the start of a call; once a call begins,
the rest is kept and read as calls when the generation ends. Calls that do not read back
(a generation cut short by ``max_tokens`` in its first call) are released as content, so
nothing is lost; the same call written twice is one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from headend.providers.llama_tool_formats import ParsedCall, ToolCallFormat


@dataclass(slots=True)
class OutputReader:
    format: ToolCallFormat | None
    _text: str = ""
    _released: int = 0
    _calls_at: int | None = None
    calls: list[ParsedCall] = field(default_factory=list)

    def feed(self, text: str) -> str:
        """The content this text releases (maybe none)."""
        if self.format is None:
            return text
        self._text += text
        if self._calls_at is not None:
            return ""
        start = self.format.call_start(self._text, self._released)
        if start is not None:
            self._calls_at = start
            return self._release(start)
        return self._release(len(self._text) - self.format.may_start(self._text))

    def finish(self) -> str:
        """The content still held when the generation ends; ``calls`` is set when the held
        text is tool calls."""
        if self.format is None:
            return ""
        if self._calls_at is not None:
            calls = self.format.parse(self._text[self._calls_at :])
            if calls:
                # Small models repeat themselves; the same call twice is one call.
                self.calls = list(dict.fromkeys(calls))
                return ""
        return self._release(len(self._text))

    def _release(self, upto: int) -> str:
        if upto <= self._released:
            return ""
        out, self._released = self._text[self._released : upto], upto
        return out
