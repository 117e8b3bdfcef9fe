"""What the no-5xx probes check of each answer to a body that may be wrong."""

from __future__ import annotations

import httpx


def problem(response: httpx.Response, anthropic: bool = False) -> str | None:
    """What is wrong with an answer: a 5xx, a refusal outside its envelope (OpenAI's, or
    Anthropic's on ``/v1/messages``), a server error inside a stream; None when nothing is."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json().get("error")
        keys = {"type", "message"} if anthropic else {"message", "type", "param", "code"}
        if not isinstance(error, dict) or set(error) != keys:
            return f"{response.status_code} outside the envelope: {response.text[:300]}"
        return None
    # A stream that began has no status left to tell: a server error is an event in it.
    if "server_error" in response.text or "api_error" in response.text:
        return f"an error in the stream: {response.text[-300:]}"
    return None
