"""What the steps of one run produced, and the shared step cache behind it.

Before a step runs, its cache key is looked up: a hit restores its outputs and it does
not run. A step that opted out of the cache is looked up only by a later attempt of its
own workflow, which resumes it. After a step succeeds its outputs are stored and its
entry recorded, before its completion is announced: a run that dies after announcing a
step never runs that step again.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiop.contracts import StepSpec, WorkflowRequested
from aiop.contracts.cache import cache_entry_key, resume_entry_key
from aiop.contracts.events import now
from aiop.dagger_executor.adapters.artifacts import CacheCounts, StepStore, StoredEntry
from aiop.dagger_executor.domain.step_key import result_digest, step_key, uncached_result

log = logging.getLogger("aiop.dagger_executor.results")


@dataclass(frozen=True)
class Kept:
    outputs_digest: str | None = None
    outputs_size: int = 0
    entry_key: str | None = None  # where its entry is recorded, for a rerun to take


@dataclass(frozen=True)
class Reused:
    """A stored result that stands for a step, and where it was found."""

    entry: StoredEntry
    entry_key: str
    source: str  # "cache" | "resumed" | "rerun"


class RunResults:
    def __init__(self, request: WorkflowRequested, store: StepStore | None) -> None:
        self._request = request
        self._store = store
        self._results: dict[str, str] = {}  # step -> the digest its dependants' keys use
        self._outputs: dict[str, str | None] = {}  # step -> its outputs archive

    def key(self, step: StepSpec) -> str:
        """The step's cache key; "" when it opted out, or an agent takes it (its work
        need not repeat: a later attempt or a rerun still takes its stored result)."""
        if not step.cache or step.agent is not None:
            return ""
        needs = {name: self._results[name] for name in step.needs}
        return step_key(self._request.spec.project, step, needs)

    async def reuse(self, step: StepSpec, key: str, workdir: Path) -> Reused | None:
        """The entry that gives ``step`` its result without running it, its outputs
        restored under ``workdir``; None to run it.

        A rerun names the entries of the steps it takes from the run it reruns, and
        runs the others afresh; elsewhere steps are looked up by cache key, or, on a later attempt, by the earlier
        attempt's record of an uncached step."""
        if self._store is None:
            return None
        wf, spec = self._request.workflow_id, self._request.spec
        if spec.reuse.get(step.name) == "":
            return None  # a rerun runs it afresh
        if step.name in spec.reuse:
            entry_key, source = spec.reuse[step.name], "rerun"
        elif key:
            entry_key, source = cache_entry_key(key), "cache"
        elif self._request.attempt > 1:
            entry_key, source = resume_entry_key(wf, step.name), "resumed"
        else:
            return None
        counts = self._store.counts if source == "cache" else None  # lookups by key only
        try:
            entry = await self._store.lookup(entry_key)
            if entry is None or not _may_take(entry, step, spec.project, source, wf):
                _missed(counts)
                return None
            digest = entry.outputs_digest
            if digest and not await self._store.restore(digest, workdir):
                _missed(counts, outputs_gone=True)
                return None
        except Exception:  # the cache is an optimisation: when it fails, the step runs
            log.warning("step cache lookup failed for %s; running it", step.name, exc_info=True)
            _missed(counts)
            return None
        if counts is not None:
            counts.hits += 1
        self._results[step.name], self._outputs[step.name] = entry.result, entry.outputs_digest
        if source == "cache" and entry.workflow_id == wf:
            source = "resumed"  # an earlier attempt of this run stored it
        return Reused(entry, entry_key, source)

    async def put_inputs(self, step: StepSpec, workdir: Path) -> str | None:
        """Put the outputs of the steps ``step`` takes inputs from into place; what is
        missing, if anything."""
        for need, path in step.inputs.items():
            digest = self._outputs.get(need)
            if digest is None:
                return f"step {need!r} produced no outputs to take as inputs"
            if self._store is None or not await self._store.restore(digest, workdir / path):
                return f"the outputs of step {need!r} are no longer stored"
        return None

    async def keep(
        self, step: StepSpec, key: str, workdir: Path, took: float, summary: dict[str, Any]
    ) -> Kept:
        """Store what ``step`` produced (its summary scrubbed already); MissingOutput when
        it lacks an output it names."""
        kept = Kept()
        if step.outputs:
            if self._store is None:
                raise RuntimeError("outputs need the step store, which this executor lacks")
            kept = Kept(*await self._store.keep(workdir, step.outputs))
        req = self._request
        result = (
            result_digest(key, kept.outputs_digest)
            if key
            else uncached_result(req.workflow_id, req.attempt, step.name)
        )
        self._results[step.name], self._outputs[step.name] = result, kept.outputs_digest
        if self._store is not None:
            entry = StoredEntry(
                key=key, result=result, project=req.spec.project, step=step.name,
                workflow_id=req.workflow_id, attempt=req.attempt, created_at=now(),
                outputs_digest=kept.outputs_digest, outputs_size=kept.outputs_size,
                duration_s=took, summary=summary,
            )  # fmt: skip
            entry_key = (
                cache_entry_key(key) if key else resume_entry_key(req.workflow_id, step.name)
            )
            try:
                await self._store.record(entry_key, entry)
                kept = Kept(kept.outputs_digest, kept.outputs_size, entry_key)
            except Exception:  # a result not recorded is only a miss later
                log.warning("recording %s in the step cache failed", step.name, exc_info=True)
        return kept


def _may_take(entry: StoredEntry, step: StepSpec, project: str, source: str, wf: str) -> bool:
    """Whether ``entry`` may stand for ``step``: only a result of the same project, and,
    where it was named rather than found by key, of the same step (a rerun), or of this
    very workflow (a resumed attempt)."""
    if entry.project != project:
        return False
    if source == "rerun":
        return entry.step == step.name
    return source == "cache" or entry.workflow_id == wf


def _missed(counts: CacheCounts | None, outputs_gone: bool = False) -> None:
    """Count a lookup by cache key that gave no result."""
    if counts is not None:
        counts.misses += 1
        counts.outputs_gone += outputs_gone
