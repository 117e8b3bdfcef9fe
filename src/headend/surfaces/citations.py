"""Citations of the passages a hosted search gave the model, on each API's own wire.

The model is asked to cite a passage as ``[n]`` (``tools.builtin.file_search``); each such
marker that names a passage of the run becomes a citation where the marker stands:

- Responses: a ``file_citation`` (``file_id``, ``filename``, ``index``: the marker's place).
- Chat Completions, whose ``annotations`` define only ``url_citation``: one whose
  ``start_index``/``end_index`` span the marker, ``title`` is the file's name and ``url`` the
  file's content on this server (``/v1/files/{id}/content``, relative to the base URL).
- Messages: a ``search_result_location`` on the text block, as Anthropic answers when given
  ``search_result`` blocks: ``source`` that same path, ``title``, ``cited_text`` the passage,
  ``search_result_index`` the passage's place among those the run found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from headend.tools.base import Source
from headend.types import Json

MARKER = re.compile(r"\[(\d{1,4})\]")
CITED_CHARS = 500  # of a passage, in a Messages citation's cited_text


def file_url(file_id: str) -> str:
    return f"/v1/files/{file_id}/content"


def _cited(text: str, sources: Sequence[Source]) -> Iterator[tuple[re.Match[str], Source]]:
    by_number = {source.number: source for source in sources}
    for found in MARKER.finditer(text):
        source = by_number.get(int(found.group(1)))
        if source is not None:
            yield found, source


def file_citations(text: str, sources: Sequence[Source]) -> list[Json]:
    return [
        {
            "type": "file_citation",
            "file_id": source.file_id,
            "filename": source.filename,
            "index": found.start(),
        }
        for found, source in _cited(text, sources)
    ]


def url_citations(text: str, sources: Sequence[Source]) -> list[Json]:
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "start_index": found.start(),
                "end_index": found.end(),
                "title": source.filename,
                "url": file_url(source.file_id),
            },
        }
        for found, source in _cited(text, sources)
    ]


def search_result_citations(text: str, sources: Sequence[Source]) -> list[Json]:
    return [
        {
            "type": "search_result_location",
            "source": file_url(source.file_id),
            "title": source.filename,
            "cited_text": source.text[:CITED_CHARS],
            "search_result_index": source.number - 1,
            "start_block_index": 0,
            "end_block_index": 0,
        }
        for _found, source in _cited(text, sources)
    ]
