"""The AIOP Python client: the gateway's HTTP API, sync (``Client``) and async
(``AsyncClient``), with retries, idempotent submits, pagination, logs and events followed
over SSE, runs waited for, answers typed (``aiop.client.types``) and problem details as
typed exceptions. It needs only httpx."""

from aiop.client._async import AsyncClient
from aiop.client._core import Call, RetryPolicy
from aiop.client._sync import Client
from aiop.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Call",
    "Client",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
]
