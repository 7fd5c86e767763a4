"""One human line per event: what `aiop tail` prints and the gateway's live tail
(``GET /v1/stream``) sends as each event's ``summary``."""

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
