"""AIOP's event contracts: one msgspec struct per event and version, and their subjects.

Nothing here does I/O. Every service imports its events from this package, so there is
exactly one definition of each event on the bus.
"""

from aiop.contracts.envelope import Envelope, decode_event, encode_event
from aiop.contracts.events import (
    EVENT_TYPES,
    DeadLetterRecorded,
    Event,
    ExecutorCircuitChanged,
    ExecutorHeartbeat,
    StepCached,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepProgress,
    StepRetrying,
    StepSkipped,
    StepStarted,
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
from aiop.contracts.subjects import InvalidToken, check_token
from aiop.contracts.workflow import (
    InvalidWorkflow,
    RegistryAuth,
    RetryPolicy,
    StepSpec,
    WorkflowSpec,
    validate_spec,
)

__all__ = [
    "EVENT_TYPES",
    "DeadLetterRecorded",
    "Envelope",
    "Event",
    "ExecutorCircuitChanged",
    "ExecutorHeartbeat",
    "InvalidToken",
    "InvalidWorkflow",
    "RegistryAuth",
    "RetryPolicy",
    "StepCached",
    "StepCompleted",
    "StepFailed",
    "StepOutputAppended",
    "StepProgress",
    "StepRetrying",
    "StepSkipped",
    "StepSpec",
    "StepStarted",
    "WorkflowAccepted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowQueued",
    "WorkflowRejected",
    "WorkflowRequested",
    "WorkflowSpec",
    "WorkflowStarted",
    "WorkflowSubmitted",
    "check_token",
    "decode_event",
    "encode_event",
    "validate_spec",
]
