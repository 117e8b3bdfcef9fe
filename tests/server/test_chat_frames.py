"""The spliced content frames are exactly what serializing the chunk model gives."""

from __future__ import annotations

import json

import pytest

from headend.schemas.openai.chat import ChatCompletionChunk, ChunkChoice, Delta
from headend.server.chat import ContentFrames
from headend.server.sse import data_frame


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize("text", ["Hello", "", 'quote " and \\ and \n', "Paris ☀ 🇫🇷", "\u2028"])
def test_spliced_frame_equals_the_serialized_model(usage: bool, text: str) -> None:
    def chunk(content: str) -> bytes:
        extra = {"usage": None} if usage else {}
        model = ChatCompletionChunk(
            id="chatcmpl-1",
            created=1,
            model='agent "q"',
            system_fingerprint="fp",
            choices=[ChunkChoice(delta=Delta(content=content))],
            **extra,
        )
        return data_frame(model.model_dump_json().encode())

    spliced = ContentFrames(chunk(""))(text)
    expected = chunk(text)
    assert json.loads(spliced[6:]) == json.loads(expected[6:])
    assert spliced.endswith(b"\n\n")
    assert spliced.startswith(b"data: {")
