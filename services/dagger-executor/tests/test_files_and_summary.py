"""A step's ``files``, written into its work directory before it runs and part of its cache
key, and its summary: the JSON object it leaves in ``$AIOP_SUMMARY``, published in
StepCompleted, kept with its cache entry for StepCached, and scrubbed of secrets."""

import os
from pathlib import Path
from types import SimpleNamespace

import msgspec
import nats.js.errors
import pytest

from aiop.contracts import (
    StepCached,
    StepCompleted,
    StepFailed,
    StepSpec,
    StepStarted,
    WorkflowSpec,
    validate_spec,
)
from aiop.contracts.cache import CacheEntry, cache_entry_key
from aiop.contracts.events import now
from aiop.dagger_executor.adapters.artifacts import CacheLimits, StepStore
from aiop.dagger_executor.adapters.isolation import choose
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.domain.scrub import Scrubber
from aiop.dagger_executor.domain.summary import MAX_SUMMARY_BYTES, parse_summary, scrub_summary

from .conftest import Collected, RunSteps

SECRET = "s3cr3t-value"


class MemoryKV:
    """Stands in for KV aiop_step_cache."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def get(self, key: str) -> SimpleNamespace:
        if key not in self.values:
            raise nats.js.errors.KeyNotFoundError
        return SimpleNamespace(value=self.values[key])

    async def put(self, key: str, value: bytes) -> None:
        self.values[key] = value


class MemoryObjects:
    """Stands in for Object Store aiop_outputs."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get_info(self, name: str) -> SimpleNamespace:
        if name not in self.data:
            raise nats.js.errors.ObjectNotFoundError
        return SimpleNamespace(name=name)

    async def put(self, name: str, data: bytes) -> None:
        self.data[name] = data

    async def get(self, name: str) -> SimpleNamespace:
        if name not in self.data:
            raise nats.js.errors.ObjectNotFoundError
        return SimpleNamespace(data=self.data[name])


@pytest.fixture
def store() -> StepStore:
    """The real StepStore (entries encoded and decoded as stored) over in-memory buckets."""
    step_store = StepStore(CacheLimits(ttl_s=60, max_bytes=1 << 20))
    step_store._kv, step_store._objects = MemoryKV(), MemoryObjects()  # type: ignore[assignment]
    return step_store


def sh(script: str, **fields: object) -> StepSpec:
    return StepSpec(name="s", run=["sh", "-c", script], **fields)  # type: ignore[arg-type]


def completed(sink: Collected) -> StepCompleted:
    [done] = sink.of(StepCompleted)
    assert isinstance(done, StepCompleted)
    return done


def writes_summary(text: str, **fields: object) -> StepSpec:
    """A step that writes ``text`` (one shell word, quoted) to its summary file."""
    return sh(f"printf '%s' '{text}' > \"$AIOP_SUMMARY\"", **fields)


async def test_a_steps_files_are_in_its_work_directory_when_it_starts(
    run_steps: RunSteps,
) -> None:
    files = {"conf/app.toml": "level = 3\n", "run.txt": "ünïcode"}
    sink = await run_steps(sh("cat conf/app.toml run.txt; stat -c %a conf conf/app.toml",
                              files=files))  # fmt: skip
    completed(sink)
    assert sink.output("s") == "level = 3\nünïcode755\n644\n"


async def test_a_changed_file_is_a_cache_miss_and_an_unchanged_one_a_hit(
    run_steps: RunSteps, store: StepStore
) -> None:
    def step(text: str) -> StepSpec:
        return sh("cat conf.txt", files={"conf.txt": text})

    first = await run_steps(step("v1"), store=store, workflow_id="wf-a")
    assert [e.step for e in first.of(StepStarted)] == ["s"]  # type: ignore[attr-defined]
    same = await run_steps(step("v1"), store=store, workflow_id="wf-b")
    assert same.of(StepStarted) == []
    [hit] = same.of(StepCached)
    assert isinstance(hit, StepCached)
    assert hit.from_workflow_id == "wf-a"
    changed = await run_steps(step("v2"), store=store, workflow_id="wf-c")
    assert changed.of(StepCached) == []
    assert changed.output("s") == "v2"
    # What the heartbeat reports (GET /v1/stats/cache sums it over the fleet).
    assert (store.counts.hits, store.counts.misses, store.counts.outputs_gone) == (1, 2, 0)


async def test_a_summary_is_published_and_a_cached_run_publishes_it_again(
    run_steps: RunSteps, store: StepStore
) -> None:
    step = writes_summary('{"tests": 12, "ok": true, "cover": [0.5, "lines"]}')
    first = await run_steps(step, store=store, workflow_id="wf-a")
    summary = {"tests": 12, "ok": True, "cover": [0.5, "lines"]}
    assert completed(first).summary == summary
    again = await run_steps(step, store=store, workflow_id="wf-b")
    [hit] = again.of(StepCached)
    assert isinstance(hit, StepCached)
    assert hit.summary == summary


async def test_a_step_that_writes_no_summary_has_an_empty_one(run_steps: RunSteps) -> None:
    sink = await run_steps(sh("echo $AIOP_SUMMARY"))
    assert completed(sink).summary == {}
    assert sink.output("s").strip().endswith("/wf1/2/s/.aiop-summary.json")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "it is not valid JSON"),
        ("[1, 2]", "it is a JSON array, not an object"),
        ('"text"', "it is a JSON string, not an object"),
        ('{"big": "' + "x" * MAX_SUMMARY_BYTES + '"}', "it is over 64 KiB"),
    ],
    ids=["not-json", "array", "string", "too-large"],
)
async def test_an_unusable_summary_is_ignored_and_the_output_says_why(
    run_steps: RunSteps, text: str, why: str
) -> None:
    sink = await run_steps(writes_summary(text))
    assert completed(sink).summary == {}  # the step still succeeded
    assert f"[aiop] the step's summary was ignored: {why}" in sink.output("s")


