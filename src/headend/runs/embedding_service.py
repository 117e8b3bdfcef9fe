"""Serving embeddings: ``model`` names a model route whose provider embeds (an
OpenAI-compatible upstream, or an embedded GGUF loaded for embeddings). Agents chat; they
do not embed. Keys' scopes, allowlists, rates and concurrency apply as they do to chat,
and the tokens are counted the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headend.access.principal import Principal
from headend.agents.registry import AgentRegistry
from headend.errors import InvalidRequest, ModelNotFound, UnsupportedValue
from headend.knowledge.embedder import BUILTIN_MODEL, MAX_TOKENS, Embedders, normalized
from headend.providers.base import ChatCall
from headend.providers.model_routes import RouteTable
from headend.providers.router import Router
from headend.runs.admission import Admission
from headend.runs.record import RunRecord
from headend.schemas.openai.embeddings_api import EmbeddingRequest, embedding_list
from headend.schemas.validation import validate
from headend.types import Json


class EmbeddingService:
    def __init__(
        self, agents: AgentRegistry, routes: RouteTable, router: Router, admission: Admission
    ) -> None:
        self.agents = agents
        self.routes = routes
        self.router = router
        self.admission = admission
        # the built-in model (knowledge's), served under its own name unless a route has it
        self.builtin: Embedders | None = None

    def builtin_name(self) -> str | None:
        """The built-in model's name on ``/v1/embeddings`` and ``/v1/models``, if served."""
        if self.builtin is None or self.routes.for_client(BUILTIN_MODEL) is not None:
            return None
        return BUILTIN_MODEL

    async def create(
        self, body: Any, context: RunRecord, principal: Principal
    ) -> tuple[Json, dict[str, str]]:
        """The answer and its headers (the key's rate limit state)."""
        request = validate(EmbeddingRequest, body)
        name = request.model
        if not principal.may_use(name):
            raise ModelNotFound(name)  # reported exactly as if it did not exist
        found = self.routes.for_client(name)
        if found is None and name == self.builtin_name():
            return await self._builtin(request, context, principal)
        if found is None:
            if self.agents.get(name) is not None:
                raise UnsupportedValue(
                    f"'{name}' is an agent; agents chat and do not embed. Name a model "
                    "route that serves embeddings.",
                    param="model",
                )
            raise ModelNotFound(name)
        context.model = name
        targets = self.router.embedding_targets(found)
        if not targets:
            raise UnsupportedValue(f"The model '{name}' does not serve embeddings.", param="model")
        ticket = await self.admission.admit(principal, name, None, context)
        ticket.price = self.router.price(targets[0])  # for a cost estimated without usage
        try:
            call = ChatCall(
                body=body,
                timer=context.timer,
                request_id=context.request_id,
                span=context.span,
                spend=ticket.spend,
            )
            answer, _target = await self.router.embed(targets, call)
            answer["model"] = name
            usage = answer.get("usage")
            tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
            if isinstance(tokens, int):
                ticket.usage = {"prompt_tokens": tokens, "completion_tokens": 0}
        finally:
            await self.admission.leave(ticket, lambda: _estimate(request))
        return answer, ticket.headers

    async def _builtin(
        self, request: EmbeddingRequest, context: RunRecord, principal: Principal
    ) -> tuple[Json, dict[str, str]]:
        """The built-in model's vectors: what knowledge's stores are embedded with, so a
        client may compare its own texts with them."""
        assert self.builtin is not None
        texts = request.inputs()
        if not all(isinstance(text, str) for text in texts):
            raise UnsupportedValue(
                f"'{BUILTIN_MODEL}' takes strings; token arrays are for models whose "
                "tokenizer the client knows.",
                param="input",
            )
        strings = [str(text) for text in texts]
        counts = [self.builtin.tokens.count(text) for text in strings]
        if max(counts, default=0) > MAX_TOKENS - 2:
            raise InvalidRequest(
                f"An input is {max(counts)} tokens; '{BUILTIN_MODEL}' reads at most "
                f"{MAX_TOKENS - 2}.",
                param="input",
                code="context_length_exceeded",
            )
        context.model = BUILTIN_MODEL
        ticket = await self.admission.admit(principal, BUILTIN_MODEL, None, context)
        try:
            vectors = await self.builtin.get(BUILTIN_MODEL).embed(strings)
            if request.dimensions is not None:
                vectors = normalized(vectors[:, : request.dimensions])
            ticket.usage = {"prompt_tokens": sum(counts), "completion_tokens": 0}
        finally:
            await self.admission.leave(ticket, lambda: sum(counts))
        answer = embedding_list(
            vectors.tolist(), BUILTIN_MODEL, sum(counts), request.encoding_format
        )
        return answer, ticket.headers

    def serves(self, name: str) -> bool:
        """Whether ``name`` is a model route that serves embeddings."""
        found = self.routes.for_client(name)
        return found is not None and bool(self.router.embedding_targets(found))

    async def vectors(self, name: str, texts: Sequence[str]) -> list[list[float]]:
        """The model route ``name``'s vectors for ``texts``, in order: how vector stores
        that name a route embed (no key's limits: the store's owner was admitted already)."""
        found = self.routes.for_client(name)
        targets = self.router.embedding_targets(found) if found is not None else ()
        if not targets:
            raise UnsupportedValue(f"The model '{name}' does not serve embeddings.", param="model")
        body: Json = {"model": name, "input": list(texts), "encoding_format": "float"}
        answer, _target = await self.router.embed(targets, ChatCall(body=body))
        data = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
        return [list(item["embedding"]) for item in data]


def _estimate(request: EmbeddingRequest) -> int:
    """Tokens charged when the model never said: about four characters a token."""
    return sum(
        len(given) // 4 + 1 if isinstance(given, str) else len(given) for given in request.inputs()
    )
