"""``aiop templates list|show|register`` and ``aiop run <template>[@version] -p key=value``."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from aiop.cli.client import ApiError
from aiop.cli.common import JsonFlag, api_call, fail, gateway, report_end
from aiop.contracts.templates import InvalidTemplate, inline_files

templates = typer.Typer(
    help="Workflow templates: list, show, register; `aiop run` starts one.",
    no_args_is_help=True,
)
Project = Annotated[str, typer.Option("--project", help="The project.")]
# Parameter types whose value is read as JSON from `-p key=value`; the rest stay text.
JSON_TYPES = {"integer", "number", "boolean", "array", "object", "null"}


@templates.command("list")
def templates_list(project: Project = "default", as_json: JsonFlag = False) -> None:
    """The project's templates and the built-in ones, each at its highest version."""
    found = api_call(lambda gw: gw.templates(project))
    if as_json:
        typer.echo(json.dumps(found))
        return
    for t in found:
        kind = "built-in" if t["builtin"] else project
        typer.echo(f"{t['name']}@{t['version']:<10} {kind:<10} {t['description']}")


@templates.command("show")
def templates_show(ref: str, project: Project = "default", as_json: JsonFlag = False) -> None:
    """One template (NAME or NAME@VERSION): its parameters and its workflow."""
    template = api_call(lambda gw: gw.template(ref, project))
    if as_json:
        typer.echo(json.dumps(template))
        return
    typer.echo(f"{template['name']}@{template['version']}  {template.get('description', '')}")
    properties = template.get("parameters", {}).get("properties", {})
    typer.echo("parameters:" if properties else "parameters: none")
    for name, schema in properties.items():
        default = f" = {json.dumps(schema['default'])}" if "default" in schema else " (required)"
        typer.echo(
            f"  {name}: {schema.get('type', 'any')}{default}  {schema.get('description', '')}"
        )
    workflow = {
        **template["workflow"],
        "steps": [_without_files(s) for s in template["workflow"]["steps"]],
    }
    typer.echo(yaml.safe_dump({"workflow": workflow}, sort_keys=False).rstrip())


@templates.command("register")
def templates_register(file: Path, project: Project = "default", as_json: JsonFlag = False) -> None:
    """Register the template in FILE (YAML); `{from: path}` files are read beside it."""
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", 2)
    except yaml.YAMLError as exc:
        fail(f"{file} is not valid YAML: {exc}", 2)
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        fail(f"{file} must hold a mapping with name, version and workflow", 2)
    try:
        document = inline_files(document, file.parent)
    except (InvalidTemplate, OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: {exc}", 2)
    created, stored = api_call(lambda gw: gw.register_template(document["name"], document, project))
    if as_json:
        typer.echo(json.dumps(stored))
    else:
        ref = f"{stored['name']}@{stored['version']}"
        typer.echo(f"{ref} {'registered' if created else 'was registered already'} in {project}")


def run_template(
    ref: Annotated[str, typer.Argument(help="The template: NAME or NAME@VERSION.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter: key=value (repeat).")
    ] = None,
    project: Project = "default",
    wait: Annotated[bool, typer.Option(help="Wait until it ends; exit 0 only on success.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    idempotency_key: Annotated[str | None, typer.Option(help="Start at most once per key.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a template with parameters (its schema's defaults fill in the rest)."""
    gw = gateway()
    try:
        schema = gw.template(ref, project).get("parameters", {})
        parameters = parse_parameters(param or [], schema)
        workflow_id = gw.run_template(ref, parameters, project, idempotency_key)
    except ApiError as exc:
        fail(f"rejected: {exc}", 1 if exc.status == 404 else 2)
    report_end(gw, workflow_id, wait, timeout, as_json)


def parse_parameters(pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` pairs as the schema types them: a number, boolean, array or object
    parameter's value is read as JSON, anything else is text as given."""
    properties = schema.get("properties", {})
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"-p {pair!r}: give key=value", 2)
        kinds = properties.get(key, {}).get("type", "string")
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        if kinds & JSON_TYPES:
            try:
                parameters[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                if "string" not in kinds:
                    fail(f"-p {key}: {value!r} is not a valid {'/'.join(sorted(kinds))}", 2)
        parameters[key] = value
    return parameters


def _without_files(step: dict[str, Any]) -> dict[str, Any]:
    """A step as shown: the files it carries named, not printed."""
    if "files" not in step:
        return step
    return {**step, "files": sorted(step["files"])}
