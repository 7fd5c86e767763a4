"""Where a running embedded stack is found: ``.aiop/stack.json`` in this or a parent directory.

Commands run in another terminal use it without configuration; ``AIOP_URL``,
``AIOP_TOKEN``, ``AIOP_NATS_URL`` and ``AIOP_NATS_SEED_FILE`` point them at a remote
platform instead.
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR = ".aiop"
STACK_FILE = "stack.json"


@dataclass
class Stack:
    gateway_url: str
    nats_url: str
    database_url: str
    trace_dir: str
    dev_key_file: str
    pid: int
    # The operator's NATS identity: read-only, for `aiop tail` and `aiop logs`.
    operator_seed_file: str | None = None

    def write(self, state_dir: Path) -> None:
        path = state_dir / STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


def find_state_dir(start: Path | None = None) -> Path | None:
    """The nearest ``.aiop`` directory holding a stack file, walking up from ``start``."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / STATE_DIR / STACK_FILE).exists():
            return directory / STATE_DIR
    return None


def load_stack() -> Stack | None:
    state_dir = find_state_dir()
    if state_dir is None:
        return None
    return Stack(**json.loads((state_dir / STACK_FILE).read_text()))


class NoPlatform(RuntimeError):
    """No running platform could be found."""


def nats_url() -> str:
    if url := os.environ.get("AIOP_NATS_URL"):
        return url
    stack = load_stack()
    if stack is None:
        raise NoPlatform("no running platform: start one with `aiop up`, or set AIOP_NATS_URL")
    return stack.nats_url


def nats_seed_file() -> str | None:
    """The NATS identity to read the bus with: the operator's of the embedded stack."""
    if seed := os.environ.get("AIOP_NATS_SEED_FILE"):
        return seed
    stack = load_stack()
    return stack.operator_seed_file if stack is not None else None
