"""A2A's wire shapes, from headend's own: an agent's card, a task from a background response,
and a task's stream events from the response's events.

Two versions of the protocol are spoken on one endpoint, told apart by the method's name:
A2A 1.0 (``SendMessage``…, what the ``a2a-sdk`` 1.x client picks from the card) and 0.3
(``message/send``…, what LangGraph and LiteLLM and older clients send). They differ in
spelling only — enum values, a ``kind`` on each object, how a result is wrapped — so each
is a ``Dialect``, and the shapes below are written once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from headend.surfaces.agent_chunks import waiting_text
from headend.types import Json

# A background response's status, as a task's state (0.3's spelling; 1.0's is derived).
STATES = {
    "queued": "submitted",
    "in_progress": "working",
    "completed": "completed",
    "incomplete": "completed",
    "failed": "failed",
    "cancelled": "canceled",
}
ARTIFACT = "answer"  # the one artifact of a task: what the agent answered


@dataclass(frozen=True, slots=True)
class Dialect:
    version: str

    @property
    def v1(self) -> bool:
        return self.version == "1.0"

    def state(self, state: str) -> str:
        return f"TASK_STATE_{state.upper().replace('-', '_')}" if self.v1 else state

    def role(self, role: str) -> str:
        return f"ROLE_{role.upper()}" if self.v1 else role

    def text_part(self, text: str) -> Json:
        return {"text": text} if self.v1 else {"kind": "text", "text": text}

    def kind(self, kind: str, shape: Json) -> Json:
        """``shape`` as this version marks what it is (0.3: a ``kind`` field)."""
        return shape if self.v1 else {**shape, "kind": kind}

    def result(self, kind: str, shape: Json) -> Json:
        """A send's result or a stream event: 1.0 wraps it in a field named for its kind,
        0.3 marks it with ``kind``."""
        if self.v1:
            field = {"status-update": "statusUpdate", "artifact-update": "artifactUpdate"}
            return {field.get(kind, kind): shape}
        return {**shape, "kind": kind}


V1 = Dialect("1.0")
V03 = Dialect("0.3")


def timestamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def output_text(response: Json) -> str:
    """The response's text (a guardrail's refusal has its words as text too)."""
    return "".join(
        part.get("text", "")
        for item in response.get("output") or ()
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )


def waiting_notice(response: Json) -> str:
    """The calls a run stopped at, said for a person (answered through the sessions API)."""
    waiting = [i for i in response.get("output") or () if i.get("type") == "mcp_approval_request"]
    return waiting_text(waiting, response.get("session_id")) if waiting else ""


class TaskShapes:
    """One task's shapes in one dialect: the task is a background response."""

    def __init__(self, dialect: Dialect, response: Json) -> None:
        self.dialect = dialect
        self.response = response
        self.id: str = response["id"]
        self.context_id: str = response.get("session_id") or ""

    def message(self, role: str, text: str) -> Json:
        d = self.dialect
        shape = {
            "messageId": f"{self.id}-{role}",
            "contextId": self.context_id,
            "taskId": self.id,
            "role": d.role(role),
            "parts": [d.text_part(text)],
        }
        return d.kind("message", shape)

    def state(self) -> str:
        response = self.response
        state = STATES.get(response.get("status", ""), "working")
        if state == "completed" and waiting_notice(response):
            return "input-required"
        return state

    def status(self, state: str | None = None, text: str | None = None) -> Json:
        state = state or self.state()
        status: Json = {"state": self.dialect.state(state), "timestamp": timestamp()}
        said = text if text is not None else self.said(state)
        if said:
            status["message"] = self.message("agent", said)
        return status

    def said(self, state: str) -> str:
        """What the agent says with the task's state: its answer, what waits, or why not."""
        if state == "input-required":
            return waiting_notice(self.response)
        if state == "failed":
            error = self.response.get("error") or {}
            return str(error.get("message") or "The run failed.")
        return output_text(self.response) if state == "completed" else ""

    def artifact(self, text: str) -> Json:
        return {
            "artifactId": f"{self.id}-{ARTIFACT}",
            "name": ARTIFACT,
            "parts": [self.dialect.text_part(text)],
        }

    def task(self, asked: list[str], history_length: int | None = None) -> Json:
        """The task as it stands; ``asked``: the texts of the user's messages in it."""
        state = self.state()
        history = [self.message("user", text) for text in asked]
        answer = output_text(self.response)
        if answer:
            history.append(self.message("agent", answer))
        if history_length is not None:
            history = history[-history_length:] if history_length else []
        shape: Json = {
            "id": self.id,
            "contextId": self.context_id,
            "status": self.status(state),
            "artifacts": [self.artifact(answer)] if answer else [],
            "history": history,
        }
        return self.dialect.kind("task", shape)

    def status_update(self, state: str, final: bool, text: str | None = None) -> Json:
        shape: Json = {
            "taskId": self.id,
            "contextId": self.context_id,
            "status": self.status(state, text),
        }
        if not self.dialect.v1:
            shape["final"] = final
        return self.dialect.result("status-update", shape)

    def artifact_update(self, text: str, append: bool, last: bool) -> Json:
        shape: Json = {
            "taskId": self.id,
            "contextId": self.context_id,
            "artifact": self.artifact(text),
            "append": append,
            "lastChunk": last,
        }
        return self.dialect.result("artifact-update", shape)


def agent_card(agent_id: str, description: str, version: int, url: str) -> Json:
    """An agent's card, for both versions: 1.0's ``supportedInterfaces`` (which the 1.x
    client reads, and picks 1.0 from) and 0.3's top-level ``url`` (which 0.3 clients read);
    the key as a bearer token, declared both ways."""
    return {
        "name": agent_id,
        "description": description or f"The {agent_id} agent.",
        "version": str(version or 1),
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ],
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "provider": {"organization": "headend", "url": url.split("/a2a/", 1)[0]},
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": agent_id,
                "name": agent_id,
                "description": description or f"The {agent_id} agent.",
                "tags": ["headend"],
            }
        ],
        "securitySchemes": {"bearer": {"httpAuthSecurityScheme": {"scheme": "bearer"}}},
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
        "security": [{"bearer": []}],
    }
