"""The cache key of a step: a digest of everything that determines its result.

That is its image, argv, environment, the names of its secrets (never their values), its
registry, inputs, outputs, network and files, and the result of every step it needs, so a
step whose upstream changed misses, and so does everything downstream of it. Secret
values, timeouts, retries and cache volumes change how a step runs, not what it produces.
"""

import hashlib
from collections.abc import Mapping

import msgspec

from aiop.contracts import StepSpec

VERSION = 1  # bump when what goes into the key changes


def step_key(project: str, step: StepSpec, needs: Mapping[str, str]) -> str:
    """``needs``: the result digest of each step ``step`` needs."""
    auth = step.registry_auth
    material = {
        "v": VERSION,
        "project": project,
        "image": step.image,
        "run": step.run,
        "env": sorted(step.env.items()),
        "secrets": sorted(step.secrets),
        "registry": [auth.address, auth.username, auth.secret] if auth else None,
        "inputs": sorted(step.inputs.items()),
        "outputs": step.outputs,
        "network": step.network,
        "needs": sorted((name, needs[name]) for name in step.needs),
    }
    if step.files:  # only then: the keys of steps without files stay what they were
        material["files"] = sorted(step.files.items())
    return hashlib.sha256(msgspec.json.encode(material)).hexdigest()


def result_digest(key: str, outputs_digest: str | None) -> str:
    """What a step's result contributes to the keys of the steps that need it."""
    return hashlib.sha256(f"{key}\0{outputs_digest or ''}".encode()).hexdigest()


def uncached_result(workflow_id: str, attempt: int, step: str) -> str:
    """The result digest of a step that opted out of the cache: unique to the run that
    produced it, so nothing downstream of it is reused from another workflow."""
    return hashlib.sha256(f"run\0{workflow_id}\0{attempt}\0{step}".encode()).hexdigest()
