"""Wire shapes of OpenAI's Files and Vector Stores APIs (openai-python's
``types/file_object.py``, ``types/vector_store*.py``, ``types/vector_stores/*``).

Requests are strict about the fields they know and keep the others, as every request shape;
answers are built here from plain values, in OpenAI's field order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from headend.schemas.base import RequestShape

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
AttributeValue = StrictStr | StrictBool | StrictInt | StrictFloat
Attributes = Annotated[
    dict[Annotated[str, Field(max_length=64)], AttributeValue], Field(max_length=16)
]
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=16),
]


class StaticChunking(RequestShape):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class ChunkingStrategy(RequestShape):
    type: Literal["auto", "static"]
    static: StaticChunking | None = None

    @model_validator(mode="after")
    def _static(self) -> ChunkingStrategy:
        if self.type == "static" and self.static is None:
            raise ValueError("a static chunking_strategy needs 'static'")
        return self

    def wire(self) -> dict[str, Any]:
        if self.type == "auto" or self.static is None:
            return {"type": "auto"}
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.static.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.static.chunk_overlap_tokens,
            },
        }


class ExpiresAfter(RequestShape):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class FileExpiresAfter(RequestShape):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class Comparison(RequestShape):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: AttributeValue | list[StrictStr | StrictInt | StrictFloat]

    @model_validator(mode="after")
    def _list(self) -> Comparison:
        if (self.type in ("in", "nin")) != isinstance(self.value, list):
            raise ValueError("'in' and 'nin' take a list of values, the others one value")
        return self


class Compound(RequestShape):
    type: Literal["and", "or"]
    filters: list[Comparison | Compound] = Field(min_length=1)


Filter = Comparison | Compound
Compound.model_rebuild()


def filter_wire(found: Filter | None) -> dict[str, Any] | None:
    return None if found is None else found.model_dump(exclude_unset=False)


class CreateVectorStore(RequestShape):
    file_ids: list[StrictStr] = Field(default_factory=list, max_length=500)
    # headend's: the model its vectors come from ("builtin", or a model route that embeds);
    # None: knowledge.embedding of headend.yaml
    embedding_model: StrictStr | None = None
    name: StrictStr | None = None
    description: StrictStr | None = None
    chunking_strategy: ChunkingStrategy | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class UpdateVectorStore(RequestShape):
    name: StrictStr | None = None
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class CreateStoreFile(RequestShape):
    file_id: StrictStr
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class UpdateStoreFile(RequestShape):
    attributes: Attributes | None


class BatchFile(RequestShape):
    file_id: StrictStr
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None


class CreateBatch(RequestShape):
    file_ids: list[StrictStr] | None = Field(None, max_length=2000)
    files: list[BatchFile] | None = Field(None, max_length=2000)
    attributes: Attributes | None = None
    chunking_strategy: ChunkingStrategy | None = None

    @model_validator(mode="after")
    def _one(self) -> CreateBatch:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("give either file_ids or files")
        return self


class RankingOptions(RequestShape):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: StrictFloat | StrictInt = Field(0.0, ge=0, le=1)


class SearchRequest(RequestShape):
    query: StrictStr | list[StrictStr] = Field(min_length=1)
    filters: Filter | None = None
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: StrictBool = False

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


class HybridSearch(RequestShape):
    embedding_weight: StrictFloat | StrictInt = Field(1.0, ge=0)
    text_weight: StrictFloat | StrictInt = Field(1.0, ge=0)


class FileSearchRanking(RankingOptions):
    hybrid_search: HybridSearch | None = None


class FileSearchTool(RequestShape):
    """The Responses API's ``file_search`` tool."""

    type: Literal["file_search"]
    vector_store_ids: list[StrictStr] = Field(min_length=1, max_length=16)
    max_num_results: int = Field(10, ge=1, le=50)
    filters: Filter | None = None
    ranking_options: FileSearchRanking | None = None


def file_object(
    id: str,
    size: int,
    created_at: float,
    filename: str,
    purpose: str,
    expires_at: float | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "file",
        "bytes": size,
        "created_at": int(created_at),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None if expires_at is None else int(expires_at),
        "status_details": None,
    }


def file_counts(in_progress: int, completed: int, failed: int, cancelled: int) -> dict[str, int]:
    return {
        "in_progress": in_progress,
        "completed": completed,
        "failed": failed,
        "cancelled": cancelled,
        "total": in_progress + completed + failed + cancelled,
    }


def page(data: list[dict[str, Any]], has_more: bool, id_key: str = "id") -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0][id_key] if data else None,
        "last_id": data[-1][id_key] if data else None,
        "has_more": has_more,
    }


def deleted(id: str, kind: str) -> dict[str, Any]:
    return {"id": id, "object": f"{kind}.deleted", "deleted": True}
