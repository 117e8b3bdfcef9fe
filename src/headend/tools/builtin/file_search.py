"""``file_search``: the Responses API's hosted tool, run by headend over its own vector stores.

The model sees a function ``file_search`` taking ``query``; headend searches the stores the
request (or the agent's ``knowledge:``) named, with their filters and ranking options, and
gives the model the passages numbered in the run's order, asking it to cite them as ``[n]``.
The Responses API shows the call as a ``file_search_call`` item, its results included when
the request asks for ``file_search_call.results``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from headend.knowledge.search import Hit, SearchOptions
from headend.store.knowledge import VectorStoreRecord
from headend.tools.base import HostedResult, Source, ToolContext, ToolError
from headend.types import Json

NAME = "file_search"
DESCRIPTION = (
    "Search the documents you were given (files uploaded to this conversation's knowledge) "
    "for passages relevant to a query. Use it before answering questions those documents "
    "may cover, and cite what you use."
)
PARAMETERS: Json = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "What to look for, in words likely to appear in the passages.",
        }
    },
    "required": ["query"],
}


# (stores, query, options) -> the hits, best first, across the stores
StoreSearch = Callable[[Sequence[VectorStoreRecord], str, SearchOptions], Awaitable[list[Hit]]]


def item_id(call_id: str) -> str:
    return "fs_" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


@dataclass(slots=True)
class FileSearch:
    stores: tuple[VectorStoreRecord, ...]
    search: StoreSearch
    options: SearchOptions = field(default_factory=SearchOptions)
    name: str = NAME
    ref: str = NAME
    description: str = DESCRIPTION
    parameters: Json = field(default_factory=lambda: PARAMETERS)
    timeout: float = 60.0
    read_only: bool = True

    def label(self, arguments: Json) -> str:
        return f"searching for {str(arguments.get('query', ''))[:80]!r}"

    def repeatable(self, arguments: Json) -> bool:
        return True

    def begun(self, call_id: str, arguments: Json) -> Json:
        return {
            "type": "file_search_call",
            "id": item_id(call_id),
            "status": "in_progress",
            "queries": [str(arguments.get("query", ""))],
            "results": None,
        }

    async def run(self, arguments: Json, context: ToolContext) -> str:
        return (await self.run_hosted("", arguments, context)).text

    async def run_hosted(self, call_id: str, arguments: Json, context: ToolContext) -> HostedResult:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("file_search needs a 'query' string.")
        hits = await self.search(self.stores, query, self.options)
        first = len(context.sources) + 1
        sources = tuple(
            Source(first + n, hit.file_id, hit.filename, hit.text) for n, hit in enumerate(hits)
        )
        context.sources.extend(sources)
        item = {
            "type": "file_search_call",
            "id": item_id(call_id),
            "status": "completed",
            "queries": [query],
            "results": [
                {
                    "file_id": hit.file_id,
                    "filename": hit.filename,
                    "score": hit.score,
                    "text": hit.text,
                    "attributes": hit.attributes,
                }
                for hit in hits
            ],
        }
        return HostedResult(_for_model(sources), item, sources)


def _for_model(sources: Sequence[Source]) -> str:
    if not sources:
        return "No passages matched the query."
    passages = "\n\n".join(f"[{s.number}] {s.filename}\n{s.text}" for s in sources)
    return (
        f"{passages}\n\nCite each passage you use by its number in brackets, "
        "right after the words it supports, e.g. [1]."
    )