async def test_a_summary_that_is_a_link_is_not_followed(
    run_steps: RunSteps, tmp_path: Path
) -> None:
    # The executor may be root: a link must not make it publish a file the step could not read.
    platform = tmp_path / "platform.json"
    platform.write_text('{"signing_key": "private"}')
    sink = await run_steps(sh(f'ln -s {platform} "$AIOP_SUMMARY"'))
    assert completed(sink).summary == {}
    assert "[aiop] the step's summary was ignored: it cannot be opened" in sink.output("s")


async def test_a_secret_in_a_summary_is_scrubbed_in_the_event_and_the_cache(
    run_steps: RunSteps, store: StepStore
) -> None:
    token = '"$API_TOKEN"'
    script = f"""printf '{{"token": "%s", "%s": ["x-%s"], "n": 1}}' {token} {token} {token}"""
    step = sh(script + ' > "$AIOP_SUMMARY"', secrets=["API_TOKEN"])
    sink = await run_steps(step, environ={"AIOP_SECRET_API_TOKEN": SECRET}, store=store)
    assert completed(sink).summary == {"token": "***", "***": ["x-***"], "n": 1}
    stored = b"".join(store.kv.values.values())  # type: ignore[attr-defined]
    assert b'"summary"' in stored
    assert SECRET.encode() not in stored


def test_a_summary_is_scrubbed_as_decoded_not_as_json_text() -> None:
    # In JSON text the value is escaped (pa\"ss), where its plain form is not found.
    scrub = Scrubber(['pa"ss', "424242"])
    summary = parse_summary(b'{"password": "pa\\"ss", "pin": 424242, "n": 7, "ok": true}')
    assert scrub_summary(summary, scrub) == {"password": "***", "pin": "***", "n": 7, "ok": True}


async def test_an_entry_stored_without_a_summary_is_still_read(store: StepStore) -> None:
    old = CacheEntry(key="k", result="r", project="default", step="s", workflow_id="wf-old",
                     attempt=1, created_at=now())  # fmt: skip
    await store.kv.put(cache_entry_key("k"), msgspec.json.encode(old))
    entry = await store.lookup(cache_entry_key("k"))
    assert entry is not None
    assert (entry.workflow_id, entry.summary) == ("wf-old", {})


async def test_a_file_that_cannot_be_written_fails_the_step(run_steps: RunSteps) -> None:
    # "a" a file and "a/b" a file beneath it: the second cannot be made.
    sink = await run_steps(sh("true", files={"a": "x", "a/b": "y"}))
    [failed] = sink.of(StepFailed)
    assert isinstance(failed, StepFailed)
    assert failed.error.startswith("its files could not be written")


@pytest.mark.skipif(os.geteuid() != 0, reason="steps get uids of their own only as root")
async def test_a_step_under_its_own_uid_can_change_its_files_and_inputs(
    run_steps: RunSteps, store: StepStore
) -> None:
    make = StepSpec(name="make", run=["sh", "-c", "mkdir out && echo made > out/data.txt"],
                    outputs=["out"])  # fmt: skip
    script = ("echo more >> in/out/data.txt && echo b >> conf/app.toml && touch conf/new in/new"
              " && cat in/out/data.txt conf/app.toml && id -u")  # fmt: skip
    use = StepSpec(name="use", run=["sh", "-c", script], needs=["make"], inputs={"make": "in"},
                   files={"conf/app.toml": "a\n"})  # fmt: skip
    runner = LocalRunner(choose("auto", use_bwrap=False))
    try:
        sink = await run_steps(make, use, store=store, runner=runner)
    finally:
        await runner.close()
    assert len(sink.of(StepCompleted)) == 2, sink.output("use")
    lines = sink.output("use").splitlines()
    assert lines[:4] == ["made", "more", "a", "b"]
    assert int(lines[4]) != 0  # it did run under a uid of its own


def spec(*steps: StepSpec) -> WorkflowSpec:
    return WorkflowSpec(name="w", steps=list(steps))


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../x", "step 's' file path '../x' must be relative and stay in the work directory"),
        ("a/../../x", "step 's' file path 'a/../../x' must be relative"),
        ("/abs", "step 's' file path '/abs' must be relative"),
        ("", "step 's' file path '' must be relative"),
        (".cache/pip/x", "step 's' file path '.cache/pip/x' is inside cache 'pip'"),
    ],
)
def test_a_file_path_must_stay_in_the_work_directory(path: str, problem: str) -> None:
    problems = validate_spec(spec(sh("true", files={path: "x"}, caches={"pip": ".cache/pip"})))
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_a_workflows_files_are_at_most_512_kib_together() -> None:
    half = "x" * (256 * 1024)
    fits = spec(StepSpec(name="a", run=["true"], files={"one": half}),
                StepSpec(name="b", run=["true"], files={"two": half}))  # fmt: skip
    assert validate_spec(fits) == []
    over = spec(StepSpec(name="a", run=["true"], files={"one": half}),
                StepSpec(name="b", run=["true"], files={"two": half + "y"}))  # fmt: skip
    assert validate_spec(over) == [
        "step 'b' file 'two' takes the workflow's files to 524289 bytes, over the limit of 512 KiB"
    ]
    assert validate_spec(spec(sh("true", files={"ok/path.txt": "x"}))) == []
