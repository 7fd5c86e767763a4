"""``aiop ls``: the runs of your projects, newest first, filtered like GET /v1/workflows;
``aiop rerun``: one of them again, from its failed step."""

import json
from typing import Annotated, Any

import typer

from aiop.cli.client import ApiError
from aiop.cli.common import JsonFlag, api_call, fail, gateway, parse_since, report_end
from aiop.cli.render import origin_text
from aiop.cli.templates import parse_parameters


def ls(
    project: Annotated[str | None, typer.Option(help="One project; default: all of yours.")] = None,
    task: Annotated[str | None, typer.Option(help="Runs of this task.")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Any of these states (repeat).")] = None,
    template: Annotated[str | None, typer.Option(help="NAME or NAME@VERSION.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, all must match (repeat).")] = None,
    since: Annotated[str | None, typer.Option(help="Created since: 30s, 5m, 2h, 1d or ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option(help="Created before: as --since.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Start after this cursor (from --json).")] = None,
    as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """List runs, newest first, with what started each one."""
    params: dict[str, Any] = {
        "project": project, "task": task, "state": state or [], "template": template,
        "label": label or [], "since": _iso(since), "until": _iso(until), "cursor": cursor,
    }  # fmt: skip
    runs: list[dict[str, Any]] = []
    next_cursor = cursor
    while len(runs) < limit:  # pages until the limit is reached or the runs run out
        params["cursor"], params["limit"] = next_cursor, min(limit - len(runs), 500)
        page = api_call(lambda gw: gw.workflows({k: v for k, v in params.items() if v}))
        runs += page["workflows"]
        next_cursor = page.get("next_cursor")
        if not next_cursor:
            break
    if as_json:
        typer.echo(json.dumps({"workflows": runs, "next_cursor": next_cursor}))
        return
    for run in runs:
        typer.echo(_line(run))
    if next_cursor:
        typer.echo(f"(more: --cursor {next_cursor})", err=True)


def _iso(value: str | None) -> str | None:
    when = parse_since(value)
    return when.isoformat() if when else None


def _line(run: dict[str, Any]) -> str:
    what = run.get("template") or run["name"]
    if run.get("task"):
        what = f"{run['task']} ({what})"
    return (
        f"{run['workflow_id']}  {run['created_at'][:19]}  {run['state']:<10} "
        f"{run['project']:<12} {origin_text(run['origin']):<20} {what}"
    )


def rerun(
    workflow_id: str,
    from_step: Annotated[str | None, typer.Option("--from", help="Rerun from this step; default: what failed.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="A changed parameter: key=value (repeat).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it ends; exit 0 only on success.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """Run a workflow again from its failed step (or --from STEP): the steps before it
    take the results the first run stored instead of running again."""
    gw = gateway()
    try:
        parameters: dict[str, Any] = {}
        if param:
            earlier = gw.status(workflow_id)
            template = earlier["template"]
            if not template:
                fail("-p applies to runs of a template; this run has none", 2)
            schema = gw.template(template, earlier["project"]).get("parameters", {})
            parameters = parse_parameters(param, schema)
        new_id = gw.rerun(workflow_id, from_step, parameters)
    except ApiError as exc:
        fail(f"cannot rerun: {exc}", 1 if exc.status == 404 else 2)
    report_end(gw, new_id, wait, timeout, as_json)
