"""Workflow templates: a versioned workflow with parameters, rendered into a WorkflowSpec.

A template names a JSON Schema for its parameters and a workflow in which any string may
hold ``${{ params.NAME }}``. A placeholder becomes the value's text (a number as JSON
writes it), and text in a field that takes a number or a boolean (``timeout``,
``network``) is read as one; a string that is exactly one placeholder of an array or
object parameter becomes that value (``needs: ${{ params.deps }}``). Rendering fills in
the schema's defaults, checks the parameters against the schema, substitutes, and checks
the workflow that results.

Templates are kept in KV ``aiop_templates`` under ``<project>.<name>.<version>``; the
built-in ones, which every project sees, under ``_.<name>.<version>``.
"""

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from aiop.contracts.workflow import InvalidWorkflow, WorkflowSpec, as_written, validate_spec

BUILTIN = "_"  # the key prefix of built-in templates, which no project can be named
MAX_FILE_BYTES = 200 * 1024  # all the files a template carries, together
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$")
_PLACEHOLDER = re.compile(r"\$\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class InvalidTemplate(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BadParameters(ValueError):
    """Parameters the template's schema refuses; ``errors`` says where and why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class Template(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    version: str
    description: str = ""
    parameters: dict[str, Any] = {}  # a JSON Schema for an object; {} takes no parameters
    workflow: dict[str, Any]  # a workflow file's content, placeholders and all
    project: str = BUILTIN  # the project it belongs to; BUILTIN: every project's
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def builtin(self) -> bool:
        return self.project == BUILTIN


class TemplateInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One template in a list: its latest version, and the versions there are."""

    name: str
    version: str
    versions: list[str]
    description: str
    builtin: bool
    parameters: dict[str, Any]


class TemplateList(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    templates: list[TemplateInfo]


class TemplateRun(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``POST /v1/templates/{ref}/runs``."""

    parameters: dict[str, Any] = {}
    labels: dict[str, str] = {}


def template_key(project: str, name: str, version: str) -> str:
    return f"{project}.{name}.{version}"


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` or ``name`` -> (name, version or None for the latest)."""
    name, _, version = ref.partition("@")
    return name, version or None


def version_order(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: numeric parts by number (1.10 after 1.9), the rest by text."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.-]", version))


def check_template(template: Template) -> list[str]:
    """Every reason ``template`` cannot be registered; empty when it can."""
    problems: list[str] = []
    if not _NAME.match(template.name):
        problems.append(f"name {template.name!r} must be lower-case letters, digits and '-'")
    if not _VERSION.match(template.version):
        problems.append(f"version {template.version!r} must be letters, digits, '.' and '-'")
    problems += _schema_problems(template.parameters)
    properties = template.parameters.get("properties", {})
    known = set(properties) if isinstance(properties, dict) else set()
    for name in sorted(_placeholders(template.workflow) - known):
        problems.append(f"the workflow uses ${{{{ params.{name} }}}}, which is not a parameter")
    size = _file_bytes(template.workflow)
    if size > MAX_FILE_BYTES:
        problems.append(f"its files hold {size} bytes, more than {MAX_FILE_BYTES}")
    if problems:
        return problems
    try:  # a template whose own defaults cannot render is no use to anyone
        render(template, {}, template.project if not template.builtin else "default")
    except BadParameters:
        pass  # a parameter without a default: the caller must give it
    except InvalidWorkflow as exc:
        problems += [f"the workflow: {p}" for p in exc.problems]
    return problems


def _file_bytes(workflow: dict[str, Any]) -> int:
    steps = workflow.get("steps")
    if not isinstance(steps, list):
        return 0
    return sum(
        len(text.encode())
        for step in steps
        if isinstance(step, dict) and isinstance(step.get("files"), dict)
        for text in step["files"].values()
        if isinstance(text, str)
    )


def render(
    template: Template, parameters: dict[str, Any], project: str
) -> tuple[WorkflowSpec, dict[str, Any]]:
    """The workflow ``template`` gives for ``parameters`` in ``project``, and the
    parameters with their defaults filled in. BadParameters or InvalidWorkflow if none."""
    filled = _with_defaults(template.parameters, parameters)
    errors = _parameter_errors(template.parameters, filled)
    if errors:
        raise BadParameters(errors)
    document = _substitute(template.workflow, filled)
    if not isinstance(document, dict):
        raise InvalidWorkflow(["the workflow is not a mapping"])
    try:
        # Lax: "3" is read as 3 where a number is wanted (a placeholder gave text).
        written = as_written({**document, "project": project})
        spec = msgspec.convert(written, WorkflowSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidWorkflow([str(exc)]) from exc
    problems = validate_spec(spec)
    if problems:
        raise InvalidWorkflow(problems)
    return spec, filled


def inline_files(document: dict[str, Any], base: Path) -> dict[str, Any]:
    """``document`` (a template file's content) with every step file given as
    ``{from: path}`` (a file, or a folder: every file below it) replaced by its text,
    ``path`` relative to ``base``, the template file's folder."""
    workflow = document.get("workflow")
    if not isinstance(workflow, dict) or not isinstance(workflow.get("steps"), list):
        return document
    steps = []
    for step in workflow["steps"]:
        if isinstance(step, dict) and isinstance(step.get("files"), dict):
            step = {**step, "files": _inlined(step["files"], base)}
        steps.append(step)
    return {**document, "workflow": {**workflow, "steps": steps}}


def _inlined(files: dict[str, Any], base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dest, source in files.items():
        if not (isinstance(source, dict) and set(source) == {"from"}):
            out[dest] = source
            continue
        origin = (base / str(source["from"])).resolve()
        if origin.is_dir():
            for path in sorted(p for p in origin.rglob("*") if p.is_file()):
                relative = path.relative_to(origin).as_posix()
                if "__pycache__" not in relative:
                    out[f"{dest.rstrip('/')}/{relative}"] = path.read_text(encoding="utf-8")
        elif origin.is_file():
            out[dest] = origin.read_text(encoding="utf-8")
        else:
            raise InvalidTemplate([f"file {dest!r}: {source['from']!r} does not exist"])
    return out


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def _substitute(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole is not None and isinstance(params.get(whole.group(1)), list | dict):
            return params[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: _as_text(params.get(m.group(1))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params) for v in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # true, 3, [1, 2]: as a JSON reader would write them


def _with_defaults(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        name: prop["default"]
        for name, prop in schema.get("properties", {}).items()
        if isinstance(prop, dict) and "default" in prop
    }
    return {**defaults, **given}


def _schema_problems(schema: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator, SchemaError  # imported when used: it is slow

    if not schema:
        return []
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"parameters is not a valid JSON Schema: {exc.message}"]
    if schema.get("type") != "object":
        return ['parameters must be a JSON Schema with "type": "object"']
    return []


def _parameter_errors(schema: dict[str, Any], params: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator

    if not schema:
        return [f"{name}: this template takes no parameters" for name in sorted(params)]
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(parameters)'}: {e.message}" for e in errors]
