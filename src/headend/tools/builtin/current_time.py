"""``current_time``: the date and time now, in UTC or a named time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headend.tools.base import ToolContext, ToolError
from headend.types import Json


class CurrentTime:
    name = "current_time"
    ref = "current_time"
    read_only = True
    description = "The current date and time (ISO 8601), in UTC or the given IANA time zone."
    timeout = 5.0

    def __init__(self) -> None:
        self.parameters: Json = {
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "e.g. Europe/Paris; default UTC"}
            },
        }

    async def run(self, arguments: Json, context: ToolContext) -> str:
        name = arguments.get("timezone") or "UTC"
        try:
            zone = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {name!r}") from None
        now = datetime.now(UTC).astimezone(zone)
        return f"{now.isoformat(timespec='seconds')} ({now:%A}, {zone.key})"

    def label(self, arguments: Json) -> str:
        return "reading the clock"

    def repeatable(self, arguments: Json) -> bool:
        return True
