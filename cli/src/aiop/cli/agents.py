"""``aiop agents ls|show``: the agents registered in one's projects (docs/agents.md), what
they offer, how busy they are and when they were last heard from."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from aiop.cli.common import JsonFlag, api_call

agents = typer.Typer(help="Agents: external workers that take agent steps.",
                     no_args_is_help=True)  # fmt: skip
COLUMNS = ("NAME", "ID", "PROJECT", "CAPABILITIES", "LOAD", "LAST HEARD")


@agents.command("ls")
def ls(
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project's (default: all yours).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The agents of your projects, by name."""
    found = api_call(lambda gw: gw.agents(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    if not found:
        typer.echo("no agents")
        return
    now = datetime.now(UTC)
    rows = [COLUMNS, *(_row(a, now) for a in found)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@agents.command("show")
def show(agent_id: str, as_json: JsonFlag = False) -> None:
    """One agent."""
    a = api_call(lambda gw: gw.agent(agent_id))
    if as_json:
        typer.echo(json.dumps(a))
        return
    now = datetime.now(UTC)
    for label, value in (
        ("name", a["name"]), ("id", a["agent_id"]), ("project", a["project"]),
        ("principal", a["principal"]), ("capabilities", ", ".join(a["capabilities"])),
        ("load", f"{a['load']}/{a['concurrency']}"),
        ("last heard", _heard(a, now)), ("registered", a["registered_at"]),
    ):  # fmt: skip
        typer.echo(f"{label:<13} {value}")


def _row(agent: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    return (agent["name"], agent["agent_id"], agent["project"], ",".join(agent["capabilities"]),
            f"{agent['load']}/{agent['concurrency']}", _heard(agent, now))  # fmt: skip


def _heard(agent: Mapping[str, Any], now: datetime) -> str:
    """How long ago the agent was last heard from; "stale" once longer than a live one."""
    seconds = max(0, int((now - datetime.fromisoformat(agent["last_heartbeat"])).total_seconds()))
    if seconds < 120:
        ago = f"{seconds}s ago"
    elif seconds < 7200:
        ago = f"{seconds // 60}m ago"
    else:
        ago = f"{seconds // 3600}h ago"
    return f"{ago} (stale)" if agent.get("stale") else ago
