"""``terminal``: run a shell command in the conversation's scratch directory.

Offered only to agents that list it. What it fences: the working directory (a scratch
directory of the conversation's own), the time (killed with its whole process group at the
timeout), the output (capped), and the environment (only PATH, HOME pointing at the scratch
directory, LANG and TERM: no headend secrets, no provider keys).

What it does NOT isolate: the command runs as headend's own user, on headend's machine, with
that user's file permissions and network access. It can read any file that user can read,
write outside the scratch directory, and reach the network. Give it only to agents whose
every user you would trust with a shell on that machine, or run headend itself in a
container or VM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from headend.tools.base import ToolContext, ToolError
from headend.types import Json

MAX_OUTPUT = 20_000
KEPT_ENVIRONMENT = ("PATH", "LANG", "TERM")


def scrubbed_environment(home: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in KEPT_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = home
    return env


class Terminal:
    name = "terminal"
    ref = "terminal"
    read_only = False
    description = (
        "Run a shell command (sh -c) in a scratch directory kept for this conversation. "
        "Returns the exit code and the combined output (at most 20 kB)."
    )
    timeout = 60.0

    def __init__(self) -> None:
        self.parameters: Json = {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        }

    async def run(self, arguments: Json, context: ToolContext) -> str:
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("'command' must be a non-empty string")
        context.scratch.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=context.scratch,
            env=scrubbed_environment(str(context.scratch)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            output = await _read_capped(process)
            code = await process.wait()
        except BaseException:
            _kill_group(process)
            await process.wait()
            raise
        text = output[:MAX_OUTPUT].decode("utf-8", errors="replace")
        note = f"\n[output truncated at {MAX_OUTPUT} bytes]" if len(output) > MAX_OUTPUT else ""
        return f"exit code {code}\n{text}{note}"

    def label(self, arguments: Json) -> str:
        return f"$ {str(arguments.get('command', ''))[:80]}"

    def repeatable(self, arguments: Json) -> bool:
        return False  # a command may have done anything


async def _read_capped(process: asyncio.subprocess.Process) -> bytes:
    assert process.stdout is not None
    data = b""
    while chunk := await process.stdout.read(65_536):
        if len(data) <= MAX_OUTPUT:
            data += chunk
    return data


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
