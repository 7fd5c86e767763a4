"""Problem-details answers (RFC 9457, ``application/problem+json``) as typed exceptions."""

import json
from typing import Any

import httpx


class ApiError(RuntimeError):
    """An error answer from the gateway; ``problem`` is its problem-details body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or "request failed"
        errors = problem.get("errors")
        if errors:
            detail += "".join(f"\n  - {e if isinstance(e, str) else json.dumps(e)}" for e in errors)
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "")

    @property
    def kind(self) -> str | None:
        """The last part of an ``urn:aiop:problem:KIND`` type, if it has one."""
        kind = str(self.problem.get("type", ""))
        return kind.rsplit(":", 1)[-1] if kind.startswith("urn:aiop:problem:") else None

    @property
    def errors(self) -> list[Any]:
        """Each problem with the request (``{"pointer": ..., "detail": ...}``), if listed."""
        return list(self.problem.get("errors") or [])


class BadRequest(ApiError):
    """400"""


class Unauthorized(ApiError):
    """401: no token, or one that is invalid or expired; or an unknown API key."""


class Forbidden(ApiError):
    """403: the principal may not do this (in this project)."""


class NotFound(ApiError):
    """404"""


class Conflict(ApiError):
    """409: for instance a template version registered with other content."""


class Invalid(ApiError):
    """422: the body or the parameters are refused; ``errors`` says where and why."""


class RateLimited(ApiError):
    """429, still after the client's retries."""


class Unavailable(ApiError):
    """503, still after the client's retries."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: RateLimited,
    503: Unavailable,
}


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem-details body of an error answer (made up from the text if it has none)."""
    try:
        body = response.json()
        return body if isinstance(body, dict) else {"detail": str(body)}
    except ValueError:
        return {"detail": response.text[:500] or response.reason_phrase}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error answer (its body must have been read)."""
    cls = BY_STATUS.get(response.status_code, ApiError)
    return cls(response.status_code, problem_of(response))
