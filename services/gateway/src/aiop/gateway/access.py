"""What every route checks before it acts: a name is a subject token, the caller may act
in the project, and a workflow is one the caller may see. A project or workflow outside
the caller's token is not even named (404)."""

import msgspec

from aiop.contracts.endpoints import AUTHORIZE, GET_WORKFLOW
from aiop.contracts.queries import AuthorizeReply, AuthorizeRequest, WorkflowQuery, WorkflowView
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.gateway.adapters.tokens import Claims
from aiop.gateway.context import Gateway, upstream
from aiop.gateway.problems import Problem
from aiop.servicekit.rpc import QueryFailed

_view = msgspec.json.Decoder(WorkflowView)
_authorize = msgspec.json.Decoder(AuthorizeReply)


def checked(value: str, what: str, kind: str) -> str:
    """``value`` if it can be a subject token; a 400 problem of ``kind`` if not."""
    try:
        return check_token(value, what)
    except InvalidToken as exc:
        raise Problem(400, str(exc), kind=kind) from exc


def checked_workflow_id(workflow_id: str) -> str:
    return checked(workflow_id, "workflow id", "bad-workflow-id")


def workflow_not_found(workflow_id: str) -> Problem:
    return Problem(404, f"no workflow {workflow_id}", kind="not-found")


async def allow(gw: Gateway, principal: str, project: str, action: str) -> None:
    """Return if auth lets ``principal`` do ``action`` in ``project``; a 403 if not."""
    ask = AuthorizeRequest(principal=principal, project=project, action=action)
    key = (principal, project, ask.action)
    if gw.grants.allows(key):
        return
    try:
        decision = _authorize.decode(await gw.svc.ask(AUTHORIZE, ask))
    except QueryFailed as exc:
        raise upstream(exc, "auth") from exc
    if not decision.allowed:
        raise Problem(403, decision.reason or "not allowed", kind="forbidden")
    gw.grants.grant(key)


async def project_for(gw: Gateway, caller: Claims, project: str, action: str) -> str:
    """``project`` once the caller may do ``action`` in it."""
    checked(project, "project", "bad-project")
    if project not in caller.projects:
        raise Problem(404, f"no project {project}", kind="not-found")
    await allow(gw, caller.sub, project, action)
    return project


async def current_view(gw: Gateway, workflow_id: str) -> WorkflowView | None:
    """The workflow as last known: finished here, from task-manager, or just accepted."""
    if (finished := gw.finished.get(workflow_id)) is not None:
        return _view.decode(finished[1])
    try:
        reply: bytes | BaseException = await gw.svc.ask(
            GET_WORKFLOW, WorkflowQuery(workflow_id=workflow_id)
        )
    except QueryFailed as exc:
        reply = exc
    return resolve_view(gw, workflow_id, reply)


def resolve_view(
    gw: Gateway, workflow_id: str, reply: bytes | BaseException
) -> WorkflowView | None:
    """task-manager's view; for a 404, the one this gateway just accepted, if any."""
    if isinstance(reply, QueryFailed):
        if reply.code == 404:
            return gw.recent.view(workflow_id)
        raise upstream(reply, "task-manager")
    if isinstance(reply, BaseException):
        raise reply
    return _view.decode(reply)


async def visible_view(gw: Gateway, caller: Claims, workflow_id: str) -> WorkflowView:
    """The workflow, if the caller may see it; 400 or 404 if not."""
    view = await current_view(gw, checked_workflow_id(workflow_id))
    if view is None or view.project not in caller.projects:
        raise workflow_not_found(workflow_id)
    return view
