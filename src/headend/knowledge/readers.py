"""A file's text, by its kind: Markdown and plain text as they are, HTML without its markup,
PDF (pypdf) and DOCX (python-docx) as their text, JSON and CSV as text.

A file that cannot be read raises ``Unreadable`` with OpenAI's codes: ``unsupported_file``
for a kind headend does not read, ``invalid_file`` for one that is broken or empty.
"""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import IO

TEXT = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".text", ".log", ".py", ".js", ".ts", ".java", ".c",
     ".cpp", ".h", ".go", ".rs", ".rb", ".php", ".sh", ".css", ".tex", ".yaml", ".yml",
     ".toml", ".ini", ".xml", ".sql"}
)  # fmt: skip
HTML = frozenset({".html", ".htm", ".xhtml"})
READ_AS_DOCUMENTS = frozenset({".pdf", ".docx", ".json", ".jsonl", ".csv", ".tsv"})
KINDS = ", ".join(sorted(TEXT | HTML | READ_AS_DOCUMENTS))


class Unreadable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_text(filename: str, data: IO[bytes]) -> str:
    """The file's text (``data`` is seekable)."""
    suffix = PurePosixPath(filename.lower()).suffix
    try:
        if suffix == ".pdf":
            text = _pdf(data)
        elif suffix == ".docx":
            text = _docx(data)
        elif suffix in HTML:
            text = _html(_decoded(data))
        elif suffix in (".json", ".jsonl"):
            text = _json(_decoded(data), lines=suffix == ".jsonl")
        elif suffix in (".csv", ".tsv"):
            text = _csv(_decoded(data), "\t" if suffix == ".tsv" else ",")
        elif suffix in TEXT or not suffix:
            text = _decoded(data)
        else:
            raise Unreadable(
                "unsupported_file",
                f"Files of type '{suffix}' are not supported. Supported: {KINDS}.",
            )
    except Unreadable:
        raise
    except Exception as exc:  # each parser fails its own way on a broken file
        raise Unreadable("invalid_file", f"The file could not be read: {exc}") from None
    text = text.replace("\x00", "").strip()
    if not text:
        raise Unreadable("invalid_file", "The file holds no text.")
    return text


def _decoded(data: IO[bytes]) -> str:
    raw = data.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable(
            "invalid_file", "The file is not UTF-8 text (or its extension is wrong)."
        ) from None


def _pdf(data: IO[bytes]) -> str:
    from pypdf import PdfReader

    reader = PdfReader(data)
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)


def _docx(data: IO[bytes]) -> str:
    import docx

    document = docx.Document(data)
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


class _Text(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
         "article", "pre", "blockquote", "table", "ul", "ol"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(source: str) -> str:
    parser = _Text()
    parser.feed(source)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _json(source: str, *, lines: bool) -> str:
    values = (
        [json.loads(line) for line in source.splitlines() if line.strip()]
        if lines
        else [json.loads(source)]
    )
    return "\n".join(json.dumps(value, ensure_ascii=False, indent=1) for value in values)


def _csv(source: str, delimiter: str) -> str:
    rows = csv.reader(io.StringIO(source), delimiter=delimiter)
    return "\n".join(", ".join(cell for cell in row) for row in rows)
