"""The checks a ``guardrails:`` list declares, made ready to run: each finds spans of a text
(pii, secrets, regex) or answers about the whole of it (judge, max_length, hours)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import regex

from headend.guardrails.detectors import (
    MAX_PII_CHARS,
    MAX_SECRET_CHARS,
    Hit,
    find_pii,
    find_secrets,
)
from headend.guardrails.rules import (
    Action,
    GuardrailSpec,
    HoursCheck,
    JudgeCheck,
    MaxLengthCheck,
    PiiCheck,
    RegexCheck,
    SecretsCheck,
    Stage,
    ToolCallsCheck,
    opening_hours,
)

# A judge: (route, its prompt, the text) -> the route's answer. Raises if it cannot answer.
Judge = Callable[[str, str, str], Awaitable[str]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found, for metrics, the audit log and the refusal: never the text, only
    its hash."""

    check: str
    action: Action
    stage: Stage
    digest: str = ""  # sha256 of what matched (the first 16 hex digits)
    kinds: tuple[str, ...] = ()
    error: bool = False  # the check failed: blocked because it fails closed


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Blocked(Exception):
    """A check blocked the text; ``message`` is what the refusal says."""

    def __init__(self, finding: Finding, message: str) -> None:
        super().__init__(message)
        self.finding = finding
        self.message = message


class CheckError(Exception):
    """A check could not give its verdict (a judge whose route is down, or too slow)."""


@dataclass(slots=True)
class Check:
    """One entry of a list, ready: ``spec`` says where it applies and what it does."""

    spec: GuardrailSpec
    patterns: list[re.Pattern[str]] = field(default_factory=list)  # a regex check's
    partials: list[regex.Pattern[str]] = field(default_factory=list)  # the same, for streams

    @property
    def name(self) -> str:
        return self.spec.check

    @property
    def finds(self) -> bool:
        return isinstance(self.spec, PiiCheck | SecretsCheck | RegexCheck)

    def pending(self, text: str) -> int:
        """Where the end of ``text`` could still become a match once more comes (its
        length: nowhere). A stream lets out what is before it; a judge holds it all."""
        spec = self.spec
        if isinstance(spec, PiiCheck):
            return value_tail(text, MAX_PII_CHARS)
        if isinstance(spec, SecretsCheck):
            return value_tail(text, MAX_SECRET_CHARS)
        if isinstance(spec, RegexCheck):
            start = len(text)
            for pattern in self.partials:
                for m in pattern.finditer(text, partial=True):
                    if m.partial or m.end() == len(text):
                        start = min(start, m.start())
                        break
            return max(start, len(text) - spec.window)
        if isinstance(spec, JudgeCheck):
            return 0
        return len(text)

    def applies(self, stage: Stage) -> bool:
        return stage in self.spec.apply_to

    def find(self, text: str) -> list[Hit]:
        spec = self.spec
        if isinstance(spec, PiiCheck):
            kinds = frozenset(spec.entities) if spec.entities is not None else None
            return find_pii(text, kinds)
        if isinstance(spec, SecretsCheck):
            return find_secrets(text)
        return [
            Hit(m.start(), m.end(), "REDACTED")
            for pattern in self.patterns
            for m in pattern.finditer(text)
            if m.end() > m.start()
        ]

    def refusal(self, stage: Stage, hours: str = "") -> str:
        if self.spec.message:
            return self.spec.message
        if isinstance(self.spec, HoursCheck):
            return f"We are closed now. Opening hours ({self.spec.timezone}): {hours}."
        if stage == "output":
            return f"The answer was withheld: it did not pass a guardrail ({self.name})."
        if stage == "tool_input":
            return f"its arguments did not pass a guardrail ({self.name})."
        if stage == "tool_output":
            return f"it did not pass a guardrail ({self.name})."
        return f"This request was blocked by a guardrail ({self.name})."

    def closed(self, now: float) -> bool:
        """Outside its opening hours at ``now`` (an hours check)."""
        assert isinstance(self.spec, HoursCheck)
        local = datetime.fromtimestamp(now, ZoneInfo(self.spec.timezone))
        at = local.time().replace(tzinfo=None)
        for span in self.spec.open:
            days, opens, closes = opening_hours(span)
            if local.weekday() in days and opens <= at and (closes is None or at < closes):
                return False
        return True

    async def judged(self, text: str, judge: Judge | None) -> bool:
        """A judge's verdict: True when its route's answer starts with yes."""
        spec = self.spec
        assert isinstance(spec, JudgeCheck)
        if judge is None:
            raise CheckError("no model can judge here")
        try:
            async with asyncio.timeout(spec.timeout):
                answer = await judge(spec.model, spec.prompt, text)
        except TimeoutError:
            raise CheckError(
                f"the judge {spec.model!r} did not answer in {spec.timeout:g} s"
            ) from None
        except CheckError:
            raise
        except Exception as exc:  # the route's failure, whatever it is: the check fails
            raise CheckError(f"the judge {spec.model!r} failed: {type(exc).__name__}") from exc
        return answer.strip().lstrip("\"'*`").lower().startswith("yes")


# What a value (PII or a secret) may be made of, and what may join its parts with a space:
# digits, capitals and brackets ("+44 20 7946 0958", "GB82 WEST 1234", "BEGIN RSA PRIVATE").
_VALUE = frozenset("@._%+-:/=()~#")
_JOINS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ()+-")


def value_tail(text: str, longest: int) -> int:
    """Where the run of characters at the end of ``text`` that could be part of a value
    begins (at most ``longest`` back): ordinary words end it, so a stream holds back little
    more than a word, and a value being written is held whole."""
    at = len(text)
    stop = max(0, len(text) - longest)
    while at > stop:
        char = text[at - 1]
        if (
            char.isalnum()
            or char == "_"
            or char in _VALUE
            or (
                char == " "
                and at - 2 >= stop
                and text[at - 2] in _JOINS
                and at < len(text)
                and text[at] in _JOINS
            )
        ):
            at -= 1
        else:
            break
    return at


def compile_checks(specs: Sequence[GuardrailSpec]) -> list[Check]:
    checks = []
    for spec in specs:
        check = Check(spec)
        if isinstance(spec, RegexCheck):
            check.patterns = [re.compile(pattern) for pattern in spec.patterns]
            check.partials = [regex.compile(pattern) for pattern in spec.patterns]
        checks.append(check)
    return checks


def tool_limits(checks: Sequence[Check]) -> dict[str, int]:
    """The most calls per session each tool may have, the strictest over every list."""
    limits: dict[str, int] = {}
    for check in checks:
        if isinstance(check.spec, ToolCallsCheck):
            for name, most in check.spec.max.items():
                limits[name] = min(most, limits.get(name, most))
    return limits


def too_long(check: Check, text: str) -> bool:
    assert isinstance(check.spec, MaxLengthCheck)
    return len(text) > check.spec.max_chars
