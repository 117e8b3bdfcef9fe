"""An answer's head leaves with its first body bytes in one write, never later than the
end of the loop's turn, and nothing is lost or reordered on the way."""

from __future__ import annotations

import asyncio

from headend.server.coalesce import HeadWithBody


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


def pair() -> tuple[Socket, HeadWithBody]:
    socket = Socket()
    return socket, HeadWithBody(socket, asyncio.get_running_loop())


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    socket, out = pair()
    out.hold_next()
    out.write(b"HTTP/1.1 200 OK\r\n\r\n")
    out.write(b'{"ok":true}')
    assert socket.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"ok":true}']
    out.write(b"next")  # only the first write of an answer is held
    assert socket.writes[-1] == b"next"
    await asyncio.sleep(0)
    assert len(socket.writes) == 2


async def test_a_head_alone_leaves_at_the_end_of_the_loops_turn() -> None:
    socket, out = pair()
    out.hold_next()
    out.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert socket.writes == []
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]


async def test_closing_or_ending_sends_what_is_held_first() -> None:
    socket, out = pair()
    out.hold_next()
    out.write(b"refused")
    out.write_eof()
    assert socket.writes == [b"refused"]
    assert socket.eof
    socket, out = pair()
    out.hold_next()
    out.write(b"last words")
    out.close()
    assert socket.writes == [b"last words"]
    assert socket.closed


async def test_an_aborted_connection_sends_nothing_more() -> None:
    socket, out = pair()
    out.hold_next()
    out.write(b"head")
    out.abort()
    await asyncio.sleep(0)
    assert socket.writes == []


async def test_writes_stay_in_order_across_answers() -> None:
    socket, out = pair()
    for number in range(3):
        out.hold_next()
        out.write(b"head%d|" % number)
        out.write(b"body%d|" % number)
    await asyncio.sleep(0)
    assert b"".join(socket.writes) == b"head0|body0|head1|body1|head2|body2|"
    assert len(socket.writes) == 3
