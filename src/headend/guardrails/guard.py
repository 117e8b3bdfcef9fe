"""One run's guardrails: its input screened (masked, or blocked before any model call), its
answer screened as it streams (held back by a sliding window, so a blocked string never
reaches the client in any chunk), its tools' arguments and results screened, and its tools'
calls counted. A check that fails blocks, unless it says ``on_error: allow``."""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from headend.guardrails.checks import (
    Blocked,
    Check,
    CheckError,
    Finding,
    Judge,
    compile_checks,
    digest,
    too_long,
    tool_limits,
)
from headend.guardrails.detectors import Hit
from headend.guardrails.masking import Masker, Restorer, merged
from headend.guardrails.rules import (
    STAGES,
    GuardrailSpec,
    HoursCheck,
    JudgeCheck,
    MaxLengthCheck,
    Stage,
)
from headend.types import Json

log = logging.getLogger(__name__)
Places = list[tuple[Callable[[str], None], str]]  # texts, each with how to replace it


class Watcher(Protocol):
    """Who is told of every check: metrics, and the audit log for each block."""

    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None: ...

    async def blocked(self, finding: Finding) -> None: ...


class Unavailable(Exception):
    """A check failed before anything was answered, and fails closed."""

    def __init__(self, finding: Finding, reason: str) -> None:
        super().__init__(reason)
        self.finding = finding


