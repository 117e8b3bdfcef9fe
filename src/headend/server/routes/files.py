"""OpenAI's Files API: ``/v1/files``, its files and their content.

An upload is read as it arrives: the multipart parser spools the file to disk past 1 MiB, the
body is refused with a 413 as soon as it passes ``knowledge.max_file_bytes``, and the bytes go
to the store a part at a time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from headend.errors import ClientDisconnected, InvalidRequest, PayloadTooLarge
from headend.knowledge.documents import Caller
from headend.schemas.openai.vector_stores_api import PURPOSES, deleted, page
from headend.server.auth import principal_of
from headend.server.json_bodies import json_response
from headend.server.query import query_choice, query_whole
from headend.server.services import services

MULTIPART_SLACK = 64 * 1024  # the form's other fields and boundaries, beside the file


def caller_of(request: Request) -> Caller:
    principal = principal_of(request.scope)
    return Caller(principal.owner, admin=principal.key_id is not None and principal.has("admin"))


async def _capped(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request's body as it arrives, refused with a 413 once past ``limit`` bytes."""
    for name, value in request.scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")
    seen = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("The client closed the connection.")
        body: bytes = message.get("body", b"")
        seen += len(body)
        if seen > limit:
            raise PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _form(request: Request, limit: int) -> FormData:
    parser = MultiPartParser(request.headers, _capped(request, limit), max_files=1, max_fields=8)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body could not be read: {exc.message}") from None


async def create_file(request: Request) -> Response:
    found = services(request)
    limit = found.settings.knowledge.max_file_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "Upload a file as multipart/form-data with the fields 'file' and 'purpose'.",
            code="invalid_content_type",
        )
    form = await _form(request, limit + MULTIPART_SLACK)
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("Missing required parameter: 'file'.", param="file")
        if not isinstance(purpose, str) or purpose not in PURPOSES:
            raise InvalidRequest(
                f"'purpose' must be one of {', '.join(PURPOSES)}.", param="purpose"
            )
        seconds = _expires_seconds(
            form.get("expires_after[seconds]"), form.get("expires_after[anchor]")
        )
        upload.file.seek(0, 2)
        size = upload.file.tell()
        upload.file.seek(0)
        answer = await found.knowledge.upload(
            caller_of(request), upload.filename or "upload", purpose, upload.file, size, seconds
        )
    finally:
        await form.close()
    return json_response(answer)


def _expires_seconds(seconds: object, anchor: object) -> int | None:
    if seconds is None and anchor is None:
        return None
    if anchor != "created_at" or not isinstance(seconds, str) or not seconds.isdigit():
        raise InvalidRequest(
            "expires_after takes anchor 'created_at' and seconds, 3600 to 2592000.",
            param="expires_after",
        )
    value = int(seconds)
    if not 3600 <= value <= 2_592_000:
        raise InvalidRequest(
            "expires_after.seconds must be 3600 to 2592000.", param="expires_after.seconds"
        )
    return value


async def list_files(request: Request) -> Response:
    found = services(request)
    limit = query_whole(request, "limit", 1, 10_000) or 10_000
    order = query_choice(request, "order", ("asc", "desc")) or "desc"
    data, more = await found.knowledge.files(
        caller_of(request),
        request.query_params.get("purpose"),
        request.query_params.get("after"),
        limit,
        order,
    )
    return json_response(page(data, more))


async def retrieve_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    return json_response(await services(request).knowledge.file_json(caller_of(request), file_id))


async def delete_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    await services(request).knowledge.delete_file(caller_of(request), file_id)
    return json_response(deleted(file_id, "file"))


async def file_content(request: Request) -> Response:
    """The file's bytes, whatever its purpose: its owner uploaded them."""
    knowledge = services(request).knowledge
    record = await knowledge.file(caller_of(request), request.path_params["file_id"])

    async def body() -> AsyncIterator[bytes]:
        async for part in knowledge.store.file_bytes(record.id):
            yield part

    disposition = record.filename.replace('"', "").replace("\r", "").replace("\n", "")
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "content-length": str(record.bytes),
            "content-disposition": f'attachment; filename="{disposition}"',
        },
    )
