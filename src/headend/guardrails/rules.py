"""What a ``guardrails:`` list declares, checked to the field: in an agent file, at the top of
headend.yaml (every agent and route) and on a key. Each entry names its ``check``; the rest
of its fields are that check's.

```yaml
guardrails:
  - check: pii
    apply_to: [input]
    action: mask
  - check: regex
    patterns: ['(?i)\\bproject nightjar\\b']
    message: I cannot talk about that project.
```
"""

from __future__ import annotations

import re
from datetime import time as clock
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from headend.guardrails.detectors import PII_KINDS

Stage = Literal["input", "output", "tool_input", "tool_output"]
Action = Literal["mask", "block", "log"]
STAGES: tuple[Stage, ...] = ("input", "output", "tool_input", "tool_output")
INPUT: tuple[Stage, ...] = ("input",)  # where a check applies unless it says
TOOL_INPUT: tuple[Stage, ...] = ("tool_input",)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    apply_to: list[Stage] = Field(default_factory=lambda: list(INPUT), min_length=1)
    action: Action = "block"
    message: str | None = None  # what a refusal says (None: the check's own words)
    on_error: Literal["block", "allow"] = "block"  # a check that fails closes, unless allow

    @model_validator(mode="before")
    @classmethod
    def _no_on(cls, data: Any) -> Any:
        # YAML 1.1 reads an unquoted ``on:`` as the boolean true: say what to write instead.
        if isinstance(data, dict) and (True in data or "on" in data):
            raise ValueError("write apply_to, not on (YAML reads an unquoted on: as true)")
        return data

    @property
    def masks(self) -> bool:
        return self.action == "mask"

    def label(self) -> str:
        return str(getattr(self, "check", "check"))


class _Finds(_Check):
    """A check that finds spans of text: it can mask them."""


class _Judges(_Check):
    """A check of the whole text, yes or no: it can block or log, not mask."""

    @field_validator("action")
    @classmethod
    def _not_mask(cls, value: Action) -> Action:
        if value == "mask":
            raise ValueError("this check finds no span to mask: use block or log")
        return value


class PiiCheck(_Finds):
    check: Literal["pii"]
    entities: list[str] | None = None  # None: every kind it knows

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        value = [name.upper() for name in value]
        unknown = sorted(set(value) - set(PII_KINDS))
        if unknown:
            raise ValueError(
                f"unknown entities {', '.join(unknown)} (known: {', '.join(PII_KINDS)})"
            )
        return value


class SecretsCheck(_Finds):
    check: Literal["secrets"]


class RegexCheck(_Finds):
    check: Literal["regex"]
    patterns: list[str] = Field(min_length=1)
    # the longest text a pattern matches, for streams: that much answer is held back
    window: int = Field(256, ge=1, le=65_536)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
            if compiled.match(""):
                raise ValueError(f"pattern {pattern!r} matches the empty text: it would match all")
        return value


class JudgeCheck(_Judges):
    check: Literal["judge"]
    model: str = Field(min_length=1)  # a model route (or agent) that answers yes or no
    prompt: str = Field(min_length=1)
    timeout: float = Field(10.0, gt=0, le=300)  # seconds; past it the check has failed


class MaxLengthCheck(_Judges):
    check: Literal["max_length"]
    max_chars: int = Field(ge=1)


class HoursCheck(_Judges):
    check: Literal["hours"]
    timezone: str = "UTC"
    open: list[str] = Field(min_length=1)  # "mon-fri 09:00-18:00"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/Paris)") from None
        return value

    @field_validator("open")
    @classmethod
    def _spans(cls, value: list[str]) -> list[str]:
        for span in value:
            opening_hours(span)
        return value

    @field_validator("apply_to")
    @classmethod
    def _input_only(cls, value: list[Stage]) -> list[Stage]:
        if value != ["input"]:
            raise ValueError("opening hours apply to input only")
        return value


class ToolCallsCheck(_Judges):
    check: Literal["tool_calls"]
    max: dict[str, Annotated[int, Field(ge=0)]] = Field(min_length=1)  # calls per session
    apply_to: list[Stage] = Field(default_factory=lambda: list(TOOL_INPUT), min_length=1)

    @field_validator("apply_to")
    @classmethod
    def _tool_input_only(cls, value: list[Stage]) -> list[Stage]:
        if value != ["tool_input"]:
            raise ValueError("tool call limits apply to tool_input only")
        return value


GuardrailSpec = Annotated[
    PiiCheck
    | SecretsCheck
    | RegexCheck
    | JudgeCheck
    | MaxLengthCheck
    | HoursCheck
    | ToolCallsCheck,
    Field(discriminator="check"),
]
GuardrailList = list[GuardrailSpec]
GUARDRAILS: TypeAdapter[list[GuardrailSpec]] = TypeAdapter(GuardrailList)


def opening_hours(span: str) -> tuple[frozenset[int], clock, clock | None]:
    """``mon-fri 09:00-18:00`` as (weekdays, opens, closes; None: midnight). ValueError names
    what is wrong."""
    match = _HOURS.match(span.strip().lower())
    if match is None:
        raise ValueError(f"{span!r}: write days and hours as 'mon-fri 09:00-18:00'")
    days: set[int] = set()
    for part in match["days"].split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{span!r}: days are {', '.join(DAYS)}")
        start, end = DAYS.index(first), DAYS.index(last or first)
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    opens = _clock(match["start"], span)
    closes = None if match["end"] == "24:00" else _clock(match["end"], span)
    if closes is not None and closes <= opens:
        raise ValueError(f"{span!r}: it closes before it opens")
    return frozenset(days), opens, closes


def _clock(text: str, span: str) -> clock:
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"{span!r}: {text} is not a time of day")
    return clock(hours, minutes)
