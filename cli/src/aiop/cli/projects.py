"""``aiop projects ...`` and ``aiop tasks ...``: projects, the tasks in them, and runs of
one task or of all of a project's tasks as a set."""

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from aiop.cli.client import ApiError, forget_token, new_token
from aiop.cli.common import JsonFlag, api_call, fail, gateway, report_end
from aiop.cli.stack import NoPlatform
from aiop.cli.templates import parse_parameters
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES as TERMINAL

projects = typer.Typer(help="Projects: create, list, show, archive, run all their tasks.",
                       no_args_is_help=True)  # fmt: skip
tasks = typer.Typer(help="Tasks: named work in a project (a template or a workflow).",
                    no_args_is_help=True)  # fmt: skip
Project = Annotated[str, typer.Option("--project", help="The project.")]
Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="A parameter: key=value (repeat).")
]
Wait = Annotated[bool, typer.Option(help="Wait until it ends; exit 0 only on success.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait with --wait.")]


@projects.command("create")
def projects_create(
    name: str,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a project; you are let into it (your next token names it)."""
    project = api_call(lambda gw: gw.create_project(name, description))
    forget_token()  # the cached token predates the project
    typer.echo(json.dumps(project) if as_json else f"project {project['name']} is ready")


@projects.command("ls")
def projects_ls(
    archived: Annotated[bool, typer.Option(help="Archived ones too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Your projects."""
    found = api_call(lambda gw: gw.projects(archived))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for p in found:
        archived_at = f"archived {p['archived_at'][:19]}" if p.get("archived_at") else ""
        typer.echo(f"{p['name']:<20} {p['tasks']:>3} tasks  {archived_at:<28} {p['description']}")


@projects.command("archive")
def projects_archive(name: str, as_json: JsonFlag = False) -> None:
    """Archive a project: its tasks, triggers and schedules start nothing new."""
    project = api_call(lambda gw: gw.archive_project(name))
    typer.echo(json.dumps(project) if as_json else f"project {name} archived")


@projects.command("run")
def projects_run(
    name: str, wait: Wait = False, timeout: Timeout = 900, as_json: JsonFlag = False
) -> None:
    """Run every task of the project as one set; with --wait, print the combined summary."""
    gw = gateway()
    try:
        started = gw.run_project(name)
        result = _wait_for_set(gw, name, started["set_id"], timeout) if wait else started
    except ApiError as exc:
        fail(str(exc), 1 if exc.status == 404 else 2)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"set {result['set_id']}: {result['state']}")
        for run in result["runs"]:
            typer.echo(f"  {run['task']:<20} {run.get('workflow_id') or run.get('error')}")
        for task, summary in (result.get("summary") or {}).items():
            for step, figures in summary.items():
                shown = "  ".join(f"{k}={json.dumps(v)}" for k, v in figures.items())
                typer.echo(f"summary   {task}/{step}: {shown}")
    if wait:
        raise typer.Exit(0 if result["state"] == "succeeded" else 1)


def _wait_for_set(gw: Any, project: str, set_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        result: dict[str, Any] = gw.project_run(project, set_id)
        if result["state"] in TERMINAL or time.monotonic() > deadline:
            return result
        time.sleep(0.5)  # polling the gateway, as `aiop run --wait` does


@tasks.command("create")
def tasks_create(
    name: str,
    template: Annotated[str | None, typer.Option(help="A template: NAME or NAME@VERSION.")] = None,
    workflow: Annotated[Path | None, typer.Option(help="A workflow file instead.")] = None,
    param: Params = None,
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Create or replace a task: a template with parameters, or a workflow file."""
    if (template is None) == (workflow is None):
        fail("give --template or --workflow", 2)
    body: dict[str, Any] = {"description": description}
    gw = gateway()
    try:
        if template is not None:
            schema = gw.template(template, project).get("parameters", {})
            body |= {"template": template, "parameters": parse_parameters(param or [], schema)}
        else:
            assert workflow is not None
            body["workflow"] = yaml.safe_load(workflow.read_text())
        created, task = gw.save_task(project, name, body)
    except ApiError as exc:
        fail(f"rejected: {exc}", 1 if exc.status == 404 else 2)
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read {workflow}: {exc}", 2)
    typer.echo(json.dumps(task) if as_json else
               f"task {project}/{name} {'created' if created else 'replaced'}")  # fmt: skip


@tasks.command("ls")
def tasks_ls(project: Project = "default", as_json: JsonFlag = False) -> None:
    """The project's tasks."""
    found = api_call(lambda gw: gw.tasks(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for t in found:
        what = t.get("template") or f"workflow {t['workflow']['name']}"
        typer.echo(f"{t['name']:<24} {what:<28} {t.get('description', '')}")


@tasks.command("show")
def tasks_show(name: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """A task and its latest runs."""
    task = api_call(lambda gw: gw.task(project, name))
    if as_json:
        typer.echo(json.dumps(task))
        return
    what = task.get("template") or f"workflow {task['workflow']['name']}"
    typer.echo(f"task {project}/{name}: {what}  {json.dumps(task.get('parameters') or {})}")
    for run in task["runs"]:
        typer.echo(f"  {run['workflow_id']}  {run['created_at'][:19]}  {run['state']}")


@tasks.command("run")
def tasks_run(
    name: str,
    param: Params = None,
    project: Project = "default",
    wait: Wait = False,
    timeout: Timeout = 600,
    as_json: JsonFlag = False,
) -> None:
    """Run a task, optionally with changed parameters."""
    gw = gateway()
    try:
        parameters: dict[str, Any] = {}
        if param:
            task = gw.task(project, name)
            if not task.get("template"):
                fail("-p applies to tasks of a template", 2)
            schema = gw.template(task["template"], project).get("parameters", {})
            parameters = parse_parameters(param, schema)
        workflow_id = gw.run_task(project, name, parameters)
    except ApiError as exc:
        fail(f"rejected: {exc}", 1 if exc.status == 404 else 2)
    report_end(gw, workflow_id, wait, timeout, as_json)


@tasks.command("rm")
def tasks_rm(name: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """Delete a task; its runs stay in the history."""
    task = api_call(lambda gw: gw.delete_task(project, name))
    typer.echo(json.dumps(task) if as_json else f"task {project}/{name} deleted")


def token(
    project: Annotated[
        list[str] | None, typer.Option("--project", help="Limit it to this project (repeat).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print an access token for the platform's API key, limited to some projects if
    asked: give it to a tool as AIOP_TOKEN (or as a bearer token)."""
    try:
        issued = new_token(project)
    except ApiError as exc:
        fail(str(exc), 2)
    except NoPlatform as exc:
        fail(str(exc), 3)
    typer.echo(json.dumps(issued) if as_json else issued["token"])
