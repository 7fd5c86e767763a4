"""RFC 9457 problem details for every error the gateway answers, FastAPI's own included."""

import re
from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"
BEARER = {"WWW-Authenticate": 'Bearer realm="aiop"'}


class Problem(Exception):
    """Raised anywhere in a request; the handler below turns it into the response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers
        self.extra = extra


def unauthorized(detail: str, error: str = "invalid_token") -> Problem:
    header = f'Bearer realm="aiop", error="{error}"' if error else BEARER["WWW-Authenticate"]
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": header})


def problem_body(
    status: int, detail: str, instance: str, kind: str | None = None, **extra: Any
) -> dict[str, Any]:
    # "about:blank" means: the status code says it all (RFC 9457, 4.2.1).
    return {
        "type": f"urn:aiop:problem:{kind}" if kind else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def problem_response(problem: Problem, instance: str) -> Response:
    body = problem_body(problem.status, problem.detail, instance, problem.kind, **problem.extra)
    return Response(
        msgspec.json.encode(body),
        status_code=problem.status,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """FastAPI's error list as JSON pointers, the same shape as a bad workflow body's."""
    return [
        {
            "pointer": "/" + "/".join(str(p) for p in err.get("loc", ())),
            "detail": err.get("msg", ""),
        }
        for err in exc.errors()
    ]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the API serves on ``path``, as its OpenAPI document lists them."""
    paths = app.openapi()["paths"]
    if path in paths:  # a fixed path wins over a template it also fits
        return sorted(method.upper() for method in paths[path])
    methods: set[str] = set()
    for template, operations in paths.items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # The router names the methods of the first route on the path only; a path
            # served by several routes (GET and POST /v1/keys) must name them all.
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        problem = Problem(exc.status_code, detail, headers=headers)
        return problem_response(problem, request.url.path)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problem = Problem(
            422, "the request is invalid", kind="validation", errors=validation_errors(exc)
        )
        return problem_response(problem, request.url.path)

    async def on_error(request: Request, exc: Exception) -> Response:
        problem = Problem(500, "internal error", kind="internal")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_error)