class Guard:
    def __init__(
        self,
        specs: Sequence[GuardrailSpec],
        watcher: Watcher,
        judge: Judge | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        checks = compile_checks(specs)
        self.stages: dict[Stage, list[Check]] = {
            stage: [c for c in checks if c.applies(stage) and c.name != "tool_calls"]
            for stage in STAGES
        }
        self.limits = tool_limits(checks)
        self.masker = Masker()
        self.watcher = watcher
        self.judge = judge
        self.now = now

    def guards(self, stage: Stage) -> bool:
        return bool(self.stages[stage])

    async def screen_input(self, messages: list[Json], beside: Json | None = None) -> list[Json]:
        """The client's messages as the model may see them: masked where a check masks.
        ``beside``: the rest of the request, whose texts the finders screen too (masked in
        place): its tools' descriptions and the fields passed on to the model. ``Blocked``:
        it may not go at all; ``Unavailable``: a check failed closed."""
        checks = self.stages["input"]
        if not checks:
            return messages
        messages = [dict(m) for m in messages]
        fields = field_paths(beside) if beside else []
        changed: dict[Path, str] = {}  # masked texts of ``beside``, by place
        for check in checks:
            started, hit, matched = time.perf_counter(), False, ""
            try:
                if isinstance(check.spec, HoursCheck):
                    hit = check.closed(self.now())
                elif isinstance(check.spec, JudgeCheck):
                    asked = _last_user_text(messages)
                    hit = bool(asked) and await check.judged(asked, self.judge)
                    matched = asked if hit else ""
                else:
                    beside_places: Places = [
                        (functools.partial(changed.__setitem__, path), changed.get(path, text))
                        for path, text in (fields if check.finds else [])
                    ]
                    groups: list[Places] = [*map(_texts, messages), beside_places]
                    for places in groups:
                        found = self._apply(check, places)
                        if found is not None:
                            hit, matched = True, matched or found
            except CheckError as exc:
                await self._failed(check, "input", started, exc, before_answer=True)
                continue
            await self._outcome(check, "input", started, hit, matched)
        if changed and beside is not None:
            beside.update(with_texts(beside, changed))
        return messages

    def _apply(self, check: Check, places: Places) -> str | None:
        """A message's texts through a finder or a length check: masked in place; what
        matched first (None: nothing)."""
        first: str | None = None
        for place, text in places:
            if isinstance(check.spec, MaxLengthCheck):
                if too_long(check, text):
                    return text
                continue
            hits = check.find(text)
            if not hits:
                continue
            first = first if first is not None else text[hits[0].start : hits[0].end]
            if check.spec.action == "mask":
                place(self.masker.mask(text, hits))
            elif check.spec.action == "block":
                return first
        return first

    async def screen_text(self, stage: Stage, text: str) -> str:
        """A whole text (a tool's arguments or result, an answer not streamed) as it may
        pass: masked where a check masks. ``Blocked`` if it may not; a failed check blocks."""
        for check in self.stages[stage]:
            started = time.perf_counter()
            try:
                hit, matched, text = await self._one(check, text)
            except CheckError as exc:
                await self._failed(check, stage, started, exc)
                continue
            await self._outcome(check, stage, started, hit, matched)
        return text

    async def _one(self, check: Check, text: str) -> tuple[bool, str, str]:
        if isinstance(check.spec, JudgeCheck):
            hit = bool(text) and await check.judged(text, self.judge)
            return hit, text if hit else "", text
        if isinstance(check.spec, MaxLengthCheck):
            hit = too_long(check, text)
            return hit, text if hit else "", text
        if isinstance(check.spec, HoursCheck):
            return check.closed(self.now()), "", text
        hits = check.find(text)
        if not hits:
            return False, "", text
        matched = text[hits[0].start : hits[0].end]
        return True, matched, self.masker.mask(text, hits) if check.spec.action == "mask" else text

    async def _outcome(
        self, check: Check, stage: Stage, started: float, hit: bool, matched: str
    ) -> None:
        self.watcher.checked(
            check.name, check.spec.action, "hit" if hit else "pass", time.perf_counter() - started
        )
        if hit and check.spec.action == "log":
            flagged(check.name, stage, matched)
        if hit and check.spec.action == "block":
            finding = Finding(check.name, "block", stage, digest(matched) if matched else "")
            await self.watcher.blocked(finding)
            raise Blocked(finding, check.refusal(stage, _hours(check)))

    async def _failed(
        self,
        check: Check,
        stage: Stage,
        started: float,
        exc: CheckError,
        before_answer: bool = False,
    ) -> None:
        self.watcher.checked(check.name, check.spec.action, "error", time.perf_counter() - started)
        if check.spec.on_error == "allow":
            return
        finding = Finding(check.name, "block", stage, error=True)
        await self.watcher.blocked(finding)
        if before_answer:
            raise Unavailable(finding, str(exc)) from exc
        raise Blocked(
            finding, f"A guardrail ({check.name}) could not check this, so it was withheld."
        )

    # ---- tools
    def restore(self, value: Any) -> Any:
        """Placeholders put back in a tool call's arguments: the tool acts on the user's
        own values."""
        if not self.masker:
            return value
        if isinstance(value, str):
            return self.masker.restore(value)
        if isinstance(value, list):
            return [self.restore(item) for item in value]
        if isinstance(value, dict):
            return {key: self.restore(item) for key, item in value.items()}
        return value

    async def screen_arguments(self, value: Any) -> Any:
        """A tool call's arguments through the ``tool_input`` checks, each string in them."""
        if not self.stages["tool_input"]:
            return value
        if isinstance(value, str):
            return await self.screen_text("tool_input", value)
        if isinstance(value, list):
            return [await self.screen_arguments(item) for item in value]
        if isinstance(value, dict):
            return {key: await self.screen_arguments(item) for key, item in value.items()}
        return value

    async def screen_result(self, text: str) -> str:
        """A tool's result as the model may see it: the user's masked values masked again,
        then the ``tool_output`` checks."""
        if self.masker:
            text = self.masker.mask_known(text)
        return await self.screen_text("tool_output", text)

    def over_limit(self, history: Sequence[Json], calls: Sequence[Json]) -> dict[str, str]:
        """The calls of this round past their tool's limit per session (call id -> what the
        model is told): the conversation's earlier calls count first, then these in order."""
        if not self.limits:
            return {}
        made: dict[str, int] = {}
        for message in history:
            for call in message.get("tool_calls") or ():
                name = str((call.get("function") or {}).get("name"))
                made[name] = made.get(name, 0) + 1
        refused = {}
        for call in calls:
            name = call["function"]["name"]
            most = self.limits.get(name)
            if most is None:
                continue
            made[name] = made.get(name, 0) + 1
            hit = made[name] > most
            self.watcher.checked("tool_calls", "block", "hit" if hit else "pass", 0.0)
            if hit:
                refused[call["id"]] = (
                    f"Error: {name} may be called {most} times in a conversation; that limit "
                    "is reached (a guardrail), so this call did not run."
                )
        return refused

    def window(self) -> OutputWindow:
        return OutputWindow(self)


class OutputWindow:
    """An answer's text on its way out, chunk by chunk: placeholders put back, then held
    back just long enough that every output check has seen whatever it might match whole
    (a judge's answer is held to its end)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.checks = guard.stages["output"]
        self.restorer = Restorer(guard.masker)
        self.buffer = ""  # the answer's text not let out yet
        self.length = 0  # the answer's characters so far
        self.spent: dict[int, float] = {}  # seconds per check
        self.hits: set[int] = set()

    def feed(self, delta: str) -> str:
        """What of the answer may go out now. ``Blocked``: none of what is held."""
        text = self.restorer.feed(delta)
        if not self.checks:
            return text
        self.buffer += text
        self.length += len(text)
        return self._release(final=False)

    async def end(self) -> str:
        """The rest of the answer, once the judges have read it whole."""
        text = self.restorer.end()
        if not self.checks:
            return text
        self.buffer += text
        self.length += len(text)
        for n, check in enumerate(self.checks):
            if isinstance(check.spec, JudgeCheck):
                started = time.perf_counter()
                try:
                    if self.buffer and await check.judged(self.buffer, self.guard.judge):
                        self._hit(n, check, self.buffer)
                except CheckError as exc:
                    self._spend(n, started)
                    await self.guard._failed(check, "output", started, exc)
                    continue
                self._spend(n, started)
        released = self._release(final=True)
        self.report()
        return released

    def _release(self, final: bool) -> str:
        """The held text up to where no check could still match, masked; ``Blocked`` if a
        check blocks anything in it."""
        buffer = self.buffer
        cut = len(buffer)
        masks: list[Hit] = []
        for n, check in enumerate(self.checks):
            if isinstance(check.spec, MaxLengthCheck):
                if self.length > check.spec.max_chars:
                    self._hit(n, check, "")
                continue
            started = time.perf_counter()
            if not final:
                cut = min(cut, check.pending(buffer))
            hits = check.find(buffer) if check.finds else []
            if hits and self.guard.masker:  # the user's own values, put back: theirs to see
                hits = [h for h in hits if not self.guard.masker.knows(buffer[h.start : h.end])]
            self._spend(n, started)
            if not final:  # a match at the very end may yet grow, or stop matching: wait
                cut = min([cut, *(h.start for h in hits if h.end == len(buffer))])
                hits = [hit for hit in hits if hit.end < len(buffer)]
            if not hits:
                continue
            self._hit(n, check, buffer[hits[0].start : hits[0].end])
            if check.spec.action == "mask":
                masks += hits
        if masks:
            masks = merged(masks)
            for hit in masks:  # a value is let out whole, masked, or held whole
                if hit.start < cut < hit.end:
                    cut = hit.start
            masks = [hit for hit in masks if hit.end <= cut]
        self.buffer = buffer[cut:]
        out = buffer[:cut]
        return self.guard.masker.mask(out, masks) if masks else out

    def _spend(self, n: int, started: float) -> None:
        self.spent[n] = self.spent.get(n, 0.0) + time.perf_counter() - started

    def _hit(self, n: int, check: Check, matched: str) -> None:
        if n not in self.hits and check.spec.action == "log":
            flagged(check.name, "output", matched)
        self.hits.add(n)
        if check.spec.action == "block":
            self.report()
            finding = Finding(check.name, "block", "output", digest(matched) if matched else "")
            raise Blocked(finding, check.refusal("output"))

    def report(self) -> None:
        """Each output check's outcome and time, once per answer."""
        for n, check in enumerate(self.checks):
            outcome = "hit" if n in self.hits else "pass"
            self.guard.watcher.checked(
                check.name, check.spec.action, outcome, self.spent.get(n, 0.0)
            )
        self.checks = []  # told once; nothing is held any more


def _texts(message: Json) -> list[tuple[Callable[[str], None], str]]:
    """A message's texts, each with how to replace it."""
    content = message.get("content")
    if isinstance(content, str):

        def put(text: str) -> None:
            message["content"] = text

        return [(put, content)]
    if not isinstance(content, list):
        return []
    parts = message["content"] = [
        dict(part) if isinstance(part, dict) else part for part in content
    ]
    found: list[tuple[Callable[[str], None], str]] = []
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("text"), str):

            def put_part(text: str, part: Json = part) -> None:
                part["text"] = text

            found.append((put_part, part["text"]))
    return found


