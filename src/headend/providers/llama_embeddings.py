"""The embedded provider loaded for embeddings (``embeddings: true``): a GGUF in-process
that serves ``/v1/embeddings`` and nothing else, as llama.cpp's server ``--embeddings``.

Inputs are strings (tokenized with the model's own special tokens, e.g. BERT's CLS and
SEP) or token arrays; each must fit the context, which is capped at the length the model
was trained for. Requests take turns on the one context (see ``Encoder``), off the event
loop, tokenizing included; ``dimensions`` keeps a vector's first n values, normalized again
(as OpenAI's ``text-embedding-3`` models do).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable

from headend.config import Settings
from headend.errors import InvalidRequest, ServiceUnavailable, UnsupportedValue
from headend.providers.base import ChatCall, Resources
from headend.providers.llama_cpp import LlamaBase, LlamaCppConfig, context_params, load_model
from headend.providers.llama_encoder import Encoder, normalized
from headend.schemas.openai.embeddings_api import EmbeddingRequest, embedding_list
from headend.schemas.validation import validate
from headend.types import Batch, Json


class LlamaEmbeddingProvider(LlamaBase):
    chats = False  # an agent routed here is refused at start-up (agents.registry)

    def __init__(self, name: str, config: LlamaCppConfig, settings: Settings) -> None:
        super().__init__(name, config, settings)
        self._encoder: Encoder | None = None

    async def start(self, resources: Resources) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from llama_cpp._internals import LlamaContext

        config = self._config
        model = load_model(self._model_path, config)
        params = context_params(config)
        # A whole input is one micro-batch: non-causal models attend over all of it at once.
        params.n_ctx = params.n_batch = params.n_ubatch = min(config.n_ctx, model.n_ctx_train())
        params.embeddings = True
        self._model = model
        self._context = LlamaContext(model=model, params=params, verbose=False)
        self._encoder = Encoder(model, self._context, max_sequences=config.parallel, name=self.name)
        self.context_window = self._encoder.max_tokens

    async def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
        self._encoder = None
        self._free()

    def token_counter(self) -> Callable[[str], int] | None:
        model = self._model
        if model is None:
            return None
        return lambda text: len(model.tokenize(text.encode("utf-8"), True, False))

    def embeds(self) -> bool:
        return True

    async def embed(self, call: ChatCall) -> Json:
        encoder = self._encoder
        if encoder is None:
            raise ServiceUnavailable(f"the model of provider '{self.name}' is not loaded")
        request = validate(EmbeddingRequest, call.body)
        if request.dimensions is not None and request.dimensions > encoder.dimensions:
            raise InvalidRequest(
                f"'dimensions' is {request.dimensions}; this model's embeddings have "
                f"{encoder.dimensions}.",
                param="dimensions",
            )
        cancelled = threading.Event()
        try:
            vectors, tokens = await asyncio.to_thread(self._vectors, request, encoder, cancelled)
        finally:
            cancelled.set()  # a client gone mid-request stops the work at the next batch
        return embedding_list(vectors, call.model or self.name, tokens, request.encoding_format)

    def _vectors(
        self, request: EmbeddingRequest, encoder: Encoder, cancelled: threading.Event
    ) -> tuple[list[list[float]], int]:
        """Every input's vector, and the tokens they took; in a worker thread."""
        inputs = self._tokens(request, encoder.max_tokens)
        vectors = encoder.vectors(inputs, cancelled)
        if request.dimensions is not None:
            vectors = [normalized(vector[: request.dimensions]) for vector in vectors]
        return [vector.tolist() for vector in vectors], sum(len(tokens) for tokens in inputs)

    def _tokens(self, request: EmbeddingRequest, limit: int) -> list[list[int]]:
        n_vocab = self._model.n_vocab()
        out = []
        for index, given in enumerate(request.inputs()):
            if isinstance(given, str):
                tokens: list[int] = self._model.tokenize(given.encode("utf-8"), True, False)
            else:
                outside = next((t for t in given if not 0 <= t < n_vocab), None)
                if outside is not None:
                    raise InvalidRequest(
                        f"Input {index} holds token {outside}; this model has {n_vocab} tokens.",
                        param="input",
                    )
                tokens = given
            if len(tokens) > limit:
                raise InvalidRequest(
                    f"Input {index} takes {len(tokens)} tokens; this model embeds at most "
                    f"{limit} tokens per input.",
                    param="input",
                    code="context_length_exceeded",
                )
            out.append(tokens)
        return out

    async def complete(self, call: ChatCall) -> Json:
        raise self._no_chat()

    async def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        raise self._no_chat()
        yield []  # pragma: no cover - makes this an async generator

    def _no_chat(self) -> UnsupportedValue:
        return UnsupportedValue(
            f"The provider '{self.name}' is loaded for embeddings; it does not chat.",
            param="model",
        )
