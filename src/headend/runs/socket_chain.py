"""What one Responses WebSocket remembers between its responses (OpenAI's WebSocket mode):
its latest, so that a ``response.create`` naming it as ``previous_response_id`` goes on
without reading the store — a response not stored (``store: false``, as Codex CLI sends)
included, which over HTTP could not be continued at all.

A response with a conversation (an agent's session, or a stored one) is continued by that
session, as over HTTP; one without (a model route, not stored) by its input and output,
which the socket holds and puts before the new input.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.types import Json


@dataclass(slots=True, frozen=True)
class Link:
    """A response of the socket's, as the next one may go on from it."""

    response_id: str
    model: str  # as the client named it: another model goes the way HTTP does
    items: list[Json]  # the whole input it answered, what it went on from included
    output: list[Json]  # its output items
    session_id: str | None  # its conversation, when it has one


@dataclass(slots=True)
class SocketChain:
    latest: Link | None = None

    def after(self, body: Json) -> Link | None:
        """The response ``body`` goes on from, if it is this socket's latest and the same
        model's; None: the request goes the way HTTP requests go."""
        latest = self.latest
        if latest is None or body.get("previous_response_id") != latest.response_id:
            return None
        if body.get("model") != latest.model:
            return None
        return latest
