"""``aiop webhooks add|ls|show|rm|enable|disable|deliveries|redeliver``: URLs a project's
workflow and step events are delivered to, signed (docs/webhooks.md)."""

import json
from typing import Annotated, Any

import typer

from aiop.cli.common import JsonFlag, api_call

webhooks = typer.Typer(help="Webhooks: deliver a project's events to a URL, signed.",
                       no_args_is_help=True)  # fmt: skip
Project = Annotated[str, typer.Option("--project", help="The project.")]


@webhooks.command("add")
def add(
    url: str,
    event: Annotated[
        list[str],
        typer.Option("--event", "-e", help="An event type, e.g. workflow.completed (repeat)."),
    ],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Deliver the project's events of each --event type to URL. Prints the secret to
    verify them with: it is shown this once."""
    made = api_call(lambda gw: gw.create_webhook(url, event, project, description))
    if as_json:
        typer.echo(json.dumps(made))
        return
    typer.echo(f"{made['id']} delivers {', '.join(made['events'])} to {made['url']}")
    typer.echo(f"secret {made['secret']}  (shown this once: keep it to verify deliveries)")


@webhooks.command("ls")
def ls(project: Project = "default", as_json: JsonFlag = False) -> None:
    """The project's webhooks."""
    found = api_call(lambda gw: gw.list_webhooks(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for hook in found:
        typer.echo(f"{hook['id']:<20} {_state(hook):<8} {hook['url']:<40} "
                   f"{','.join(hook['events'])}")  # fmt: skip


@webhooks.command("show")
def show(webhook_id: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """One webhook: where it delivers what, and whether it is disabled and why."""
    hook = api_call(lambda gw: gw.get_webhook(webhook_id, project))
    if as_json:
        typer.echo(json.dumps(hook))
        return
    _print(hook)


@webhooks.command("rm")
def rm(webhook_id: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """Delete a webhook: nothing more is delivered to it."""
    hook = api_call(lambda gw: gw.delete_webhook(webhook_id, project))
    typer.echo(json.dumps(hook) if as_json else f"{webhook_id} deleted from {project}")


@webhooks.command("enable")
def enable(webhook_id: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """Deliver again; a webhook disabled after failures starts its count over."""
    _switch(webhook_id, project, True, as_json)


@webhooks.command("disable")
def disable(webhook_id: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """Stop delivering; deliveries still pending are dropped."""
    _switch(webhook_id, project, False, as_json)


@webhooks.command("deliveries")
def deliveries(
    webhook_id: str,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    project: Project = "default",
    as_json: JsonFlag = False,
) -> None:
    """Its deliveries, newest first, and each attempt: when, the answer, how long."""
    found = api_call(lambda gw: gw.webhook_deliveries(webhook_id, project, limit))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for d in found:
        why = f"  {d['reason']}" if d.get("reason") else ""
        typer.echo(f"{d['id']}  {d['state']:<9} {d['event_type']:<20} {d['workflow_id']}{why}")
        for a in d.get("attempts", []):
            answer = a.get("error") or f"HTTP {a.get('status')}"
            typer.echo(f"    {a['at'][:19]}  {answer:<30} {a['duration_s'] * 1000:.0f} ms")


@webhooks.command("redeliver")
def redeliver(
    webhook_id: str, delivery_id: str, project: Project = "default", as_json: JsonFlag = False
) -> None:
    """Deliver a delivery again, under the same webhook-id."""
    again = api_call(lambda gw: gw.redeliver(webhook_id, delivery_id, project))
    typer.echo(json.dumps(again) if as_json else f"{delivery_id} queued again")


def _switch(webhook_id: str, project: str, on: bool, as_json: bool) -> None:
    hook = api_call(lambda gw: gw.update_webhook(webhook_id, {"enabled": on}, project))
    typer.echo(json.dumps(hook) if as_json else f"{webhook_id} {_state(hook)}")


def _state(hook: dict[str, Any]) -> str:
    return "enabled" if hook.get("enabled", True) else "disabled"


def _print(hook: dict[str, Any]) -> None:
    typer.echo(f"{hook['id']}  {_state(hook)}  {hook.get('description', '')}")
    typer.echo(f"  url      {hook['url']}")
    typer.echo(f"  events   {', '.join(hook['events'])}")
    if hook.get("disabled_reason"):
        typer.echo(f"  why      {hook['disabled_reason']}")
    if hook.get("failures"):
        typer.echo(f"  failures {hook['failures']} in a row")
