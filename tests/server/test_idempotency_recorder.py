"""What an idempotent run keeps for a retry: the whole answer, none that asks to be
retried, and only a mark for one too long to keep."""

from __future__ import annotations

import pytest
from starlette.types import Message

from headend.errors import IdempotencyConflict
from headend.server import idempotency
from headend.server.idempotency import NOT_KEPT, _Recorder, _replay
from headend.store.base import IdempotentRequest


async def record(status: int, *bodies: bytes, last: bool = True) -> _Recorder:
    async def sink(message: Message) -> None:
        return None

    recorder = _Recorder(sink)
    headers = [(b"content-type", b"application/json"), (b"x-ratelimit-remaining", b"3")]
    await recorder({"type": "http.response.start", "status": status, "headers": headers})
    for index, body in enumerate(bodies):
        more = not last or index < len(bodies) - 1
        await recorder({"type": "http.response.body", "body": body, "more_body": more})
    return recorder


async def test_a_whole_answer_is_kept_with_its_content_type_only() -> None:
    kept = (await record(200, b'{"a":', b"1}")).answer()
    assert kept == (200, {"content-type": "application/json"}, b'{"a":1}')
    assert (await record(400, b"{}")).answer() is not None  # the same request fails the same


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
async def test_answers_that_ask_for_a_retry_are_not_kept(status: int) -> None:
    assert (await record(status, b"{}")).answer() is None


async def test_a_cut_answer_is_not_kept_and_a_long_one_only_marked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (await record(200, b"data: 1\n\n", last=False)).answer() is None
    monkeypatch.setattr(idempotency, "MAX_STORED", 4)
    assert (await record(200, b"long ", b"answer")).answer() == (200, {NOT_KEPT: "true"}, b"")


async def test_a_retry_of_an_answer_not_kept_is_refused() -> None:
    sent: list[Message] = []

    async def sink(message: Message) -> None:
        sent.append(message)

    marked = IdempotentRequest("hash", 200, {NOT_KEPT: "true"}, b"")
    with pytest.raises(IdempotencyConflict, match="too long to keep"):
        await _replay(marked, "hash", sink)
    assert sent == []
