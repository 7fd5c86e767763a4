"""``aiop schedules create|ls|show|rm|pause|resume``: cron schedules that start a
template, or a task of the project, on time."""

import json
from typing import Annotated, Any

import typer

from aiop.cli.client import ApiError
from aiop.cli.common import JsonFlag, api_call, fail, gateway
from aiop.cli.templates import parse_parameters

schedules = typer.Typer(help="Cron schedules: start a template or a task on time.",
                        no_args_is_help=True)  # fmt: skip
Project = Annotated[str, typer.Option("--project", help="The project.")]


@schedules.command("create")
def create(
    name: str,
    cron: Annotated[str, typer.Option(help="Five fields, or six with seconds last.")],
    template: Annotated[
        str | None, typer.Option(help="What it starts: NAME or NAME@VERSION.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Or a task of the project; -p go over its parameters.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter: key=value (repeat).")
    ] = None,
    timezone: Annotated[str, typer.Option(help="The IANA timezone the cron reads in.")] = "UTC",
    policy: Annotated[
        str, typer.Option(help="Ticks missed while down: skip (run the latest) or catch_up.")
    ] = "skip",
    catch_up_limit: Annotated[int, typer.Option(help="catch_up: at most this many.")] = 10,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Create schedule NAME: run TEMPLATE (or TASK) at every tick of CRON."""
    if (template is None) == (task is None):
        fail("give --template or --task, one of them", 2)
    gw = gateway()
    body: dict[str, Any] = {
        "name": name, "cron": cron, "timezone": timezone, "policy": policy,
        "catch_up_limit": catch_up_limit, "enabled": not paused,
    }  # fmt: skip
    body |= {"template": template} if template is not None else {"task": task}
    try:
        typed_by = template if task is None else gw.task(project, task).get("template")
        schema = gw.template(typed_by, project).get("parameters", {}) if typed_by else {}
        body["parameters"] = parse_parameters(param or [], schema)
        created = gw.schedules("POST", "", project, json=body)
    except ApiError as exc:
        fail(f"rejected: {exc}", 1 if exc.status == 404 else 2)
    if as_json:
        typer.echo(json.dumps(created))
    else:
        typer.echo(f"{name} created in {project}; next run {created.get('next_at', 'paused')}")


@schedules.command("ls")
def ls(project: Project = "default", as_json: JsonFlag = False) -> None:
    """The project's schedules and when each runs next."""
    found = api_call(lambda gw: gw.schedules("GET", "", project))["schedules"]
    if as_json:
        typer.echo(json.dumps(found))
        return
    for s in found:
        when = s.get("next_at", "paused")
        typer.echo(f"{s['name']:<24} {s['cron']:<18} {s['timezone']:<16} {_target(s):<20} {when}")


@schedules.command("show")
def show(name: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """One schedule with its latest ticks and the workflows they started."""
    s = api_call(lambda gw: gw.schedules("GET", f"/{name}", project))
    if as_json:
        typer.echo(json.dumps(s))
        return
    typer.echo(f"{s['name']}  {s['cron']} ({s['timezone']})  {_target(s)}  policy {s['policy']}")
    typer.echo(f"next run  {s.get('next_at', 'paused')}")
    if s.get("parameters"):
        typer.echo(
            "parameters  " + " ".join(f"{k}={json.dumps(v)}" for k, v in s["parameters"].items())
        )
    for t in s.get("ticks", []):
        what = t.get("workflow_id") or f"nothing: {t.get('error')}"
        typer.echo(f"  {t['tick']}  {what}  {t.get('state', '')}")


@schedules.command("rm")
def rm(name: str, project: Project = "default") -> None:
    """Delete a schedule: it runs no more (runs it started are kept)."""
    api_call(lambda gw: gw.schedules("DELETE", f"/{name}", project))
    typer.echo(f"{name} deleted from {project}")


@schedules.command("pause")
def pause(name: str, project: Project = "default") -> None:
    """Stop running it until resumed."""
    api_call(lambda gw: gw.schedules("POST", f"/{name}/pause", project))
    typer.echo(f"{name} paused")


@schedules.command("resume")
def resume(name: str, project: Project = "default") -> None:
    """Run it again from its next tick; ticks due while paused are not run."""
    s = api_call(lambda gw: gw.schedules("POST", f"/{name}/resume", project))
    typer.echo(f"{name} resumed; next run {s.get('next_at')}")


def _target(schedule: dict[str, Any]) -> str:
    """What a schedule starts: its template, or ``task NAME``."""
    return str(schedule["template"]) if schedule.get("template") else f"task {schedule['task']}"
