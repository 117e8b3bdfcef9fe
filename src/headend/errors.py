"""The one error hierarchy of headend.

    HeadendError
    ├── ConfigError                 a config or agent file is wrong; names file and key
    ├── StartupError                the server could not start (a worker, a bug at start-up)
    └── APIError                    becomes an HTTP status and the OpenAI error envelope
        ├── InvalidRequest          400 invalid_request_error (param names the field)
        │   ├── UnsupportedValue    400, a valid value headend does not serve
        │   ├── SessionModelMismatch 400 a session continued with another agent or model
        │   └── UpstreamRejected    the upstream refused the request itself (its 4xx, relayed)
        ├── InvalidKey              401 invalid_api_key
        ├── InsufficientScope       403 insufficient_scope
        │   └── OriginNotAllowed    403 a publishable key's visitor from another site
        ├── NotFound                404 not_found_error
        │   ├── ModelNotFound       404 code model_not_found
        │   ├── SessionNotFound     404 code session_not_found
        │   └── ObjectNotFound      404 a file, vector store or batch (another key's too)
        ├── MethodNotAllowed        405
        │   └── UpgradeRequired     426 a WebSocket upgrade: headend speaks HTTP only
        ├── RequestTimeout          408 the request's head or body came too slowly
        ├── SessionBusy             409 session_busy
        ├── IdempotencyConflict     409 an Idempotency-Key still running, or with another body
        ├── AgentConflict           409 an agent id taken, or an agent its file defines
        ├── PayloadTooLarge         413
        ├── StorageQuotaExceeded    403 a key's files would pass its quota of files or bytes
        ├── HeadersTooLarge         431 too many or too large request headers
        ├── RateLimited             429 rate_limit_exceeded, with Retry-After
        ├── BudgetSpent             429 insufficient_quota: the key's budget for its period
        ├── ProviderError           502 a model provider failed
        │   ├── UpstreamFailure     502 one failed attempt; ``retryable`` says whether to try again
        │   └── ProviderTimeout     504
        ├── ServiceUnavailable      503 (shutting down, model not loaded)
        └── ClientDisconnected      499, never sent: the client is gone and the work stops

Messages about providers name the provider, never its key or its headers.

Anything else raised while serving is a bug: the server logs it and answers 500 with a
generic message, never the exception text.
"""

from __future__ import annotations

from typing import ClassVar


class HeadendError(Exception):
    """Root of every error headend raises on purpose."""


class ConfigError(HeadendError):
    """A configuration or agent file is invalid.

    ``problems`` holds one line per problem, each naming the file and the key.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StartupError(HeadendError):
    """The server could not start for a reason no config key names: a worker that exited
    before it served, an unexpected exception while starting (its traceback logged)."""


class LeaseLost(HeadendError):
    """A background run's claim has passed to another instance (this one was thought dead):
    what it would write is refused, and it stops without ending the run."""


class APIError(HeadendError):
    """An error that reaches the client as ``{"error": {message, type, param, code}}``."""

    status: int = 500
    type: str = "server_error"
    default_code: ClassVar[str | None] = None
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only default; instances set their own

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"


class UnsupportedValue(InvalidRequest):
    default_code = "unsupported_value"


class NotFound(APIError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist. GET /v1/models lists the agents and models "
            "this server offers.",
            param="model",
        )


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTimeout(APIError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class HeadersTooLarge(APIError):
    status = 431
    type = "invalid_request_error"
    default_code = "headers_too_large"


class UpgradeRequired(MethodNotAllowed):
    status = 426
    default_code = "upgrade_not_supported"
    headers = {"Connection": "close"}  # noqa: RUF012 - read-only


class ObjectNotFound(NotFound):
    """A file, vector store, vector store file or batch that does not exist, or is another
    key's: the two read the same."""

    type = "invalid_request_error"

    def __init__(self, kind: str, id: str, *, param: str | None = None) -> None:
        super().__init__(f"No {kind} found with id '{id}'.", param=param)


class StorageQuotaExceeded(APIError):
    status = 403
    type = "insufficient_quota"
    default_code = "storage_quota_exceeded"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class ProviderError(APIError):
    status = 502
    type = "api_error"
    default_code = "provider_error"


class UpstreamFailure(ProviderError):
    """One failed attempt at an upstream.

    ``retryable`` failures (connection errors, 408, 429, 5xx) may be tried again after
    ``retry_after`` seconds (the upstream's ``Retry-After``, when it sent one).
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    status = 504
    default_code = "provider_timeout"


class UpstreamRejected(InvalidRequest):
    """The upstream said the request itself is wrong (400, 413, 422): the client's to fix.

    Carries the upstream's status and its error fields so the client sees what it would have
    seen calling the upstream directly.
    """

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status


class ServiceUnavailable(APIError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"


class InvalidKey(APIError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class InsufficientScope(APIError):
    status = 403
    type = "invalid_request_error"
    default_code = "insufficient_scope"


class OriginNotAllowed(InsufficientScope):
    default_code = "origin_not_allowed"


class SessionNotFound(NotFound):
    default_code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No session '{session_id}'.", param="session_id")


class SessionModelMismatch(InvalidRequest):
    default_code = "session_model_mismatch"

    def __init__(self, session_id: str, owner_model: str) -> None:
        super().__init__(
            f"Session '{session_id}' belongs to '{owner_model}': continue it with "
            f'"model": "{owner_model}", or start a new session for another model.',
            param="model",
        )


class SessionBusy(APIError):
    status = 409
    type = "invalid_request_error"
    default_code = "session_busy"


class IdempotencyConflict(APIError):
    """An ``Idempotency-Key`` reused while its first request runs, or with another body."""

    status = 409
    type = "invalid_request_error"
    default_code = "idempotency_conflict"


class AgentConflict(APIError):
    """An agent change the API cannot make: the id is taken, or the agent is a file's."""

    status = 409
    type = "invalid_request_error"
    default_code = "agent_conflict"


class RateLimited(APIError):
    """Over a key's rate, or a concurrency queue is full or was waited on too long.

    ``kind`` is the error's type, as OpenAI's: ``requests``, ``tokens`` or ``concurrency``.
    """

    status = 429
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.type = kind
        self.headers = headers


class BudgetSpent(APIError):
    """The key spent its budget for the period: no retry helps until the period resets
    (``x-should-retry: false`` tells the OpenAI and Anthropic SDKs so)."""

    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"

    def __init__(self, message: str, *, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class ClientDisconnected(APIError):
    """The client left before the answer; nobody reads this, the server just stops."""

    status = 499
    type = "client_closed_request"
