"""Every request/reply endpoint between services: its subject, what it takes and what it
answers. The serving service registers it (``Service.answer``), the asking one declares
it (``Service.asks``), and the AsyncAPI document is generated from both."""

from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from aiop.contracts import queries
from aiop.contracts.subjects import (
    AUTH_AUTHORIZE,
    AUTH_JWKS,
    AUTH_TOKEN,
    QUERY_REPORT,
    QUERY_WORKFLOW,
)

Req = TypeVar("Req", bound=msgspec.Struct)
Rep = TypeVar("Rep", bound=msgspec.Struct)


@dataclass(frozen=True)
class Endpoint(Generic[Req, Rep]):
    """``request``/``reply`` None means any JSON (the JWKS is a standard document)."""

    subject: str
    request: type[Req] | None
    reply: type[Rep] | None
    summary: str


GET_WORKFLOW = Endpoint(
    QUERY_WORKFLOW, queries.WorkflowQuery, queries.WorkflowView, "A workflow (404 if unknown)."
)
GET_REPORT = Endpoint(
    QUERY_REPORT, queries.WorkflowQuery, queries.WorkflowReport, "A summary (404 if unknown)."
)
JWKS = Endpoint[msgspec.Struct, msgspec.Struct](
    AUTH_JWKS, None, None, "The JWKS to verify tokens with."
)
ISSUE_TOKEN = Endpoint(
    AUTH_TOKEN, queries.TokenRequest, queries.TokenReply, "API key -> JWT (401 bad key)."
)
AUTHORIZE = Endpoint(
    AUTH_AUTHORIZE, queries.AuthorizeRequest, queries.AuthorizeReply, "May a principal act?"
)
LIST_KEYS = Endpoint(
    "aiop.auth.keys.list.v1", queries.KeysRequest, queries.ApiKeyList, "A principal's API keys."
)
ISSUE_KEY = Endpoint(
    "aiop.auth.keys.issue.v1", queries.KeysRequest, queries.IssuedKey, "One more API key."
)
REVOKE_KEY = Endpoint(
    "aiop.auth.keys.revoke.v1", queries.KeyRevocation, queries.ApiKeyView,
    "Revoke an API key (404 if the principal has no such key).",
)  # fmt: skip
ENDPOINTS = (
    GET_WORKFLOW, GET_REPORT, JWKS, ISSUE_TOKEN, AUTHORIZE, LIST_KEYS, ISSUE_KEY, REVOKE_KEY,
)  # fmt: skip
