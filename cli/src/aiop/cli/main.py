"""``aiop``: one command line for people and scripts. Every data command takes ``--json``."""

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from aiop.cli import history
from aiop.cli.agents import agents
from aiop.cli.client import ApiError
from aiop.cli.common import (
    JsonFlag,
    api_call,
    fail,
    gateway,
    parse_since,
    report_end,
    wait_for_end,
)
from aiop.cli.dlq import dlq
from aiop.cli.executors import executors
from aiop.cli.mcp import mcp
from aiop.cli.projects import projects, tasks, token
from aiop.cli.render import status_lines
from aiop.cli.schedules import schedules
from aiop.cli.stack import NoPlatform, load_stack, nats_seed_file, nats_url
from aiop.cli.templates import run_template, templates
from aiop.cli.triggers import events as external_events
from aiop.cli.triggers import triggers
from aiop.cli.webhooks import webhooks
from aiop.contracts.states import TERMINAL_WORKFLOW_STATES as TERMINAL
from aiop.contracts.subjects import InvalidToken, check_token

app = typer.Typer(help="AIOP, the AI Orchestration Platform.", no_args_is_help=True)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Gateway port (a free one if taken).")] = 8080,
) -> None:
    """Start the whole platform here: NATS, PostgreSQL and the six services."""
    from aiop.cli.up import run_stack

    def say(line: str) -> None:
        typer.echo(line, err=line.startswith("[crash]"))

    raise typer.Exit(asyncio.run(run_stack(Path.cwd(), port, say)))


