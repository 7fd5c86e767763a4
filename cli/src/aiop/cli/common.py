"""What every command shares: failing with a message, the gateway client, waiting for a
workflow to end and saying how it ended."""

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer

from aiop.cli.client import ApiError, Gateway
from aiop.cli.render import status_lines
from aiop.cli.stack import NoPlatform
from aiop.client.types import WorkflowStatus
from aiop.contracts.patterns import start_time
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES as TERMINAL

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"aiop: {message}", err=True)
    raise typer.Exit(code)


def gateway() -> Gateway:
    try:
        return Gateway()
    except NoPlatform as exc:
        fail(str(exc), 3)
    except ApiError as exc:
        fail(f"cannot get a token: {exc}", 3)
    raise AssertionError("unreachable")


def api_call(call: Callable[[Gateway], Any]) -> Any:
    try:
        return call(gateway())
    except ApiError as exc:
        fail(str(exc), 1 if exc.status == 404 else 2)


def report_end(gw: Gateway, workflow_id: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Print the id; with ``wait``, wait for the end, print it and exit 0 only on success."""
    if not wait:
        typer.echo(json.dumps({"workflow_id": workflow_id}) if as_json else workflow_id)
        return
    if not as_json:
        typer.echo(f"submitted {workflow_id}")
    view = wait_for_end(gw, workflow_id, timeout, show=not as_json)
    if as_json:
        typer.echo(json.dumps(view))
    else:
        typer.echo("\n".join(status_lines(view)))
    if view["state"] not in TERMINAL:
        fail(f"still {view['state']} after {timeout:.0f}s", 124)
    raise typer.Exit(0 if view["state"] == "succeeded" else 1)


def wait_for_end(gw: Gateway, workflow_id: str, timeout: float, show: bool) -> WorkflowStatus:
    """Poll the gateway until the workflow is terminal or ``timeout`` passes. A terminal
    workflow shows no step pending or running: task-manager closes those out."""
    deadline = time.monotonic() + timeout
    last = ""
    delay = 0.02
    while True:
        view = gw.status(workflow_id)
        if show and view["state"] != last:
            typer.echo(f"  {datetime.now():%H:%M:%S}  {view['state']}", err=True)
            last = view["state"]
        if view["state"] in TERMINAL or time.monotonic() > deadline:
            return view
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def parse_since(value: str | None) -> datetime | None:
    """``30s``, ``5m``, ``2h``, ``1d`` ago, or an ISO 8601 time."""
    if value is None:
        return None
    try:
        return start_time(value)  # the gateway's tail (GET /v1/stream) reads it the same
    except ValueError:
        fail(f"--since {value!r}: use 30s, 5m, 2h, 1d or an ISO 8601 time", 2)
