"""Knowledge's tables, written once for both backends (``headend.store.sql.Dialect``).

Files keep their bytes in ``file_parts`` (1 MiB a row), so instances sharing a PostgreSQL
store share them. A vector store's files are its jobs: ``in_progress`` until an ingester
claims, reads, chunks and embeds one, and commits its chunks with its end state in one
transaction. ``attempts`` numbers the claims and fences every write of a claim. Chunks keep
their vector (little-endian float32) beside their text; full-text search is each backend's
own: an FTS5 table on SQLite, a generated ``tsvector`` with a GIN index on PostgreSQL.
"""

from __future__ import annotations

from headend.store.sql import Dialect

TABLES = """
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    owner TEXT,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real},
    complete INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX files_by_owner ON files (owner, created_at);
CREATE TABLE file_parts (
    file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (file_id, seq)
);
CREATE TABLE vector_stores (
    id TEXT PRIMARY KEY,
    owner TEXT,
    name TEXT,
    description TEXT,
    metadata {json} NOT NULL,
    chunking {json} NOT NULL,
    embedding TEXT NOT NULL,
    dimensions INTEGER,
    expires_after {json},
    expires_at {real},
    last_active_at {real} NOT NULL,
    created_at {real} NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX vector_stores_by_owner ON vector_stores (owner, created_at);
CREATE TABLE vector_store_files (
    vector_store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL,
    owner TEXT,
    batch_id TEXT,
    status TEXT NOT NULL,
    attributes {json} NOT NULL,
    chunking {json} NOT NULL,
    usage_bytes BIGINT NOT NULL DEFAULT 0,
    last_error_code TEXT,
    last_error_message TEXT,
    created_at {real} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_until {real},
    PRIMARY KEY (vector_store_id, file_id)
);
CREATE INDEX vector_store_files_by_status ON vector_store_files (status, claimed_until);
CREATE INDEX vector_store_files_by_file ON vector_store_files (file_id);
CREATE INDEX vector_store_files_by_batch ON vector_store_files (batch_id);
CREATE TABLE vector_store_batches (
    id TEXT PRIMARY KEY,
    vector_store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    created_at {real} NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE chunks (
    id {serial},
    vector_store_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    vector {blob}
);
CREATE INDEX chunks_by_file ON chunks (vector_store_id, file_id, seq);
"""

# FTS5 over the chunks' text, kept in step by triggers (an external-content table: the text
# is stored once). unicode61 folds case and diacritics; words split as BM25's \w+ does. Its
# vocabulary (how many chunks hold each word) lets a search leave out the commonest words.
# The store's id is indexed too, so a search ranks only its own store's chunks.
SQLITE_FULL_TEXT = """
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, vector_store_id, content='chunks', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text, vector_store_id)
    VALUES (new.id, new.text, new.vector_store_id);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text, vector_store_id)
    VALUES ('delete', old.id, old.text, old.vector_store_id);
END;
"""

# 'simple': no stemming or stop words, the same words FTS5 indexes.
POSTGRES_FULL_TEXT = """
ALTER TABLE chunks ADD COLUMN words tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
CREATE INDEX chunks_words ON chunks USING GIN (words);
"""


# Where pgvector is there, chunks keep their vectors in its type too, searched by an HNSW index
# per dimension count (``KnowledgeStore.nearest``); tried at each start, so a database that
# gets the extension later uses it from then on.
PGVECTOR = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding vector",
)


def vector_index(dimensions: int) -> str:
    """The HNSW index of the chunks whose vectors have ``dimensions`` (cosine distance)."""
    return (
        f"CREATE INDEX IF NOT EXISTS chunks_embedding_{dimensions} ON chunks USING hnsw "
        f"((embedding::vector({dimensions})) vector_cosine_ops) "
        f"WHERE vector_dims(embedding) = {dimensions}"
    )


def knowledge_statements(dialect: Dialect) -> list[str]:
    """The statements that make knowledge's tables on ``dialect``'s backend, in order."""
    full_text = SQLITE_FULL_TEXT if dialect.name == "sqlite" else POSTGRES_FULL_TEXT
    tables = [s.strip() for s in dialect.ddl(TABLES).split(";") if s.strip()]
    return tables + _split_full_text(full_text)


def _split_full_text(sql: str) -> list[str]:
    """Statements split at their ends: a trigger's body holds semicolons of its own."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        opens = text.upper().count(" BEGIN")
        if line.rstrip().endswith(";") and (not opens or text.upper().endswith("END;")):
            statements.append(text.rstrip(";"))
            current = []
    return statements
