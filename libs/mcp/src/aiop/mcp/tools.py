"""The tools: what each does, in the words an agent reads, and the operation of the API it
makes; their input schemas come from the gateway's own document (``schemas``)."""

from dataclasses import dataclass

import mcp.types as types

from aiop.mcp.schemas import Json, Operation, ToolInput, tool_input

DEFAULT_WAIT_S = 300.0
MAX_WAIT_S = 3600.0
# The arguments of a tool that starts a run, besides the operation's own.
WAITING: dict[str, Json] = {
    "wait": {
        "type": "boolean",
        "default": False,
        "description": "Wait until the run ends, sending progress notifications (steps done"
        " of all steps, and the run's state), and return the run as get_workflow does;"
        " without it, return its workflow_id at once.",
    },
    "timeout": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": MAX_WAIT_S,
        "default": DEFAULT_WAIT_S,
        "description": "With wait: seconds to wait at most. The run goes on after; the"
        " answer is the run as it is then.",
    },
}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    operation: Operation
    starts_run: bool = False  # takes wait and timeout; always sent with an Idempotency-Key
    read_only: bool = False
    idempotent: bool = False  # doing it twice changes nothing more: safe to send again
    destructive: bool = False  # it ends work under way

    def offered(self, document: Json) -> "Offered":
        extra = WAITING if self.starts_run else {}
        bound = tool_input(document, self.operation, extra)
        hints = types.ToolAnnotations(
            title=self.title,
            readOnlyHint=self.read_only,
            idempotentHint=self.idempotent or self.read_only,
            destructiveHint=self.destructive,
            openWorldHint=False,
        )
        tool = types.Tool(
            name=self.name, title=self.title, description=self.description,
            inputSchema=bound.schema, annotations=hints,
        )  # fmt: skip
        return Offered(self, bound, tool)


@dataclass(frozen=True)
class Offered:
    """A tool as this gateway's document makes it: its definition and its input."""

    spec: ToolSpec
    input: ToolInput
    tool: types.Tool


WORKFLOW = "/v1/workflows/{workflow_id}"
TOOLS = (
    ToolSpec(
        "list_templates", "List templates",
        "The workflow templates a project can run (its own and the built-in ones): each"
        " one's latest version, its versions, description, and the JSON Schema of its"
        " parameters.",
        Operation("GET", "/v1/templates"), read_only=True,
    ),
    ToolSpec(
        "run_template", "Run a template",
        "Run a template (ref: name, or name@version) with parameters, checked against its"
        " schema first. Returns the new run's workflow_id, or with wait the run once it"
        " ended.",
        Operation("POST", "/v1/templates/{ref}/runs"), starts_run=True,
    ),
    ToolSpec(
        "submit_workflow", "Submit a workflow",
        "Submit a workflow: named steps, each an argv (run) in an image, ordered by their"
        " needs; outputs, caches, secrets by name and retries per step. Returns the new"
        " run's workflow_id, or with wait the run once it ended.",
        Operation("POST", "/v1/workflows", body_as="workflow"), starts_run=True,
    ),
    ToolSpec(
        "get_workflow", "Get a run",
        "A run as it is now: its state, each step's state, exit code, error and output"
        " tail, what the steps reported, and the run's summary.",
        Operation("GET", WORKFLOW), read_only=True,
    ),
    ToolSpec(
        "list_workflows", "List runs",
        "Runs of the caller's projects, newest first, filtered by project, task, state,"
        " template, labels and time; one page at a time (give next_cursor as cursor).",
        Operation("GET", "/v1/workflows"), read_only=True,
    ),
    ToolSpec(
        "get_logs", "Get a run's logs",
        "The output a run's steps wrote so far, in order: one entry per chunk of stdout or"
        " stderr with its step and seq; after a seq, only newer entries.",
        Operation("GET", WORKFLOW + "/logs", leave_out=frozenset({"follow"})), read_only=True,
    ),
    ToolSpec(
        "cancel_workflow", "Cancel a run",
        "Cancel a run: its running steps are stopped, steps not started never start, and"
        " it ends cancelled. A run that already ended is left as it is.",
        Operation("POST", WORKFLOW + "/cancel"), idempotent=True, destructive=True,
    ),
    ToolSpec(
        "rerun_workflow", "Rerun a run",
        "Run an ended run again from a step (from; default: every step that did not"
        " succeed), and every step after it; the others take their results from the"
        " earlier run. parameters change a template run's parameters. Returns the new"
        " run's workflow_id, or with wait the run once it ended.",
        Operation("POST", WORKFLOW + "/rerun"), starts_run=True,
    ),
)  # fmt: skip


def offered(document: Json) -> dict[str, Offered]:
    return {spec.name: spec.offered(document) for spec in TOOLS}
