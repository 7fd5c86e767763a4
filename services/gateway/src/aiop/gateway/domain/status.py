"""The body of GET /v1/workflows/{id}: task-manager's view plus reporter's summary."""

import msgspec

from aiop.contracts.queries import WorkflowView


def encode_status(view: WorkflowView, report: bytes | None) -> bytes:
    """The view's fields plus ``report`` (reporter's JSON, already checked, or null).

    Spliced rather than re-encoded: the report is passed through as reporter wrote it.
    """
    body = msgspec.json.encode(view)
    return body[:-1] + b',"report":' + (report or b"null") + b"}"
