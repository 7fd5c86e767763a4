"""The published contracts as files: JSON Schemas per event and an AsyncAPI document.

    uv run python -m aiop.contracts.schemas generate   # write proto-schemas/
    uv run python -m aiop.contracts.schemas check      # CI: fail on drift or a break

``check`` fails when the committed files differ from what the structs generate, and
when a change breaks a published version (DESIGN.md, Events: within a major version only
optional fields may be added). Published means the file in git HEAD, else the file on
disk: a consumer somewhere decodes with the old schema, so removing a field, changing its
type or requiring a new one needs a new ``v<N+1>`` type published beside the old one.
"""

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from aiop.contracts import queries
from aiop.contracts.events import EVENT_TYPES, Event
from aiop.contracts.subjects import (
    AUTH_AUTHORIZE,
    AUTH_JWKS,
    AUTH_TOKEN,
    QUERY_REPORT,
    QUERY_WORKFLOW,
)

SCHEMA_DIR = "proto-schemas"
REGENERATE = "run `uv run python -m aiop.contracts.schemas generate`"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Flow:
    """Who sends and who receives one event (docs/architecture.md, Events)."""

    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    routing: tuple[str, ...] = ("workflow_id",)  # subject tokens after the type, in order


_RUN = Flow(("executor",), ("task-manager", "reporter"))
FLOWS: dict[str, Flow] = {
    "aiop.workflow.submitted.v1": Flow(("gateway",), ("task-manager", "reporter")),
    "aiop.workflow.accepted.v1": Flow(("task-manager",), ("distributor", "reporter")),
    "aiop.workflow.rejected.v1": Flow(("task-manager",), ("reporter",)),
    "aiop.workflow.queued.v1": Flow(("distributor",), ("task-manager", "reporter")),
    "aiop.workflow.requested.v1": Flow(
        ("distributor",), ("executor", "task-manager"), ("pool", "workflow_id")
    ),
    "aiop.workflow.started.v1": _RUN,
    "aiop.step.started.v1": _RUN,
    "aiop.step.completed.v1": _RUN,
    "aiop.step.failed.v1": _RUN,
    "aiop.step.skipped.v1": _RUN,
    "aiop.output.appended.v1": Flow(("executor",), ("cli",)),
    "aiop.workflow.completed.v1": Flow(("executor",), ("task-manager", "distributor", "reporter")),
    "aiop.workflow.failed.v1": Flow(("executor",), ("task-manager", "distributor", "reporter")),
    "aiop.executor.heartbeat.v1": Flow(("executor",), ("distributor",), ("pool", "executor_id")),
    "aiop.dlq.recorded.v1": Flow(
        ("servicekit", "reporter"), ("operators",), ("stream", "consumer")
    ),
}

TOKENS = {
    "workflow_id": "The workflow's id.",
    "pool": "The executor pool.",
    "executor_id": "The executor's id.",
    "stream": "The stream the dead message came from.",
    "consumer": "The consumer that gave up on it.",
}


@dataclass(frozen=True)
class Endpoint:
    """A request/reply subject (nats.micro); ``None`` means any JSON."""

    request: type[msgspec.Struct] | None
    reply: type[msgspec.Struct] | None
    server: str
    summary: str


ENDPOINTS: dict[str, Endpoint] = {
    QUERY_WORKFLOW: Endpoint(
        queries.WorkflowQuery, queries.WorkflowView, "task-manager", "A workflow (404 if unknown)."
    ),
    QUERY_REPORT: Endpoint(
        queries.WorkflowQuery, queries.WorkflowReport, "reporter", "A summary (404 if unknown)."
    ),
    AUTH_JWKS: Endpoint(None, None, "auth", "The JWKS to verify tokens with."),
    AUTH_TOKEN: Endpoint(
        queries.TokenRequest, queries.TokenReply, "auth", "API key -> JWT (401 bad key)."
    ),
    AUTH_AUTHORIZE: Endpoint(
        queries.AuthorizeRequest, queries.AuthorizeReply, "auth", "May a principal act?"
    ),
}

CE_HEADERS = {
    "type": "object",
    "properties": {
        name: {"type": "string"}
        for name in ("Nats-Msg-Id", "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time")
    },
    "required": ["Nats-Msg-Id", "ce-id", "ce-type", "ce-source"],
}


# --- generate ---------------------------------------------------------------------------


def dump(doc: Any) -> str:
    """Deterministic JSON text: sorted keys, fixed indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def event_schema(event_type: type[Event]) -> dict[str, Any]:
    schema = msgspec.json.schema(event_type)
    return {"$schema": JSON_SCHEMA, "$id": f"{event_type.TYPE}.json", **schema}


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0: a channel, message and send/receive operations per event and endpoint."""
    missing = set(EVENT_TYPES) ^ set(FLOWS)
    if missing:
        raise SystemExit(f"schemas.FLOWS and EVENT_TYPES disagree on: {sorted(missing)}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for ce_type, cls in EVENT_TYPES.items():
        flow = FLOWS[ce_type]
        messages[ce_type] = {
            "name": ce_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"events/{ce_type}.json"},
        }
        channels[ce_type] = {
            "address": ".".join([ce_type, *(f"{{{t}}}" for t in flow.routing)]),
            "parameters": {t: {"description": TOKENS[t]} for t in flow.routing},
            "messages": {cls.__name__: {"$ref": f"#/components/messages/{ce_type}"}},
        }
        for action, services in (("send", flow.producers), ("receive", flow.consumers)):
            for service in services:
                operations[f"{service}.{action}.{ce_type}"] = _operation(action, service, ce_type)
    schemas: dict[str, Any] = {}
    for subject, endpoint in ENDPOINTS.items():
        for part, struct in (("request", endpoint.request), ("reply", endpoint.reply)):
            name = f"{subject}.{part}"
            messages[name] = {
                "name": name,
                "contentType": "application/json",
                "payload": _component(struct, schemas),
            }
        channels[subject] = {
            "address": subject,
            "messages": {"request": {"$ref": f"#/components/messages/{subject}.request"}},
        }
        channels[f"{subject}.reply"] = {
            "address": None,  # the requester's inbox
            "messages": {"reply": {"$ref": f"#/components/messages/{subject}.reply"}},
        }
        op = _operation("receive", endpoint.server, subject)
        op["summary"] = endpoint.summary
        op["reply"] = {"channel": {"$ref": f"#/channels/{subject}.reply"}}
        operations[f"{endpoint.server}.serve.{subject}"] = op
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AIOP bus",
            "version": "1.0.0",
            "description": "Generated by aiop.contracts.schemas; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _operation(action: str, service: str, channel: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "x-service": service,
        "tags": [{"name": service}],
    }


