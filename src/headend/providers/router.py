"""Calls a route's targets in order with retries, backoff, timeouts and cooldown.

For each target: up to ``retry.attempts`` tries while failures are retryable (connection
errors, 408, 429, 5xx), waiting an exponential backoff with jitter or the upstream's
``Retry-After``. Then the next target. A provider whose requests failed
``cooldown.after_failures`` times in a row is skipped for ``cooldown.seconds`` while another
target can serve; when every target is cooling down they are tried anyway.

Each attempt is one model call, traced as a ``chat {model}`` span under the call's span.
Nothing is retried once a chunk has been handed to the caller: after the first chunk of a
stream, a failure is the caller's to report. A request the upstream rejects as invalid
(``UpstreamRejected``) is the client's to fix: it is neither retried nor counted against the
provider.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from headend.errors import (
    APIError,
    ProviderError,
    ProviderTimeout,
    UnsupportedValue,
    UpstreamFailure,
)
from headend.observability.genai import ModelCallRecord, model_span
from headend.observability.metrics import Metrics
from headend.pricing import FREE, Price
from headend.providers.base import ChatCall, Provider, embedder
from headend.providers.deadlines import Deadlines
from headend.providers.model_routes import Target
from headend.providers.resilience import Retry, backoff_delay
from headend.providers.startup import ProviderStartup
from headend.types import Batch, Json

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(slots=True)
class Health:
    consecutive_failures: int = 0
    cooling_until: float = 0.0


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        startup: ProviderStartup | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        self.providers = providers
        self.prices = dict(prices or {})  # by provider; the rest cost nothing
        self.startup = startup  # None: every provider is started already
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._health = {name: Health() for name in providers}
        self._deadlines = Deadlines()
        self.metrics = metrics or Metrics()
        for name in providers:
            self.metrics.cooling.labels(name).set(0)

    def cooling(self, provider: str) -> bool:
        health = self._health[provider]
        if health.cooling_until > self._clock():
            return True
        if health.cooling_until:  # the cooldown is over: say so once
            health.cooling_until = 0.0
            self.metrics.cooling.labels(provider).set(0)
        return False

    def price(self, target: Target) -> Price:
        """What the target's tokens cost: its alias's price, else its provider's, else 0."""
        return target.price or self.prices.get(target.provider) or FREE

    def _charge(self, call: ChatCall, target: Target, usage: object) -> None:
        if call.spend is not None and usage:
            call.spend.add(self.price(target), usage)

    def report_cooling(self) -> None:
        """Bring the cooldown gauges up to date (before a scrape: a cooldown ends by itself)."""
        for name in self.providers:
            self.cooling(name)

    def _order(self, targets: Sequence[Target]) -> list[Target]:
        ready = [target for target in targets if not self.cooling(target.provider)]
        return ready or list(targets)

    def _succeeded(self, provider: str) -> None:
        if self._health[provider].cooling_until:
            self.metrics.cooling.labels(provider).set(0)
        self._health[provider] = Health()

    def _failed(self, provider: str) -> None:
        health = self._health[provider]
        health.consecutive_failures += 1
        self.metrics.upstream_failures.labels(provider).inc()
        cooldown = self.providers[provider].resilience.cooldown
        if health.consecutive_failures >= cooldown.after_failures:
            health.cooling_until = self._clock() + cooldown.seconds
            self.metrics.cooling.labels(provider).set(1)
            log.warning(
                "provider %s failed %d times in a row; cooling down for %.0f s",
                provider,
                health.consecutive_failures,
                cooldown.seconds,
            )

    async def complete(self, targets: Sequence[Target], call: ChatCall) -> tuple[Json, Target]:
        async def attempt(provider: Provider, target_call: ChatCall) -> Json:
            timeout = provider.resilience.timeout
            try:
                async with self._deadlines.after(min(timeout.total, timeout.first_token)):
                    return await provider.complete(target_call)
            except TimeoutError:
                raise ProviderTimeout(
                    f"provider '{provider.name}' did not answer within "
                    f"{min(timeout.total, timeout.first_token):g} s"
                ) from None

        answer, target, record = await self._first_success(targets, call, attempt, "chat")
        self._charge(call, target, answer.get("usage"))
        record.answer(answer)
        record.end()
        return answer, target

    def embedding_targets(self, targets: Sequence[Target]) -> tuple[Target, ...]:
        """The targets whose provider embeds, in order."""
        return tuple(t for t in targets if embedder(self.providers[t.provider]) is not None)

    async def embed(self, targets: Sequence[Target], call: ChatCall) -> tuple[Json, Target]:
        """Embeddings from the first of ``targets`` that answers (see ``embedding_targets``)."""

        async def attempt(provider: Provider, target_call: ChatCall) -> Json:
            found = embedder(provider)
            if found is None:
                raise UnsupportedValue(
                    f"The provider '{provider.name}' does not serve embeddings.", param="model"
                )
            total = provider.resilience.timeout.total
            try:
                async with self._deadlines.after(total):
                    return await found.embed(target_call)
            except TimeoutError:
                raise ProviderTimeout(
                    f"provider '{provider.name}' did not answer within {total:g} s"
                ) from None

        answer, target, record = await self._first_success(targets, call, attempt, "embeddings")
        self._charge(call, target, answer.get("usage"))
        record.answer(answer)
        record.end()
        return answer, target

    async def stream(
        self, targets: Sequence[Target], call: ChatCall
    ) -> AsyncGenerator[Batch, None]:
        """Batches of the first target that produces one; retries happen only before it."""
        opened, target, record = await self._first_success(targets, call, self._open_stream, "chat")
        chunks = opened[1]
        batch: Batch | None = opened[0]
        provider = self.providers[target.provider]
        deadline = asyncio.get_running_loop().time() + provider.resilience.timeout.total
        try:
            while batch is not None:
                self._observe(batch, call, target, record)
                yield batch
                batch = await self._next_batch(chunks, provider, deadline)
        except BaseException as exc:
            record.span.fail(_error_type(exc))
            raise
        finally:
            record.end()
            await chunks.aclose()

    async def _open_stream(
        self, provider: Provider, call: ChatCall
    ) -> tuple[Batch, AsyncGenerator[Batch, None]]:
        """A provider's stream, opened: its first batch within the first-token timeout."""
        timeout = provider.resilience.timeout
        chunks = provider.stream(call)
        try:
            async with self._deadlines.after(min(timeout.total, timeout.first_token)):
                return await anext(chunks), chunks
        except TimeoutError:
            await chunks.aclose()
            raise ProviderTimeout(
                f"provider '{provider.name}' sent no first token within {timeout.first_token:g} s"
            ) from None
        except StopAsyncIteration:
            raise UpstreamFailure(
                f"provider '{provider.name}' ended the stream without a chunk", retryable=True
            ) from None
        except BaseException:
            await chunks.aclose()
            raise

    async def _next_batch(
        self, chunks: AsyncGenerator[Batch, None], provider: Provider, deadline: float
    ) -> Batch | None:
        """The stream's next batch before its total timeout; None once it has ended."""
        try:
            async with self._deadlines.at(deadline):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise ProviderTimeout(
                f"provider '{provider.name}' did not finish within "
                f"{provider.resilience.timeout.total:g} s"
            ) from None

    def _observe(
        self, batch: Batch, call: ChatCall, target: Target, record: ModelCallRecord
    ) -> None:
        """A batch into the model call's span (when it records) and the request's spend."""
        if record.span.recording:
            for one in batch:
                record.chunk(one)
        if call.spend is not None:
            for one in batch:
                self._charge(call, target, one.get("usage"))

    async def _first_success(
        self,
        targets: Sequence[Target],
        call: ChatCall,
        attempt: Callable[[Provider, ChatCall], Awaitable[T]],
        operation: str,
    ) -> tuple[T, Target, ModelCallRecord]:
        """The first attempt that succeeds, with what records its model call's span: each
        target in turn (those cooling down last), each as often as its retries allow."""
        failures: list[str] = []
        timed_out = True
        for target in self._order(targets):
            provider = self.providers[target.provider]
            retry = provider.resilience.retry
            for number in range(1, retry.attempts + 1):
                target_call = self._target_call(call, target, provider, operation)
                try:
                    result = await self._try(provider, target, target_call, attempt)
                except ProviderError as exc:
                    timed_out = timed_out and isinstance(exc, ProviderTimeout)
                    wait = self._after_failure(exc, target, number, retry, call.request_id)
                    if wait is None:
                        failures.append(f"{target}: {exc.message}")
                        break
                    await self._sleep(wait)
                    continue
                self.metrics.upstream_attempt(target.provider, True, number > 1)
                self._succeeded(target.provider)
                return result, target, ModelCallRecord(target_call.span)
        summary = "; ".join(failures)
        if timed_out:
            raise ProviderTimeout(f"Every upstream timed out: {summary}")
        raise ProviderError(f"Every upstream failed: {summary}")

    @staticmethod
    def _target_call(
        call: ChatCall, target: Target, provider: Provider, operation: str
    ) -> ChatCall:
        """The call as one target gets it: its model's name, under a span of its own."""
        span = model_span(
            call.span,
            operation,
            provider.name,
            provider.genai_system,
            provider.remote,
            target.model or provider.name,  # a route to a provider's default model
            call.body,
        )
        return ChatCall(
            body=call.body,
            model=target.model,
            timer=call.timer,
            request_id=call.request_id,
            span=span,
        )

    async def _try(
        self,
        provider: Provider,
        target: Target,
        call: ChatCall,
        attempt: Callable[[Provider, ChatCall], Awaitable[T]],
    ) -> T:
        """One attempt, once its provider has started; a failure ends its span."""
        try:
            if self.startup is not None:
                await self.startup.wait(target.provider, provider.resilience.timeout.first_token)
            return await attempt(provider, call)
        except BaseException as exc:
            call.span.fail(_error_type(exc), str(exc))
            call.span.end()
            raise

    def _after_failure(
        self, exc: ProviderError, target: Target, number: int, retry: Retry, request_id: str
    ) -> float | None:
        """A failed attempt counted and logged: seconds to wait before trying the target
        again, or None to move on (the provider then counts one more failure in a row)."""
        self.metrics.upstream_attempt(target.provider, False, number > 1)
        log.warning("request %s: %s attempt %d failed: %s", request_id, target, number, exc.message)
        wait = self._retry_wait(exc, retry, number)
        if wait is None:
            self._failed(target.provider)
        return wait

    def _retry_wait(self, exc: ProviderError, retry: Retry, number: int) -> float | None:
        """Seconds to wait before trying the same target again, or None to move on."""
        if not isinstance(exc, UpstreamFailure) or not exc.retryable or number >= retry.attempts:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= retry.max_retry_after else None
        return backoff_delay(retry, number, self._rng)


def _error_type(exc: BaseException) -> str:
    """A span's ``error.type``: the API error's code or type, else the exception's class."""
    if isinstance(exc, APIError):
        return exc.code or exc.type
    if isinstance(exc, GeneratorExit | asyncio.CancelledError):
        return "cancelled"
    return type(exc).__qualname__
