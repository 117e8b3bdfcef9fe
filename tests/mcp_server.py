"""A real MCP server for the tests, over stdio or (``--http PORT``) streamable HTTP on
loopback. Appends its PID to $PIDFILE when it starts."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("demo")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@server.tool()
def crash() -> str:
    """Exit the server process at once, as a crashing server would."""
    os._exit(3)


if __name__ == "__main__":
    with open(os.environ["PIDFILE"], "a") as pids:
        pids.write(f"{os.getpid()}\n")
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