def _component(struct: type[msgspec.Struct] | None, schemas: dict[str, Any]) -> dict[str, Any]:
    if struct is None:
        return {"type": "object"}
    (ref,), defs = msgspec.json.schema_components(
        [struct], ref_template="#/components/schemas/{name}"
    )
    schemas.update(defs)
    return ref


def generated() -> dict[str, str]:
    """Every file under proto-schemas/ as the code defines it: relative path -> text."""
    files = {f"events/{t}.json": dump(event_schema(cls)) for t, cls in EVENT_TYPES.items()}
    files["asyncapi.json"] = dump(asyncapi())
    return files


def generate(root: Path) -> list[Path]:
    out = root / SCHEMA_DIR
    written = []
    for rel, text in generated().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# --- check ------------------------------------------------------------------------------

_NOT_TYPE = {"default", "description", "title", "examples"}


def _defs(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(schema.get("$defs", {}))


def _shape(prop: dict[str, Any]) -> str:
    """A property's type, without what does not change what decodes (docs, defaults)."""
    return json.dumps({k: v for k, v in prop.items() if k not in _NOT_TYPE}, sort_keys=True)


def breaking_changes(event: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What ``new`` breaks for a consumer built against ``old``, per struct and field."""
    problems = []
    new_defs = _defs(new)
    for name, old_def in _defs(old).items():
        new_def = new_defs.get(name)
        if new_def is None:
            problems.append(f"{event}: struct {name} was removed")
            continue
        where = f"{event}: {name}"
        old_props, new_props = old_def.get("properties", {}), new_def.get("properties", {})
        old_req, new_req = set(old_def.get("required", [])), set(new_def.get("required", []))
        for field, prop in sorted(old_props.items()):
            if field not in new_props:
                problems.append(f"{where}.{field} was removed")
            elif _shape(prop) != _shape(new_props[field]):
                problems.append(
                    f"{where}.{field} changed type: {_shape(prop)} -> {_shape(new_props[field])}"
                )
        for field in sorted(new_req - old_req):
            problems.append(f"{where}.{field} is newly required")
        for field in sorted(old_req - new_req):
            if field in new_props:  # old consumers still insist on it
                problems.append(f"{where}.{field} is no longer required")
    return problems


def published(root: Path, rel: str) -> str | None:
    """The published text of ``rel``: from git HEAD when tracked there, else from disk."""
    path = root / SCHEMA_DIR / rel
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "show", f"HEAD:./{SCHEMA_DIR}/{rel}"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode == 0:
            return result.stdout.decode("utf-8")
    except (OSError, subprocess.SubprocessError):
        pass  # no git here: the file on disk is what was published
    return path.read_text(encoding="utf-8") if path.exists() else None


def check(root: Path) -> list[str]:
    """Every problem with the committed schemas; empty when CI may pass."""
    want = generated()
    problems: list[str] = []
    for rel, text in want.items():
        if not rel.startswith("events/"):
            continue
        old_text = published(root, rel)
        if old_text is None:
            continue  # a new event type: nothing published to break
        broken = breaking_changes(rel[7:-5], json.loads(old_text), json.loads(text))
        problems += [
            f"breaking change: {p} (needs a new v<N+1> event type beside the old one)"
            for p in broken
        ]
    out = root / SCHEMA_DIR
    have = {p.relative_to(out).as_posix() for p in out.glob("events/*.json")}
    if (out / "asyncapi.json").exists():
        have.add("asyncapi.json")
    drift = sorted(
        rel
        for rel in have | set(want)
        if rel not in have or rel not in want or (out / rel).read_text("utf-8") != want[rel]
    )
    if drift:
        problems.append(f"{SCHEMA_DIR}/ is out of date ({', '.join(drift)}): {REGENERATE}")
    return problems


# --- command line -----------------------------------------------------------------------


def find_root(start: Path) -> Path:
    """The nearest directory up from ``start`` that holds proto-schemas/ or uv.lock."""
    for path in (start, *start.parents):
        if (path / SCHEMA_DIR).is_dir() or (path / "uv.lock").is_file():
            return path
    raise SystemExit(f"no {SCHEMA_DIR}/ or uv.lock above {start}; pass --root")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiop.contracts.schemas")
    parser.add_argument("command", choices=["generate", "check"])
    parser.add_argument("--root", type=Path, help="repository root (default: found upward)")
    args = parser.parse_args(argv)
    root = args.root.resolve() if args.root else find_root(Path.cwd().resolve())
    if args.command == "generate":
        print(f"wrote {len(generate(root))} files under {root / SCHEMA_DIR}")
        return 0
    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{SCHEMA_DIR}/ matches the code and breaks no published version")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
