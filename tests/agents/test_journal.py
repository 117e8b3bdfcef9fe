"""The tool loop's journal: what a run taken up after a crash replays and what it runs again."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from headend.agents.journal import INTERRUPTED, RecordedRound
from headend.agents.loop import LoopCall, LoopEnd, ToolLoop
from headend.agents.registry import Agent
from headend.agents.spec import AgentSpec
from headend.providers.base import ChatCall
from headend.providers.model_routes import Target
from headend.providers.router import Router
from headend.tools.base import ToolContext
from headend.tools.mcp import McpHub
from headend.types import Json
from tests.fakes import ScriptedProvider, chunk

USAGE = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}


def call(call_id: str, name: str) -> Json:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


@dataclass
class Counted:
    """A tool that counts its runs; ``repeat``: whether it says a repeat is safe."""

    name: str
    repeat: bool
    journal: Journal | None = None
    runs: int = 0
    replied_first: list[bool] = field(default_factory=list)
    ref: str = ""
    description: str = "counts"
    parameters: Json = field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout: float = 5.0
    read_only: bool = False

    async def run(self, arguments: Json, context: ToolContext) -> str:
        self.runs += 1
        if self.journal is not None:  # its call was committed before it ran
            self.replied_first.append(len(self.journal.steps) > 0)
        return f"{self.name} ran"

    def label(self, arguments: Json) -> str:
        return self.name

    def repeatable(self, arguments: Json) -> bool:
        return self.repeat


@dataclass
class Journal:
    rounds: list[RecordedRound] = field(default_factory=list)
    steps: list[tuple[str, Json]] = field(default_factory=list)

    async def replied(self, message: Json, usage: Json) -> None:
        self.steps.append(("reply", {"message": message, "usage": usage}))

    async def tool_done(self, call_id: str, result: str) -> None:
        self.steps.append(("tool", {"call_id": call_id, "content": result}))


@dataclass
class Calling(ScriptedProvider):
    """Calls ``calls`` in its first reply unless told it has; answers after."""

    replies: list[list[Json]] = field(default_factory=list)

    async def stream(self, call: ChatCall) -> AsyncGenerator[list[Json], None]:
        self.calls.append(call)
        calls = self.replies.pop(0) if self.replies else []
        if calls:
            deltas = [{**c, "index": i} for i, c in enumerate(calls)]
            yield [chunk({"role": "assistant", "tool_calls": deltas}), chunk({}, "tool_calls")]
        else:
            yield [chunk({"role": "assistant", "content": "Done."}), chunk({}, "stop")]
        yield [{**chunk({}), "choices": [], "usage": USAGE}]


def looping(provider: Calling, *tools: Counted, journal: Journal) -> tuple[ToolLoop, LoopCall]:
    spec = AgentSpec(id="worker", model="p/m")
    agent = Agent(spec=spec, targets=(Target("p", "m"),), tools=tools)
    loop = ToolLoop(Router({"p": provider}), lambda _: None, McpHub({}))
    body = {"messages": [{"role": "user", "content": "Work."}]}
    return loop, LoopCall(agent, ChatCall(body=body, request_id="r1"), 5, journal=journal)


async def test_a_fresh_run_commits_each_reply_before_its_tools_and_each_result() -> None:
    journal = Journal()
    write = Counted("write", repeat=False, journal=journal)
    provider = Calling(name="p", replies=[[call("c1", "write")]])
    loop, run = looping(provider, write, journal=journal)
    end = await loop.finish(run)
    assert end.text == "Done."
    assert write.replied_first == [True]
    assert [kind for kind, _ in journal.steps] == ["reply", "tool"]
    assert journal.steps[0][1]["usage"] == USAGE
    assert journal.steps[1][1] == {"call_id": "c1", "content": "write ran"}


async def test_a_run_taken_up_replays_its_steps_and_runs_only_what_is_safe() -> None:
    journal = Journal()
    write = Counted("write", repeat=False)
    read = Counted("read", repeat=True)
    done = Counted("done", repeat=False)
    calls = [call("c1", "write"), call("c2", "read"), call("c3", "done")]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    # committed before the crash: the reply, and one of its three results
    journal.rounds = [RecordedRound(message, USAGE, {"c3": "done ran before"})]
    provider = Calling(name="p")  # would answer at once: only the next round is asked
    loop, run = looping(provider, write, read, done, journal=journal)
    events = [event async for event in loop.stream(run)]
    end = events[-1]
    assert isinstance(end, LoopEnd)
    assert len(provider.calls) == 1  # the recorded reply is not asked for again
    assert (write.runs, read.runs, done.runs) == (0, 1, 0)
    sent = provider.calls[0].body["messages"]
    assert sent[1] == message
    assert [m["content"] for m in sent[2:]] == [INTERRUPTED, "read ran", "done ran before"]
    assert journal.steps == [  # now recorded too: a second crash tells the same
        ("tool", {"call_id": "c1", "content": INTERRUPTED}),
        ("tool", {"call_id": "c2", "content": "read ran"}),
    ]
    # the recorded call's usage counts once, with the new one's
    assert end.usage["total_tokens"] == 2 * USAGE["total_tokens"]
