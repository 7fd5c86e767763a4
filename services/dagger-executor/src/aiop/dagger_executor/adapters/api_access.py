"""Credentials for steps that call AIOP's API (``api: true``): the gateway's address and a
short-lived token auth signs for whoever submitted the workflow, limited to its project.
The token is handled as a secret: scrubbed from the step's output, never stored."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from aiop.contracts.queries import StepTokenRequest, TokenReply
from aiop.servicekit.rpc import QueryFailed

API_TOKEN = "AIOP_TOKEN"  # the variable the step finds its token in
# Long enough for a step without a timeout to finish its calls; auth caps it.
DEFAULT_TTL_S = 3600.0
_reply = msgspec.json.Decoder(TokenReply)


class NoApiAccess(Exception):
    """Why a step that calls the API gets no token; the step fails with it."""


@dataclass(frozen=True)
class ApiAccess:
    url: str  # the gateway, as steps reach it
    ask: Callable[[StepTokenRequest], Awaitable[bytes]]  # auth's STEP_TOKEN endpoint

    async def token(
        self, principal: str | None, project: str, workflow_id: str, timeout: float | None
    ) -> str:
        if principal is None:
            raise NoApiAccess("the workflow names no submitter to act as")
        ask = StepTokenRequest(principal=principal, project=project, workflow_id=workflow_id,
                               ttl_s=timeout + 60 if timeout else DEFAULT_TTL_S)  # fmt: skip
        try:
            return _reply.decode(await self.ask(ask)).token
        except QueryFailed as exc:
            raise NoApiAccess(f"no API token: {exc.description}") from exc
        except Exception as exc:  # auth away: the step fails and says so, others go on
            raise NoApiAccess(f"no API token: {exc!r}") from exc
