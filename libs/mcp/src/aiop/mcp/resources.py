"""The resources: a run, its logs and a template, each read through the API with the
caller's token; and the caller's newest runs as the resources it lists."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import mcp.types as types
from pydantic import AnyUrl

from aiop.client import AsyncClient

JSON = "application/json"
TEXT = "text/plain"
RECENT_RUNS = 25
# An id or a template ref: never a path of its own (no "/", no "." or "..").
SEGMENT = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,199}$")

TEMPLATES = [
    types.ResourceTemplate(
        name="workflow", title="A run", uriTemplate="aiop://workflows/{workflow_id}",
        description="A run as get_workflow returns it: its state, its steps and its summary.",
        mimeType=JSON,
    ),
    types.ResourceTemplate(
        name="workflow-logs", title="A run's logs",
        uriTemplate="aiop://workflows/{workflow_id}/logs",
        description="What the run's steps wrote so far, one line per output line, each"
        " as 'step | text'.",
        mimeType=TEXT,
    ),
    types.ResourceTemplate(
        name="template", title="A template", uriTemplate="aiop://templates/{name}",
        description="A template (name, or name@version) of project default or a built-in"
        " one, with its parameters' schema and its workflow; another project's with"
        " ?project=NAME.",
        mimeType=JSON,
    ),
]  # fmt: skip


class UnknownResource(LookupError):
    pass


@dataclass(frozen=True)
class Contents:
    mime_type: str
    text: str


async def read(client: AsyncClient, uri: str) -> Contents:
    parts = urlsplit(uri)
    segments = parts.path.strip("/").split("/")
    if parts.scheme != "aiop" or not all(SEGMENT.match(s) for s in segments):
        raise UnknownResource(uri)
    match parts.netloc, segments:
        case "workflows", [workflow_id]:
            return Contents(JSON, _json(await client.status(workflow_id)))
        case "workflows", [workflow_id, "logs"]:
            page = await client.logs(workflow_id)
            return Contents(TEXT, "".join(_lines(entry) for entry in page["entries"]))
        case "templates", [ref]:
            project = parse_qs(parts.query).get("project", [None])[0]
            return Contents(JSON, _json(await client.template(ref, project)))
    raise UnknownResource(uri)


async def recent_runs(client: AsyncClient) -> list[types.Resource]:
    page = await client.list_workflows(limit=RECENT_RUNS)
    return [
        types.Resource(
            name=f"{run['name']} {run['workflow_id']}",
            uri=AnyUrl(f"aiop://workflows/{run['workflow_id']}"),
            description=f"{run['name']} in project {run['project']}: {run['state']}",
            mimeType=JSON,
        )
        for run in page["workflows"]
    ]


def _json(value: object) -> str:
    return json.dumps(value, indent=2)


def _lines(entry: Mapping[str, Any]) -> str:
    """An output chunk (whole lines, newline included) as ``step | line`` lines."""
    lines = str(entry["text"]).splitlines(keepends=True) or [""]
    text = "".join(f"{entry['step']} | {line}" for line in lines)
    return text if text.endswith("\n") else text + "\n"
