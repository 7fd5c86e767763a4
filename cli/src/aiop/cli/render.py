"""Human-readable lines for events and workflow status."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiop.contracts.events import (
    DeadLetterRecorded,
    Event,
    ExecutorCircuitChanged,
    StepCached,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepProgress,
    StepRetrying,
    StepSkipped,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowQueued,
    WorkflowRejected,
    WorkflowRequested,
    WorkflowStarted,
    WorkflowSubmitted,
)


def summary(event: Event) -> str:  # noqa: C901 - one line per event type
    match event:
        case WorkflowSubmitted():
            return f"{event.spec.name!r} with {len(event.spec.steps)} steps by {event.principal}"
        case WorkflowAccepted():
            return f"{event.spec.name!r} accepted"
        case WorkflowRejected():
            return "; ".join(event.reasons)
        case WorkflowQueued():
            return f"waiting: {event.reason}"
        case WorkflowRequested():
            return f"sent to pool {event.pool} (attempt {event.attempt})"
        case WorkflowStarted():
            return (
                f"running on {event.executor_id} (attempt {event.attempt}, {event.runner} runner)"
            )
        case WorkflowCompleted():
            return f"succeeded in {event.duration_s:.3f}s"
        case WorkflowFailed():
            return f"failed: {event.reason}"
        case WorkflowCancelled():
            return f"cancelled after {event.duration_s:.3f}s: {event.reason}"
        case StepCompleted():
            tries = f" after {event.tries} tries" if event.tries > 1 else ""
            if event.agent_id:
                return (
                    f"step {event.step} done by {event.agent_id} in {event.duration_s:.3f}s{tries}"
                )
            return f"step {event.step} exit {event.exit_code} in {event.duration_s:.3f}s{tries}"
        case StepProgress():
            done = "" if event.percent is None else f" {event.percent:g}%"
            return f"step {event.step}{done} {event.message or ''}".rstrip()
        case StepFailed():
            ended = "timed out" if event.timed_out else "failed"
            tries = f" after {event.tries} tries" if event.tries > 1 else ""
            return f"step {event.step} {ended}{tries} (exit {event.exit_code}): {event.error}"
        case StepCached():
            was = "resumed from attempt" if event.source == "resumed" else "cached from"
            origin = (event.from_attempt if event.source == "resumed"
                      else event.from_workflow_id)  # fmt: skip
            return f"step {event.step} {was} {origin}, not run ({event.duration_s * 1000:.1f} ms)"
        case StepRetrying():
            return (
                f"step {event.step} try {event.try_number} failed (exit {event.exit_code}):"
                f" {event.error}; next try in {event.delay_s:.2f}s"
            )
        case StepSkipped():
            return f"step {event.step} skipped: {event.reason}"
        case StepOutputAppended():
            return f"step {event.step} {event.stream}: {event.text.rstrip()[:200]}"
        case DeadLetterRecorded():
            return f"{event.original_subject} from {event.consumer}: {event.reason}"
        case ExecutorCircuitChanged():
            return circuit_summary(event)
    step = getattr(event, "step", None)
    return f"step {step}" if step else ""


def circuit_summary(event: ExecutorCircuitChanged) -> str:
    what = {
        "open": "Dagger circuit open, steps run locally",
        "half_open": "Dagger circuit half-open, probing the engine",
        "closed": "Dagger circuit closed, steps run with Dagger",
    }.get(event.state, f"Dagger circuit {event.state}")
    probe = f"; probe in {event.probe_in_s:g}s" if event.probe_in_s is not None else ""
    return f"{event.executor_id} (pool {event.pool}): {what}: {event.reason}{probe}"


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