def load_workflow(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid YAML: {exc}", 2)
    if not isinstance(data, dict):
        fail(f"{path} must hold a mapping with name and steps", 2)
    return data


@app.command()
def submit(
    file: Path,
    wait: Annotated[bool, typer.Option(help="Wait until it ends; exit 0 only on success.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submit at most once per key.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit the workflow in FILE (YAML or JSON)."""
    gw = gateway()
    try:
        workflow_id = gw.submit(load_workflow(file), idempotency_key)
    except ApiError as exc:
        fail(f"rejected: {exc}", 2)
    report_end(gw, workflow_id, wait, timeout, as_json)


app.command("run")(run_template)
app.command("ls")(history.ls)
app.command("rerun")(history.rerun)
app.add_typer(projects, name="projects")
app.add_typer(tasks, name="tasks")
app.command("token")(token)
app.command("mcp")(mcp)
app.add_typer(templates, name="templates")
app.add_typer(schedules, name="schedules")
app.add_typer(triggers, name="triggers")
app.add_typer(external_events, name="events")
app.add_typer(webhooks, name="webhooks")
app.add_typer(agents, name="agents")
app.add_typer(dlq, name="dlq")
app.command("executors")(executors)


@app.command()
def status(workflow_id: str, as_json: JsonFlag = False) -> None:
    """Show a workflow's state and each step's state, exit code, timing and output tail."""
    try:
        view = gateway().status(workflow_id)
    except ApiError as exc:
        fail(str(exc), 1 if exc.status == 404 else 2)
    typer.echo(json.dumps(view) if as_json else "\n".join(status_lines(view)))


@app.command()
def cancel(
    workflow_id: str,
    wait: Annotated[bool, typer.Option(help="Wait until it has ended.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 60,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a workflow: its running steps are stopped, the rest never start, and it ends
    cancelled. Cancelling one that has already ended changes nothing."""
    gw = gateway()
    try:
        reply = gw.cancel(workflow_id)
    except ApiError as exc:
        fail(str(exc), 1 if exc.status == 404 else 2)
    if wait and reply["state"] not in TERMINAL:
        view = wait_for_end(gw, workflow_id, timeout, show=False)
        reply = {**reply, "state": view["state"]}
    typer.echo(json.dumps(reply) if as_json else f"{workflow_id}: {reply['detail']}"
               + (f" (now {reply['state']})" if wait else ""))  # fmt: skip
    if wait and reply["state"] not in TERMINAL:
        fail(f"still {reply['state']} after {timeout:.0f}s", 124)


@contextlib.contextmanager
def reader_gone() -> Iterator[None]:
    """End quietly when whoever reads the output has gone (``aiop tail | head``)."""
    try:
        yield
    except* BrokenPipeError:
        # Python flushes stdout again at exit; point it at nothing so that is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@app.command()
def tail(
    subjects: Annotated[
        list[str] | None, typer.Argument(help="Subject patterns, e.g. 'aiop.step.>'")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's events.")] = None,
    since: Annotated[str | None, typer.Option(help="Replay from 5m ago, or an ISO time.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay from the start of the streams.")
    ] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    idle: Annotated[float | None, typer.Option(help="Stop after this many quiet seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the live event stream, one line per event (time, type, workflow, summary)."""
    from aiop.cli.tail import tail as run_tail

    patterns = subjects or [
        "aiop.workflow.>", "aiop.step.>", "aiop.executor.circuit.>", "aiop.dlq.>",
    ]  # fmt: skip
    try:
        url = nats_url()
        if workflow is not None:
            check_token(workflow, "workflow id")
    except NoPlatform as exc:
        fail(str(exc), 3)
    except InvalidToken as exc:
        fail(str(exc), 2)

    def emit(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt), reader_gone():
        asyncio.run(
            run_tail(
                url, patterns, workflow, parse_since(since), all_, count, idle, emit, as_json,
                seed_file=nats_seed_file(),
            )
        )  # fmt: skip


@app.command()
def logs(
    workflow_id: str,
    step: Annotated[str | None, typer.Option("--step", help="Only this step's output.")] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Print output as it comes, until the end.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print a workflow's step output; with -f, follow it live until the workflow ends."""
    from aiop.cli.render import log_line

    gw = gateway()
    try:
        if not follow:
            for stored in gw.logs(workflow_id, step)["entries"]:
                typer.echo(json.dumps(stored) if as_json else log_line(stored), nl=as_json)
            return
        with contextlib.suppress(KeyboardInterrupt), reader_gone():
            for entry in gw.follow_logs(workflow_id, step):
                if "end" in entry:
                    if not as_json:
                        typer.echo(f"[aiop] workflow {workflow_id} ended {entry['end']}", err=True)
                    return
                typer.echo(json.dumps(entry) if as_json else log_line(entry), nl=as_json)
    except ApiError as exc:
        fail(str(exc), 1 if exc.status == 404 else 2)


@app.command("bus-config")
def bus_config(
    folder: Path,
    host: Annotated[
        list[str] | None, typer.Option(help="A name the NATS servers answer to (repeat).")
    ] = None,
    owner: Annotated[
        int | None, typer.Option(help="Give the files to this uid (the containers' user).")
    ] = None,
) -> None:
    """Write the bus configuration of a deployment: identities, grants and TLS."""
    from aiop.cli.busconfig import HOSTS, write_bus_config

    names = write_bus_config(folder, host or HOSTS, owner)
    typer.echo(f"wrote {folder}: auth.conf, TLS for {', '.join(host or HOSTS)}, identities,"
               " the secrets' key pair (keep secrets-key.pem: stored secrets open with it only)")  # fmt: skip
    typer.echo("  " + " ".join(names))


keys = typer.Typer(help="Your API keys: list, issue, revoke.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("ls")
def keys_ls(as_json: JsonFlag = False) -> None:
    """List your API keys (ids and dates; a key itself is shown only when issued)."""
    found = api_call(lambda gw: gw.keys())
    if as_json:
        typer.echo(json.dumps(found))
        return
    for key in found:
        state = f"revoked {key['revoked_at']}" if key.get("revoked_at") else "active"
        typer.echo(f"{key['key_id']}  created {key['created_at']}  {state}")


@keys.command("new")
def keys_new(as_json: JsonFlag = False) -> None:
    """Issue one more API key for you; it is shown this once."""
    issued = api_call(lambda gw: gw.new_key())
    typer.echo(json.dumps(issued) if as_json else f"{issued['key_id']}  {issued['api_key']}")


@keys.command("revoke")
def keys_revoke(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke one of your API keys: it gets no more tokens (those it got expire soon)."""
    revoked = api_call(lambda gw: gw.revoke_key(key_id))
    typer.echo(json.dumps(revoked) if as_json else f"{key_id} revoked {revoked['revoked_at']}")


secrets = typer.Typer(
    help="A project's secrets: steps get them as environment variables; values are never shown.",
    no_args_is_help=True,
)
app.add_typer(secrets, name="secrets")
SecretProject = Annotated[str, typer.Option("--project", "-p", help="The project.")]


def _secret_name(name: str) -> str:
    try:
        return check_token(name, "secret name")
    except InvalidToken as exc:
        fail(str(exc), 2)


def read_secret_value(name: str) -> str:
    """The value from stdin, never from the command line (where `ps` and shell history
    would keep it): typed without echo on a terminal, else all of stdin, one trailing
    newline dropped (``echo "$TOKEN" | aiop secrets set NAME``)."""
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value of {name} (not shown): ")
    else:
        value = sys.stdin.read()
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        fail("the value is empty: give it on stdin", 2)
    return value


@secrets.command("set")
def secrets_set(name: str, project: SecretProject = "default", as_json: JsonFlag = False) -> None:
    """Store secret NAME in a project, its value read from stdin; replaces one of that name.
    Steps that list NAME under `secrets:` get it as the environment variable NAME."""
    value = read_secret_value(_secret_name(name))
    created, stored = api_call(lambda gw: gw.set_secret(name, value, project))
    if as_json:
        typer.echo(json.dumps(stored))
    else:
        typer.echo(f"{name} {'stored' if created else 'replaced'} in project {project}")


@secrets.command("ls")
def secrets_ls(project: SecretProject = "default", as_json: JsonFlag = False) -> None:
    """List a project's secrets: names and when they were set, never values."""
    found = api_call(lambda gw: gw.secrets(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for secret in found:
        typer.echo(f"{secret['name']}  created {secret['created_at']}"
                   f"  updated {secret['updated_at']}")  # fmt: skip


@secrets.command("rm")
def secrets_rm(name: str, project: SecretProject = "default", as_json: JsonFlag = False) -> None:
    """Delete secret NAME of a project: steps that name it fail from then on."""
    removed = api_call(lambda gw: gw.delete_secret(_secret_name(name), project))
    typer.echo(json.dumps(removed) if as_json else f"{name} deleted from project {project}")


@app.command()
def trace(workflow_id: str, as_json: JsonFlag = False) -> None:
    """Print the workflow's span tree: one trace across the services it went through."""
    from aiop.cli.trace import load_spans, service_of, tree_lines

    try:
        view = gateway().status(workflow_id)
    except ApiError as exc:
        fail(str(exc), 1)
    trace_id = view.get("trace_id")
    stack = load_stack()
    if not trace_id:
        fail("this workflow has no trace id yet", 1)
    if stack is None:
        fail(
            "spans are read from the embedded stack's .aiop/traces; with a remote "
            "platform, look the trace id up in your OTLP backend: " + str(trace_id),
            1,
        )
    spans = load_spans(Path(stack.trace_dir), str(trace_id))
    if as_json:
        typer.echo(json.dumps({"trace_id": trace_id, "spans": spans}))
        return
    services = sorted({service_of(s) for s in spans})
    typer.echo(
        f"trace {trace_id}: {len(spans)} spans from {len(services)} services ({', '.join(services)})"
    )
    typer.echo("\n".join(tree_lines(spans)))


if __name__ == "__main__":
    app()


cache = typer.Typer(help="The step cache: list, remove and prune results.", no_args_is_help=True)
app.add_typer(cache, name="cache")
ProjectOption = Annotated[
    str | None, typer.Option("--project", help="One project; default: all of yours.")
]


@cache.command("ls")
def cache_ls(project: ProjectOption = None, as_json: JsonFlag = False) -> None:
    """List cached step results, oldest first, with the size of their outputs."""
    found = api_call(lambda gw: gw.cache_entries(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for e in found["entries"]:
        size = f"{e.get('outputs_size', 0):>10,} B"
        typer.echo(f"{e['key'][:16]}  {e['project']:<12} {e['step']:<20} {size}  "
                   f"{e['created_at']}  from {e['workflow_id']}")  # fmt: skip
    typer.echo(
        f"{len(found['entries'])} entries, {found['total_outputs_bytes']:,} bytes of outputs"
    )


@cache.command("rm")
def cache_rm(key: str, as_json: JsonFlag = False) -> None:
    """Remove one cached result: the next run of that step runs it."""
    removed = api_call(lambda gw: gw.cache_remove(key))
    typer.echo(json.dumps(removed) if as_json else f"removed {key} ({removed['step']})")


@cache.command("prune")
def cache_prune(
    project: ProjectOption = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only results older than this: 30m, 12h, 7d.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove cached results (all, or those older than --older-than) and the outputs no
    result names any more."""
    seconds = None
    if older_than is not None:
        span = parse_since(older_than)
        assert span is not None
        seconds = (datetime.now(UTC) - span).total_seconds()
    pruned = api_call(lambda gw: gw.cache_prune(project, seconds))
    if as_json:
        typer.echo(json.dumps(pruned))
        return
    typer.echo(f"removed {pruned['removed_entries']} entries and {pruned['removed_outputs']}"
               f" output archives, {pruned['freed_bytes']:,} bytes")  # fmt: skip
