"""``aiop triggers create|ls|show|rm``: rules that start a template or a task when an
external event comes; ``aiop events ls|send``: the events that came, and sending one (a CloudEvent in
binary mode, as any system outside may)."""

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from aiop.cli.common import JsonFlag, api_call, fail

triggers = typer.Typer(help="Triggers: start a template or a task when an event comes.",
                       no_args_is_help=True)  # fmt: skip
events = typer.Typer(help="External events: what came and what it started; send one.",
                     no_args_is_help=True)  # fmt: skip
Project = Annotated[str, typer.Option("--project", help="The project.")]
Pairs = list[str] | None


@triggers.command("create")
def create(
    name: str,
    on: Annotated[str, typer.Option("--on", help="The event type; a trailing * takes a prefix.")],
    template: Annotated[
        str | None, typer.Option(help="What it starts: NAME or NAME@VERSION.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Or a task of the project; -p go over its parameters.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only events from this source.")] = None,
    where: Annotated[
        Pairs, typer.Option("--where", "-w", help="path=value the event's data must hold (repeat).")
    ] = None,
    param: Annotated[
        Pairs,
        typer.Option("--param", "-p", help="key=value, ${{ event.data.x }} allowed (repeat)."),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    disabled: Annotated[bool, typer.Option(help="Store it switched off.")] = False,
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Create trigger NAME (or replace the one of that name): run TEMPLATE (or TASK) for
    each event of type ON that holds every --where, with the --param values."""
    if (template is None) == (task is None):
        fail("give --template or --task, one of them", 2)
    target = {"template": template} if template is not None else {"task": task}
    body: dict[str, Any] = {
        "name": name, "event_type": on, "filter": pairs(where, "--where"),
        "target": {**target, "parameters": pairs(param, "-p")},
        "enabled": not disabled, "description": description,
    }  # fmt: skip
    if source is not None:
        body["source"] = source
    created, stored = api_call(lambda gw: gw.save_trigger(body, project))
    if as_json:
        typer.echo(json.dumps(stored))
    else:
        typer.echo(f"{name} {'created' if created else 'replaced'} in {project}")


@triggers.command("ls")
def ls(project: Project = "default", as_json: JsonFlag = False) -> None:
    """The project's triggers."""
    found = api_call(lambda gw: gw.trigger("GET", "", project))["triggers"]
    if as_json:
        typer.echo(json.dumps(found))
        return
    for t in found:
        state = "on" if t.get("enabled", True) else "off"
        typer.echo(f"{t['name']:<24} {state:<3} {t['event_type']:<32} -> {_target(t)}")


@triggers.command("show")
def show(name: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """One trigger: what it takes and what it starts."""
    t = api_call(lambda gw: gw.trigger("GET", name, project))
    if as_json:
        typer.echo(json.dumps(t))
        return
    typer.echo(
        f"{t['name']}  {'on' if t.get('enabled', True) else 'off'}  {t.get('description', '')}"
    )
    typer.echo(
        f"  on       {t['event_type']}" + (f" from {t['source']}" if t.get("source") else "")
    )
    for path, value in t.get("filter", {}).items():
        typer.echo(f"  where    {path} = {json.dumps(value)}")
    typer.echo(f"  starts   {_target(t)}")
    for key, value in t["target"].get("parameters", {}).items():
        typer.echo(f"  param    {key} = {json.dumps(value)}")


@triggers.command("rm")
def rm(name: str, project: Project = "default") -> None:
    """Delete a trigger: it starts nothing more."""
    api_call(lambda gw: gw.trigger("DELETE", name, project))
    typer.echo(f"{name} deleted from {project}")


@events.command("ls")
def events_ls(
    project: Project = "default",
    type: Annotated[str | None, typer.Option(help="Only this type; a trailing * a prefix.")] = None,
    matched: Annotated[
        bool | None,
        typer.Option("--matched/--unmatched", help="Only those some trigger took, or none."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Events the project received, newest first, with the workflows they started."""
    params: dict[str, Any] = {"project": project, "limit": limit}
    if type is not None:
        params["type"] = type
    if matched is not None:
        params["matched"] = str(matched).lower()
    page = api_call(lambda gw: gw.events(params))
    if as_json:
        typer.echo(json.dumps(page["events"]))
        return
    for e in page["events"]:
        started = ", ".join(_run(r) for r in e.get("runs", [])) or "no trigger matched"
        typer.echo(f"{e['received_at'][:19]}  {e['type']:<28} {e['id']:<20} {started}")


@events.command("send")
def send(
    type: Annotated[str, typer.Option(help="The event's type, e.g. com.example.push.")],
    source: Annotated[str, typer.Option(help="Who sends it, e.g. a URL.")] = "aiop-cli",
    id: Annotated[str | None, typer.Option(help="Its id; the same again is one event.")] = None,
    data: Annotated[str, typer.Option(help="JSON, or @FILE to read it from.")] = "{}",
    subject: Annotated[str | None, typer.Option(help="What it is about.")] = None,
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Send a CloudEvent to the gateway, as a system outside would."""
    text = _read(data[1:]) if data.startswith("@") else data
    try:
        json.loads(text)
    except ValueError:
        fail(f"--data is not JSON: {text[:80]!r}", 2)
    headers = {"ce-specversion": "1.0", "ce-id": id or uuid.uuid4().hex, "ce-source": source,
               "ce-type": type, "content-type": "application/json"}  # fmt: skip
    if subject:
        headers["ce-subject"] = subject
    sent = api_call(lambda gw: gw.send_event(headers, text.encode(), project))
    typer.echo(json.dumps(sent) if as_json else f"sent {sent['id']} to {sent['subject']}")


def pairs(given: Pairs, option: str) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (3, true, "x", [1]) is that value,
    anything else the text itself."""
    found: dict[str, Any] = {}
    for pair in given or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{option} {pair!r}: give key=value", 2)
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found


def _target(trigger: dict[str, Any]) -> str:
    """What a trigger starts: its template, or ``task NAME``."""
    target = trigger["target"]
    return str(target["template"]) if target.get("template") else f"task {target['task']}"


def _run(run: dict[str, Any]) -> str:
    if run.get("workflow_id"):
        return f"{run['trigger']} -> {run['workflow_id']}"
    return f"{run['trigger']}: {run.get('reason', 'not started')}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
