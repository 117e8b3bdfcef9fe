"""``GET /v1/models`` shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    version: int | None = None  # an agent's version; a model route has none (left out)

    @model_serializer(mode="wrap")
    def _without_no_version(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        shaped: dict[str, Any] = handler(self)
        if shaped.get("version") is None:
            shaped.pop("version", None)
        return shaped


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
