"""PUT, GET and DELETE /v1/secrets: a project's secrets, stored sealed, never shown.

The gateway seals each value to the executors' public key (``aiop.contracts.secrets``)
and keeps it in KV ``aiop_secrets`` under ``<project>.<name>``; it holds no key to open
one, and no answer carries a value. A project outside the caller's token is not even
named (404), as its workflows are not.
"""

from typing import Annotated

import msgspec
import nats.js.errors
from fastapi import APIRouter, Depends, Request
from nats.js.kv import KeyValue
from starlette.responses import Response

from aiop.contracts.events import now
from aiop.contracts.secrets import (
    DEFAULT_PROJECT,
    MAX_SECRET_BYTES,
    SecretList,
    SecretValue,
    StoredSecret,
    decode_stored,
    encode_stored,
    key_id,
    seal,
    secret_key,
    view_of,
)
from aiop.gateway.access import checked, project_for
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, authenticated, read_body
from aiop.gateway.openapi import BEARER, json_body, json_reply, problems
from aiop.gateway.problems import Problem
from aiop.servicekit.kv import current_values

JSON = "application/json"
WRITE_ATTEMPTS = 5  # a write that loses a race with another one on the same name is retried
_value = msgspec.json.Decoder(SecretValue)


def router(gw: Gateway) -> APIRouter:
    api = APIRouter(prefix="/v1/secrets")
    Caller = Annotated[Claims, Depends(authenticated(gw))]

    @api.put(
        "/{name}",
        responses={
            201: json_reply("SecretView", "Stored, sealed; its value is never shown again"),
            200: json_reply("SecretView", "Replaced, sealed; its value is never shown again"),
            **problems(400, 401, 403, 404, 413, 415, 422, 429, 431, 503),
        },
        openapi_extra={**json_body("SecretValue"), **BEARER},
    )  # fmt: skip
    async def put_secret(
        name: str, request: Request, caller: Caller, project: str = DEFAULT_PROJECT
    ) -> Response:
        name, project = (
            checked(name, "secret name", "bad-secret-name"),
            await project_for(gw, caller, project, "secret:write"),
        )
        value = await _read_value(gw, request)
        kv, public = _bucket(gw), gw.sealing_key
        if public is None:
            raise Problem(503, "this gateway has no key to seal secrets with"
                          " (AIOP_SECRETS_PUBLIC_KEY_FILE)", kind="unavailable")  # fmt: skip
        key = secret_key(project, name)
        sealed = seal(public, value.encode(), key.encode())
        for _ in range(WRITE_ATTEMPTS):
            current = await _current(kv, key)
            at = now()
            stored = StoredSecret(
                name=name, project=project, key_id=key_id(public), sealed=sealed,
                created_at=current[0].created_at if current else at, updated_at=at,
            )  # fmt: skip
            try:
                if current is None:
                    await kv.create(key, encode_stored(stored))
                else:
                    await kv.update(key, encode_stored(stored), last=current[1])
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # written meanwhile: take that one as the current value
            except Exception as exc:
                raise _unavailable("store the secret", exc) from exc
            body = msgspec.json.encode(view_of(stored))
            return Response(body, 201 if current is None else 200, media_type=JSON)
        raise Problem(503, f"secret {name} is being written by others; try again",
                      kind="unavailable")  # fmt: skip

    @api.get(
        "",
        responses={
            200: json_reply("SecretList", "The project's secrets: names and times, no values"),
            **problems(400, 401, 403, 404, 429, 431, 503),
        },
        openapi_extra=BEARER,
    )
    async def list_secrets(caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        project = await project_for(gw, caller, project, "secret:read")
        kv = _bucket(gw)
        try:
            found = await _stored_in(kv, project)
        except Exception as exc:
            raise _unavailable("list the secrets", exc) from exc
        views = sorted((view_of(s) for s in found), key=lambda v: v.name)
        return Response(
            msgspec.json.encode(SecretList(project=project, secrets=views)), media_type=JSON
        )

    @api.delete(
        "/{name}",
        responses={
            200: json_reply("SecretView", "Deleted: steps that name it no longer get it"),
            **problems(400, 401, 403, 404, 429, 431, 503),
        },
        openapi_extra=BEARER,
    )
    async def delete_secret(name: str, caller: Caller, project: str = DEFAULT_PROJECT) -> Response:
        name, project = (
            checked(name, "secret name", "bad-secret-name"),
            await project_for(gw, caller, project, "secret:write"),
        )
        kv = _bucket(gw)
        key = secret_key(project, name)
        current = await _current(kv, key)
        if current is None:
            raise _not_found(name, project)
        try:
            await kv.purge(key)  # the sealed value goes with all its revisions
        except Exception as exc:
            raise _unavailable("delete the secret", exc) from exc
        return Response(msgspec.json.encode(view_of(current[0])), media_type=JSON)

    return api


async def _read_value(gw: Gateway, request: Request) -> str:
    """The value in the body; no error message repeats any of it."""
    body = await read_body(request, gw.max_body_bytes)
    try:
        value = _value.decode(body).value
    except msgspec.ValidationError as exc:
        raise Problem(422, f"the body must be {{\"value\": \"...\"}}: {exc}",
                      kind="validation") from None  # fmt: skip
    except msgspec.DecodeError:
        raise Problem(400, "the body is not JSON", kind="malformed") from None
    if not value:
        raise Problem(422, "the value is empty", kind="validation")
    if "\x00" in value:  # an environment variable cannot hold it: the step could not start
        raise Problem(422, "the value holds a NUL character", kind="validation")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise Problem(422, f"the value is larger than {MAX_SECRET_BYTES} bytes", kind="too-large")
    return value


def _bucket(gw: Gateway) -> KeyValue:
    if gw.secrets is None:
        raise Problem(503, "the gateway is not connected to the bus yet", kind="unavailable")
    return gw.secrets


async def _current(kv: KeyValue, key: str) -> tuple[StoredSecret, int] | None:
    """The stored secret under ``key`` and its revision, if there is one."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    except Exception as exc:
        raise _unavailable("read the secret", exc) from exc
    if not entry.value or entry.revision is None:
        return None
    return decode_stored(entry.value), entry.revision


async def _stored_in(kv: KeyValue, project: str) -> list[StoredSecret]:
    """Every secret of ``project``, as stored now."""
    return [decode_stored(value) for value in await current_values(kv, f"{project}.*")]


def _not_found(name: str, project: str) -> Problem:
    return Problem(404, f"no secret {name} in project {project}", kind="not-found")


def _unavailable(what: str, exc: Exception) -> Problem:
    # The exception is about the bus, never the value: values are sealed before any I/O.
    return Problem(503, f"cannot {what}: {type(exc).__name__}", kind="unavailable")
