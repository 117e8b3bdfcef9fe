"""How the embedded model's steps share out prompt reading, watched on the engine itself:
prompts that arrive together are read one at a time, and a long prompt joining running
answers is read in chunks between their tokens."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from headend.config import Settings
from headend.providers.llama_batch import SHARED_CHUNK, BatchEngine, Finished
from headend.providers.llama_cpp import LlamaCppConfig, LlamaCppProvider
from headend.providers.local_request import local_call


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    found = LlamaCppProvider("steps", LlamaCppConfig(n_ctx=2048, parallel=2), Settings())
    found._load()
    yield found
    asyncio.run(found.close())


class Log:
    """What the engine emitted, in order, tagged with whose it was."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def emitter(self, who: str) -> object:
        def emit(item: object) -> None:
            with self._lock:
                self.items.append((who, item))

        return emit

    def texts(self, who: str) -> int:
        with self._lock:
            return sum(1 for w, item in self.items if w == who and isinstance(item, str))

    def texts_before_first_of(self, who: str, other: str) -> int:
        """``who``'s texts emitted before ``other``'s first."""
        with self._lock:
            first = next(i for i, (w, _) in enumerate(self.items) if w == other)
            return sum(1 for w, item in self.items[:first] if w == who and isinstance(item, str))

    def wait(self, done: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(isinstance(item, Finished) for _, item in self.items) >= done:
                    return
            time.sleep(0.01)
        raise AssertionError(f"the engine did not finish: {self.items}")


def engine(provider: LlamaCppProvider) -> BatchEngine:
    assert provider._engine is not None
    return provider._engine


def sequence(provider: LlamaCppProvider, log: Log, who: str, question: str, tokens: int) -> object:
    body = {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": tokens,
        "temperature": 0,
    }
    request, _format = provider._sequence(local_call(body), log.emitter(who))  # type: ignore[arg-type]
    return request


def test_prompts_arriving_together_are_read_one_at_a_time(provider: LlamaCppProvider) -> None:
    log = Log()
    first = sequence(provider, log, "a", "Describe the sea at dawn in detail.", 16)
    second = sequence(provider, log, "b", "Describe a forest at night in detail.", 16)
    running = engine(provider)
    with running._wake:  # both wait before the worker's next look at the queue
        running.submit(first)  # type: ignore[arg-type]
        running.submit(second)  # type: ignore[arg-type]
    log.wait(2)
    # The second prompt was read in the step after the first's: by then the first had
    # answered a token and decoded its next one beside the second's prompt.
    assert log.texts_before_first_of("a", "b") >= 2


def test_a_long_prompt_joins_running_answers_in_chunks(provider: LlamaCppProvider) -> None:
    log = Log()
    running = engine(provider)
    running.submit(sequence(provider, log, "a", "Write a very long story about the sea.", 200))  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while log.texts("a") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    long_question = "Summarize this: " + "the tide comes in and the tide goes out. " * 60
    joining = sequence(provider, log, "b", long_question, 4)
    prompt = len(joining.prompt)  # type: ignore[attr-defined]
    assert prompt > 4 * SHARED_CHUNK + 64  # four chunks, whatever the cache held of it
    before = log.texts("a")
    running.submit(joining)  # type: ignore[arg-type]
    log.wait(2)
    # One running token a step while the long prompt is read SHARED_CHUNK at a time (read
    # whole, it would have held the running answer up for one long step).
    assert log.texts_before_first_of("a", "b") - before >= 4
