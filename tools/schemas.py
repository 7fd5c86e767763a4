"""The published contracts as files: a JSON Schema per event and the AsyncAPI document
of the bus, both generated; and the check CI runs on them. A development tool: it reads
git, which the contracts package itself never does.

    uv run task schemas          # python -m tools.schemas generate: write proto-schemas/
    uv run task schemas:check    # python -m tools.schemas check: fail on drift or a break

``check`` fails when the committed files differ from what the code generates, and when a
change breaks a published version: within a major version only optional fields may be
added (docs/architecture.md, "Events"). Published means the file in git HEAD, else the
file on disk: a consumer somewhere decodes with the old schema, so removing a field,
changing its type or requiring a new one needs a new ``v<N+1>`` type beside the old one.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from aiop.cli.services import all_services
from aiop.contracts.events import EVENT_TYPES, Event
from tools.asyncapi import asyncapi

SCHEMA_DIR = "proto-schemas"
REGENERATE = "run `uv run task schemas`"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


# --- generate ---------------------------------------------------------------------------


def dump(doc: Any) -> str:
    """Deterministic JSON text: sorted keys, fixed indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def event_schema(event_type: type[Event]) -> dict[str, Any]:
    schema = msgspec.json.schema(event_type)
    return {"$schema": JSON_SCHEMA, "$id": f"{event_type.TYPE}.json", **schema}


def generated() -> dict[str, str]:
    """Every file under proto-schemas/ as the code defines it: relative path -> text."""
    files = {f"events/{t}.json": dump(event_schema(cls)) for t, cls in EVENT_TYPES.items()}
    traffic = [t for svc in all_services() for t in svc.traffic]
    files["asyncapi.json"] = dump(asyncapi(traffic))
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
    parser = argparse.ArgumentParser(prog="python -m tools.schemas")
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
