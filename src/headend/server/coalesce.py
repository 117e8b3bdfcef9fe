"""An answer's head and its first bytes of body in one write to the socket.

uvicorn writes a response's status line and headers as soon as the app starts the answer,
then its body in a second write: two system calls, and on loopback each one also does the
receiving side's work, for what is one small JSON answer. ``HeadWithBody`` stands between
the protocol and the socket and holds the first write of each answer until the next write
or the end of the event loop's turn, whichever comes first: a whole JSON answer leaves in
one write, and a stream's head leaves with its first event (or, if the app has more to do
first, a loop turn later). Everything else passes straight through; closing, aborting or
ending the stream sends what is held first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

Data = bytes | bytearray | memoryview


class HeadWithBody(asyncio.Transport):
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._holding = False
        self._held: Data | None = None

    def hold_next(self) -> None:
        """The next write starts an answer: keep it for the write after."""
        self._holding = True

    def write(self, data: Data) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(bytes(held) + bytes(data))
        elif self._holding:
            self._holding = False
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

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
        self._held = None
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
        return self._transport.get_write_buffer_size() + (
            len(self._held) if self._held is not None else 0
        )

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()
