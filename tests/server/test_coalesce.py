"""What is written in one turn of the event loop leaves in one write at the turn's end,
never later, never reordered, and not gathered without bound."""

from __future__ import annotations

import asyncio

from headend.server.coalesce import FLUSH_AT, Coalesced


class Socket(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def pair() -> tuple[Socket, Coalesced]:
    socket = Socket()
    return socket, Coalesced(socket, asyncio.get_running_loop())


async def test_an_answer_written_in_one_turn_leaves_in_one_write() -> None:
    socket, out = pair()
    out.write(b"HTTP/1.1 200 OK\r\n\r\n")
    out.write(b"data: {}\n\n")
    out.write(b"data: [DONE]\n\n")
    assert socket.writes == []
    assert out.get_write_buffer_size() > 0
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: {}\n\ndata: [DONE]\n\n"]


async def test_each_turn_leaves_on_its_own_so_tokens_are_not_held_back() -> None:
    socket, out = pair()
    for token in (b"one", b"two", b"three"):
        out.write(token)
        await asyncio.sleep(0)
        assert socket.writes[-1] == token
    assert len(socket.writes) == 3


async def test_a_large_turn_is_written_as_it_grows() -> None:
    socket, out = pair()
    block = b"x" * (FLUSH_AT // 2)
    for _ in range(5):
        out.write(block)
    assert b"".join(socket.writes) == block * 4  # what passed the bound went at once
    await asyncio.sleep(0)
    assert b"".join(socket.writes) == block * 5


async def test_a_buffer_changed_after_writing_is_sent_as_it_was() -> None:
    socket, out = pair()
    data = bytearray(b"before")
    out.write(data)
    data[:] = b"after!"
    await asyncio.sleep(0)
    assert socket.writes == [b"before"]


async def test_closing_or_ending_sends_what_is_gathered_first() -> None:
    socket, out = pair()
    out.write(b"refused")
    out.write_eof()
    assert socket.writes == [b"refused"]
    assert socket.eof
    socket, out = pair()
    out.write(b"last words")
    out.close()
    assert socket.writes == [b"last words"]
    assert socket.closed


async def test_an_aborted_connection_sends_nothing_more() -> None:
    socket, out = pair()
    out.write(b"head")
    out.abort()
    await asyncio.sleep(0)
    assert socket.writes == []


async def test_a_flush_sends_at_once_and_the_turns_end_finds_nothing_more() -> None:
    socket, out = pair()
    out.write(b"head")
    out.write(b"body")
    out.flush()  # the answer is complete
    assert socket.writes == [b"headbody"]
    await asyncio.sleep(0)
    assert socket.writes == [b"headbody"]
    out.write(b"next")
    await asyncio.sleep(0)
    assert socket.writes == [b"headbody", b"next"]