# Fields of a chat request that carry no text of the user's: names, formats and switches.
STRUCTURAL = frozenset(
    (
        "model",
        "messages",
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "stream_options",
        "service_tier",
        "reasoning_effort",
        "modalities",
        "session_id",
    )
)


Path = tuple[str | int, ...]


def field_paths(body: Json) -> list[tuple[Path, str]]:
    """The texts of a request beside its messages, with where each is: every string its
    other fields hold (``user``, ``metadata``, a vendor's), and its tools' descriptions."""
    found: list[tuple[Path, str]] = []

    def walk(path: Path, value: Any, only_descriptions: bool) -> None:
        if isinstance(value, str):
            if value and (not only_descriptions or path[-1] == "description"):
                found.append((path, value))
        elif isinstance(value, dict):
            for name, item in value.items():
                walk((*path, name), item, only_descriptions)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk((*path, n), item, only_descriptions)

    for key, value in body.items():
        if key == "tools":
            walk((key,), value, True)
        elif key not in STRUCTURAL:
            walk((key,), value, False)
    return found


def with_texts(body: Json, texts: dict[Path, str]) -> Json:
    """``body`` with the texts at these places replaced (a copy; ``body`` is left as is)."""
    body = copy.deepcopy(body)
    for path, text in texts.items():
        holder: Any = body
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = text
    return body


def _last_user_text(messages: list[Json]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return "\n".join(text for _, text in _texts(dict(message)))
    return ""


def flagged(check: str, stage: Stage, matched: str) -> None:
    """A check whose action is ``log`` matched: said in the log, never what it matched."""
    log.info(
        "guardrail %s flagged the %s (sha256 %s)", check, stage, digest(matched) if matched else "-"
    )


def _hours(check: Check) -> str:
    return "; ".join(check.spec.open) if isinstance(check.spec, HoursCheck) else ""
