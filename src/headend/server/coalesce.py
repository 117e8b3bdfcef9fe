"""What the app writes in one turn of the event loop leaves in one write to the socket.

uvicorn writes an answer's status line and headers as soon as the app starts it, then each
body message in a write of its own: a small JSON answer took two system calls, a relayed
stream one per batch plus its ``[DONE]`` and its chunked terminator, and on loopback each
call also does the receiving side's work. ``Coalesced`` stands between the protocol and the
socket and gathers the writes of one loop turn into one, sent when the turn ends or, for
an answer's last bytes, at once (the protocol calls ``flush``). A token that arrives on its
own still leaves a turn later: nothing waits for more to come. Past ``FLUSH_AT`` bytes it
writes straight away, so the socket's own flow control still holds back a producer that
writes a lot in one turn. Closing, aborting or ending the stream sends what is gathered
first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

Data = bytes | bytearray | memoryview

FLUSH_AT = 64 * 1024


class Coalesced(asyncio.Transport):
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._gathered: list[Data] = []
        self._size = 0
        self._scheduled: asyncio.Handle | None = None

    @property
    def raw(self) -> asyncio.Transport:
        """The transport written to (for a protocol that takes the connection over)."""
        return self._transport

    def write(self, data: Data) -> None:
        if not data:
            return
        if not self._gathered:
            self._scheduled = self._loop.call_soon(self._end_of_turn)
        # Kept past this call: a copy of anything its writer could change afterwards.
        self._gathered.append(data if isinstance(data, bytes) else bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()

    def _end_of_turn(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        """Write what is gathered now (an answer that is complete need not wait)."""
        gathered = self._gathered
        if not gathered:
            return
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._gathered, self._size = [], 0
        if self._transport.is_closing():
            return
        self._transport.write(gathered[0] if len(gathered) == 1 else b"".join(gathered))

    def writelines(self, list_of_data: Iterable[Data]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._gathered, self._size = [], 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
