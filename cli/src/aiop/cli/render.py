"""Human-readable lines for events and workflow status."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

# The one-line summary of each event lives in aiop.contracts.summaries: the gateway's
# live tail (GET /v1/stream) sends the same line.


def event_line(when: datetime, event_type: str, workflow: str, text: str) -> str:
    return f"{when.astimezone():%H:%M:%S.%f}"[:-3] + f"  {event_type:<28} {workflow:<32} {text}"


def status_lines(view: Mapping[str, Any]) -> list[str]:
    lines = [
        f"workflow  {view['workflow_id']}  {view.get('name', '')}  project {view.get('project', '')}",
        f"state     {view['state']}" + (f"  ({view['reason']})" if view.get("reason") else ""),
    ]
    if view.get("executor_id"):
        lines.append(f"executor  {view['executor_id']}  attempt {view.get('attempt')}")
    if view.get("trace_id"):
        lines.append(f"trace     {view['trace_id']}")
    origin = view.get("origin") or {}
    if origin.get("kind") not in (None, "api") or view.get("task"):
        task = f"  task {view['task']}" if view.get("task") else ""
        lines.append(f"started   by {origin_text(origin)}{task}")
    if view.get("template"):
        given = " ".join(f"{k}={json.dumps(v)}" for k, v in (view.get("parameters") or {}).items())
        lines.append(f"template  {view['template']}  {given}".rstrip())
    for step in view.get("steps") or []:
        took = f"{step['duration_s']:.3f}s" if step.get("duration_s") is not None else ""
        code = f"exit {step['exit_code']}" if step.get("exit_code") is not None else ""
        tries = f"{step['tries']} tries" if (step.get("tries") or 0) > 1 else ""
        tries += f" {step['runner']} runner" if step.get("runner") else ""
        lines.append(
            f"  {step['name']:<20} {step['state']:<10} {code:<8} {took:<9} {tries}".rstrip()
        )
        if step.get("state") in ("failed", "timed_out") or (
            step.get("state") == "running" and step.get("error")
        ):
            if step.get("error"):
                lines.append(f"      error: {step['error']}")
            for tail_line in (step.get("output_tail") or "").splitlines()[-20:]:
                lines.append(f"      | {tail_line}")
    for name, summary in (view.get("summary") or {}).items():
        figures = "  ".join(f"{k}={json.dumps(v)}" for k, v in summary.items())
        lines.append(f"summary   {name}: {figures}")
    return lines


def log_line(entry: Mapping[str, Any]) -> str:
    """One output chunk as ``step | text``; a chunk holds whole lines, newline included."""
    tried = f" (try {entry['try_number']})" if entry.get("try_number", 1) > 1 else ""
    prefix = f"{entry['step']}{tried}"
    text = entry["text"]
    lines = text.splitlines(keepends=True) or [""]
    out = "".join(f"{prefix} | {line}" for line in lines)
    return out if out.endswith("\n") else out + "\n"


def origin_text(origin: dict[str, Any]) -> str:
    """What started a run, in a few words."""
    match origin.get("kind"):
        case "trigger":
            return f"trigger {origin.get('trigger')} (event {origin.get('event_id')})"
        case "schedule":
            return f"schedule {origin.get('schedule')} @{str(origin.get('tick', ''))[:19]}"
        case "rerun":
            return f"rerun of {origin.get('rerun_of')}"
        case kind:
            return str(kind or "api")
