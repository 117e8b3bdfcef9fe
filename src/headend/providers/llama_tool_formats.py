"""How models write tool calls, one registered format each: how a chat template shows it
uses the format, the grammar that holds a call to the offered tools and their schemas, the
pattern that says a call has begun, and how to read calls back out of the text.

Formats: ``hermes`` (``<tool_call>{json}</tool_call>``: Hermes, Qwen 2.5+, SmolLM3 and the
fallback for templates without tools), ``llama3`` (a bare ``{"name", "parameters"}`` object,
maybe after ``<|python_tag|>``) and ``mistral`` (``[TOOL_CALLS][{...}, ...]``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from headend.providers.llama_grammar import Grammar, GrammarBuilder


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    def function(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def openai(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ToolCallFormat(Protocol):
    name: str
    special_tokens: bool  # its markers are special tokens, so pieces must show them

    def used_by(self, template: str) -> bool: ...

    def call_start(self, text: str, since: int = 0) -> int | None:
        """Where a call begins in the output so far, looking from ``since`` (text before it
        is known to hold none); None when none has."""
        ...

    def may_start(self, text: str) -> int:
        """How many characters at the end of ``text`` might begin a call (held back)."""
        ...

    def grammar(self, builder: GrammarBuilder, tools: list[ToolSpec], parallel: bool) -> str:
        """The rule for the calls, markers included; returns its name."""
        ...

    def trigger(self) -> str: ...

    def parse(self, text: str) -> list[ParsedCall] | None:
        """The calls in ``text`` (from ``call_start`` on); None when it is not calls."""
        ...


def _call_schema(tool: ToolSpec, arguments_key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, arguments_key: tool.parameters},
        "required": ["name", arguments_key],
        "additionalProperties": False,
    }


def _call_rule(builder: GrammarBuilder, tools: list[ToolSpec], arguments_key: str) -> str:
    for index, tool in enumerate(tools):
        # Validate each tool's schema on its own, so an error names the tool.
        builder.schema(tool.parameters, f"args-{index}", f"tools[{index}].function.parameters")
    union = {"anyOf": [_call_schema(tool, arguments_key) for tool in tools]}
    return builder.schema(union, "tool-call")


def _ending_prefix(text: str, marker: str) -> int:
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


def _parsed(data: Any, arguments_key: str) -> ParsedCall | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get(arguments_key, data.get("arguments", {}))
    if isinstance(arguments, str):
        return ParsedCall(data["name"], arguments)
    return ParsedCall(data["name"], json.dumps(arguments, ensure_ascii=False))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class _Marked:
    """A format whose calls begin with a marker, which its templates also show."""

    OPEN = ""

    def used_by(self, template: str) -> bool:
        return self.OPEN in template

    def call_start(self, text: str, since: int = 0) -> int | None:
        found = text.find(self.OPEN, since)
        return None if found < 0 else found

    def may_start(self, text: str) -> int:
        return _ending_prefix(text, self.OPEN)


class Hermes(_Marked):
    name = "hermes"
    special_tokens = False
    OPEN, CLOSE = "<tool_call>", "</tool_call>"
    _CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)

    def grammar(self, builder: GrammarBuilder, tools: list[ToolSpec], parallel: bool) -> str:
        call = _call_rule(builder, tools, "arguments")
        one = (
            f"{builder.literal(self.OPEN + chr(10))} {call} {builder.literal(chr(10) + self.CLOSE)}"
        )
        single = builder.rule("hermes-call", one)
        body = f'{single} ("\\n" {single})*' if parallel else single
        return builder.rule("tool-calls", body)

    def trigger(self) -> str:
        return r"[\s\S]*?(<tool_call>)[\s\S]*"

    def parse(self, text: str) -> list[ParsedCall] | None:
        calls = [_parsed(_loads(body), "arguments") for body in self._CALL.findall(text)]
        rest = self._CALL.sub("", text).strip()
        if rest.startswith(self.OPEN) and self.CLOSE not in rest:
            rest = ""  # one more call, cut short by max_tokens: the whole ones stand
        if not calls or rest or any(call is None for call in calls):
            return None
        return [call for call in calls if call is not None]


class Llama3:
    name = "llama3"
    special_tokens = True
    TAG = "<|python_tag|>"
    _START = re.compile(r'\s*(<\|python_tag\|>|\{\s*"name")')

    def used_by(self, template: str) -> bool:
        return self.TAG in template or "<|eom_id|>" in template

    def call_start(self, text: str, since: int = 0) -> int | None:
        match = self._START.match(text)  # only ever at the start
        return 0 if match else None  # the whitespace before the call is not an answer

    def may_start(self, text: str) -> int:
        stripped = text.lstrip()
        if not stripped:
            return len(text)
        if self.TAG.startswith(stripped) or '{"name"'.startswith(re.sub(r"\s+", "", stripped)):
            return len(text)
        return 0

    def grammar(self, builder: GrammarBuilder, tools: list[ToolSpec], parallel: bool) -> str:
        call = _call_rule(builder, tools, "parameters")
        return builder.rule("tool-calls", f"{builder.literal(self.TAG)}? {call}")

    def trigger(self) -> str:
        return r'\s*(<\|python_tag\|>|\{\s*"name")[\s\S]*'

    def parse(self, text: str) -> list[ParsedCall] | None:
        body = text.strip().removeprefix(self.TAG)
        call = _parsed(_loads(body), "parameters")
        return None if call is None else [call]


class Mistral(_Marked):
    name = "mistral"
    special_tokens = True
    OPEN = "[TOOL_CALLS]"

    def grammar(self, builder: GrammarBuilder, tools: list[ToolSpec], parallel: bool) -> str:
        call = _call_rule(builder, tools, "arguments")
        more = f' ("," space {call})*' if parallel else ""
        return builder.rule("tool-calls", f'{builder.literal(self.OPEN)} "[" {call}{more} "]"')

    def trigger(self) -> str:
        return r"[\s\S]*?(\[TOOL_CALLS\])[\s\S]*"

    def parse(self, text: str) -> list[ParsedCall] | None:
        data = _loads(text.strip().removeprefix(self.OPEN))
        if not isinstance(data, list) or not data:
            return None
        calls = [_parsed(item, "arguments") for item in data]
        return None if any(call is None for call in calls) else [c for c in calls if c]


FALLBACK = Hermes()
FORMATS: tuple[ToolCallFormat, ...] = (Hermes(), Mistral(), Llama3())


def native_format(template: str) -> ToolCallFormat | None:
    """The format a chat template that renders ``tools`` itself uses; None when it does not."""
    if "tools" not in template:
        return None
    return next((fmt for fmt in FORMATS if fmt.used_by(template)), None)


def tool_grammar(
    fmt: ToolCallFormat,
    tools: list[ToolSpec],
    *,
    parallel: bool,
    forced: bool,
    answer: Any = None,
) -> Grammar:
    """Calls only (``forced``), or free text until a call begins. With an ``answer``
    schema the model writes either calls or that JSON, from the first token on."""
    builder = GrammarBuilder("tools")
    calls = fmt.grammar(builder, tools, parallel)
    if answer is not None and not forced:
        json_rule = builder.schema(answer, "answer", "response_format")
        return builder.build(f"{calls} | {json_rule}")
    if forced:
        return builder.build(calls)
    return builder.build(calls, (fmt.trigger(),))
