"""Delivering the outbox.

Every instance claims due deliveries, each held a little longer than an attempt may take
(so one that dies lets them go), POSTs each, signed, through the same address fence as
``http_fetch`` (loopback, private and metadata addresses refused unless the endpoint says
``allow_private``), and records what came of it. A 2xx delivers; anything else (a redirect
too, which is not followed) is tried again after ``backoff``, four times longer each time
up to an hour, until ``max_attempts``. At least once: an endpoint should use the
``webhook-id`` header to drop a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Sequence

import aiohttp
import orjson
from yarl import URL

from headend import __version__
from headend.config import WebhookSettings
from headend.observability.metrics import Metrics
from headend.proxies import proxy_for
from headend.store.base import DeliveryOutcome, Store, WebhookDelivery
from headend.tools.base import ToolError
from headend.tools.fence import Fence
from headend.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the outbox is read when nothing woke the sender
LEASE_MARGIN = 5.0  # a claim is held for the longest endpoint timeout and this, then freed
BATCH = 16
MAX_BACKOFF = 3600.0


class WebhookSender:
    def __init__(
        self, store: Store, endpoints: Sequence[WebhookSettings], metrics: Metrics
    ) -> None:
        self.store = store
        self.endpoints = {endpoint.url: endpoint for endpoint in endpoints}
        self.metrics = metrics
        self.holder = f"{os.getpid()}-{secrets.token_hex(6)}"
        # a claim outlives any attempt; after it, another instance may take the delivery
        self.lease = max((e.timeout for e in endpoints), default=0.0) + LEASE_MARGIN
        self._due = asyncio.Event()

    def wake(self) -> None:
        """Something was just added to the outbox: read it now, not at the next poll."""
        self._due.set()

    async def run(self) -> None:
        while True:
            self._due.clear()
            try:
                now = time.time()
                claimed = await self.store.claim_deliveries(
                    now, self.holder, now + self.lease, BATCH
                )
            except Exception:
                log.warning("webhooks: could not read the outbox", exc_info=True)
                claimed = []
            if claimed:
                await asyncio.gather(*(self.attempt(delivery) for delivery in claimed))
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._due.wait()

    async def attempt(self, delivery: WebhookDelivery) -> None:
        """One attempt, and its outcome recorded."""
        attempts = delivery.attempts + 1
        endpoint = self.endpoints.get(delivery.endpoint)
        code: int | None = None
        error: str | None
        if endpoint is None:
            status, error = "failed", "the endpoint is no longer in headend.yaml"
        else:
            code, error = await self._post(endpoint, delivery)
            if error is None:
                status = "delivered"
            elif attempts >= endpoint.max_attempts:
                status = "failed"
            else:
                status = "pending"
        wait = endpoint.backoff * 4 ** (attempts - 1) if endpoint is not None else 0.0
        outcome = DeliveryOutcome(
            status, attempts, time.time() + min(wait, MAX_BACKOFF), code, error
        )
        self.metrics.webhook_deliveries.labels("retry" if status == "pending" else status).inc()
        if error is not None:
            log.warning(
                "webhook %s to %s, attempt %d: %s",
                delivery.event_id,
                _where(delivery),
                attempts,
                error,
            )
        try:
            await self.store.record_delivery(delivery.id, self.holder, outcome)
        except Exception:  # the lease lapses and the delivery is tried again: at least once
            log.warning("webhooks: could not record delivery %s", delivery.id, exc_info=True)

    async def _post(
        self, endpoint: WebhookSettings, delivery: WebhookDelivery
    ) -> tuple[int | None, str | None]:
        """The endpoint's status and, unless it was a 2xx, why the attempt failed."""
        body = orjson.dumps(delivery.payload)
        headers = {
            "content-type": "application/json",
            "user-agent": f"headend/{__version__}",
            **signed_headers(endpoint.secret, delivery.event_id, int(time.time()), body),
        }
        host = (URL(endpoint.url).raw_host or "").lower()
        fence = Fence(frozenset({host}) if endpoint.allow_private else frozenset())
        timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
        try:
            target = fence.target(endpoint.url)
            proxy = proxy_for(str(target), None, os.environ)
            if proxy is not None:
                await fence.through(proxy, target)
            auth = (
                {"Proxy-Authorization": proxy.authorization}
                if proxy and proxy.authorization
                else None
            )
            async with (
                aiohttp.ClientSession(
                    connector=fence.connector(), trust_env=False, timeout=timeout
                ) as http,
                http.post(
                    target,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    proxy=proxy.url if proxy is not None else None,
                    proxy_headers=auth,
                ) as response,
            ):
                await response.content.read(65_536)  # what it says is not kept
                if 200 <= response.status < 300:
                    return response.status, None
                return response.status, f"HTTP {response.status}"
        except ToolError as exc:
            return None, str(exc)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.__cause__, ToolError):
                return None, str(exc.__cause__)
            return None, f"cannot connect: {exc.os_error}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, f"request failed: {type(exc).__name__}"


def _where(delivery: WebhookDelivery) -> str:
    """An endpoint as logs name it: scheme and host, not a path that may hold a token."""
    url = URL(delivery.endpoint)
    return f"{url.scheme}://{url.host}"
