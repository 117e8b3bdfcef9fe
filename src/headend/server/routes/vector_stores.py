"""OpenAI's Vector Stores API: stores, their files, file batches and search."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from headend.schemas.openai.vector_stores_api import (
    CreateBatch,
    CreateStoreFile,
    CreateVectorStore,
    SearchRequest,
    UpdateStoreFile,
    UpdateVectorStore,
    deleted,
    page,
)
from headend.schemas.validation import validate
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.query import query_choice, query_whole
from headend.server.routes.files import caller_of
from headend.server.services import services

M = TypeVar("M", bound=BaseModel)
STATUSES = ("in_progress", "completed", "failed", "cancelled")


async def _body(request: Request, model: type[M]) -> M:
    found = services(request)
    return validate(
        model, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )


def _paging(request: Request) -> tuple[str | None, int, str]:
    limit = query_whole(request, "limit", 1, 100) or 20
    order = query_choice(request, "order", ("asc", "desc")) or "desc"
    return request.query_params.get("after"), limit, order


def _ids(request: Request) -> tuple[str, ...]:
    return tuple(str(value) for value in request.path_params.values())


async def create_vector_store(request: Request) -> Response:
    body = await _body(request, CreateVectorStore)
    return json_response(await services(request).knowledge.create_store(caller_of(request), body))


async def list_vector_stores(request: Request) -> Response:
    after, limit, order = _paging(request)
    data, more = await services(request).knowledge.stores(caller_of(request), after, limit, order)
    return json_response(page(data, more))


async def retrieve_vector_store(request: Request) -> Response:
    (store_id,) = _ids(request)
    return json_response(await services(request).knowledge.store_json(caller_of(request), store_id))


async def update_vector_store(request: Request) -> Response:
    (store_id,) = _ids(request)
    body = await _body(request, UpdateVectorStore)
    knowledge = services(request).knowledge
    return json_response(await knowledge.update_store(caller_of(request), store_id, body))


async def delete_vector_store(request: Request) -> Response:
    (store_id,) = _ids(request)
    await services(request).knowledge.delete_store(caller_of(request), store_id)
    return json_response(deleted(store_id, "vector_store"))


async def search_vector_store(request: Request) -> Response:
    (store_id,) = _ids(request)
    body = await _body(request, SearchRequest)
    return json_response(
        await services(request).knowledge.search(caller_of(request), store_id, body)
    )


async def create_store_file(request: Request) -> Response:
    (store_id,) = _ids(request)
    body = await _body(request, CreateStoreFile)
    knowledge = services(request).knowledge
    return json_response(await knowledge.add_file(caller_of(request), store_id, body))


async def list_store_files(request: Request) -> Response:
    store_id = request.path_params["vector_store_id"]
    batch_id: Any = request.path_params.get("batch_id")
    if batch_id is not None:
        await services(request).knowledge.batch(caller_of(request), store_id, batch_id)
    after, limit, order = _paging(request)
    data, more = await services(request).knowledge.store_files(
        caller_of(request),
        store_id,
        status=query_choice(request, "filter", STATUSES),
        batch_id=batch_id,
        after=after,
        limit=limit,
        order=order,
    )
    return json_response(page(data, more))


async def retrieve_store_file(request: Request) -> Response:
    store_id, file_id = _ids(request)
    knowledge = services(request).knowledge
    return json_response(await knowledge.store_file_json(caller_of(request), store_id, file_id))


async def update_store_file(request: Request) -> Response:
    store_id, file_id = _ids(request)
    body = await _body(request, UpdateStoreFile)
    knowledge = services(request).knowledge
    return json_response(
        await knowledge.set_attributes(caller_of(request), store_id, file_id, body.attributes)
    )


async def delete_store_file(request: Request) -> Response:
    store_id, file_id = _ids(request)
    await services(request).knowledge.remove_file(caller_of(request), store_id, file_id)
    return json_response(deleted(file_id, "vector_store.file"))


async def store_file_content(request: Request) -> Response:
    store_id, file_id = _ids(request)
    knowledge = services(request).knowledge
    return json_response(await knowledge.file_content(caller_of(request), store_id, file_id))


async def create_batch(request: Request) -> Response:
    (store_id,) = _ids(request)
    body = await _body(request, CreateBatch)
    knowledge = services(request).knowledge
    return json_response(await knowledge.create_batch(caller_of(request), store_id, body))


async def retrieve_batch(request: Request) -> Response:
    store_id, batch_id = _ids(request)
    knowledge = services(request).knowledge
    return json_response(await knowledge.batch_json(caller_of(request), store_id, batch_id))


async def cancel_batch(request: Request) -> Response:
    store_id, batch_id = _ids(request)
    knowledge = services(request).knowledge
    return json_response(await knowledge.cancel_batch(caller_of(request), store_id, batch_id))
