"""Stored secrets at a step's start: opened from KV aiop_secrets with the executor's key,
handed to the step as environment variables, and never in an event, whole, encoded or
split across writes (docs/security.md, "Secrets")."""

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.js.kv import KeyValue

from aiop.contracts import (
    Event,
    RetryPolicy,
    StepCompleted,
    StepFailed,
    StepOutputAppended,
    StepSpec,
)
from aiop.contracts.secrets import (
    StoredSecret,
    encode_stored,
    generate_key_pair,
    key_id,
    load_public_key,
    seal,
    secret_key,
)
from aiop.contracts.subjects import KV_SECRETS
from aiop.dagger_executor.adapters.secret_store import SecretStore
from aiop.dagger_executor.domain.scrub import Scrubber
from aiop.dagger_executor.step_output import FLUSH_INTERVAL, StepOutput
from aiop.servicekit import open_bucket

from .conftest import Collected, RunSteps

PY = sys.executable
VALUE = "canary-Zq8v1-9f2e7d"


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex(), raw.hex().upper()]


def output_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, StepOutputAppended))


async def test_a_secret_split_across_flushed_writes_is_still_masked() -> None:
    events: list[Event] = []

    async def publish(event: Event) -> None:
        events.append(event)

    output = StepOutput(publish, workflow_id="wf", step="s", attempt=1,
                        scrub=Scrubber([VALUE]), flush_interval=0.05)  # fmt: skip
    await output.write("stdout", "token=" + VALUE[:7])
    await asyncio.sleep(0.2)  # several flushes pass between the halves
    assert events, "what cannot begin the secret goes out at the next flush"
    await output.write("stdout", VALUE[7:] + "\n")
    await output.close()
    text = output_of(events)
    assert text == "token=***\n"
    assert all(form not in repr(events) for form in forms(VALUE))
    assert output.tail() == "token=***"


async def test_output_without_secrets_is_not_held_back() -> None:
    events: list[Event] = []

    async def publish(event: Event) -> None:
        events.append(event)

    output = StepOutput(publish, workflow_id="wf", step="s", attempt=1, scrub=Scrubber(),
                        flush_interval=0.05)  # fmt: skip
    await output.write("stdout", "half a li")
    await asyncio.sleep(0.2)
    assert output_of(events) == "half a li"
    await output.close()


@pytest.fixture
async def stored(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[KeyValue, SecretStore]]:
    """KV aiop_secrets on the test's nats-server, a sealing function, and the executor's
    store opened with the matching private key."""
    private_pem, public_pem = generate_key_pair()
    (tmp_path / "secrets-key.pem").write_bytes(private_pem)
    (tmp_path / "secrets-public.pem").write_bytes(public_pem)
    nc = await nats.connect(nats_url)
    kv = await open_bucket(nc.jetstream(), KV_SECRETS)
    store = SecretStore(tmp_path / "secrets-key.pem")
    await store.open(nc.jetstream())
    yield kv, store
    await nc.close()


async def put_secret(kv: KeyValue, tmp_path: Path, project: str, name: str, value: str) -> None:
    """What the gateway stores for PUT /v1/secrets/{name}?project=..."""
    public = load_public_key((tmp_path / "secrets-public.pem").read_bytes())
    key = secret_key(project, name)
    at = datetime.now(UTC)
    stored = StoredSecret(name=name, project=project, created_at=at, updated_at=at,
                          key_id=key_id(public), sealed=seal(public, value.encode(), key.encode()))  # fmt: skip
    await kv.put(key, encode_stored(stored))


@pytest.mark.integration
async def test_a_step_gets_a_stored_secret_as_an_environment_variable(
    stored: tuple[KeyValue, SecretStore], tmp_path: Path, run_steps: RunSteps
) -> None:
    kv, store = stored
    await put_secret(kv, tmp_path, "default", "api_token", VALUE)
    await put_secret(kv, tmp_path, "other", "api_token", "another-projects-value")
    check = f"import os, sys; sys.exit(0 if os.environ['api_token'] == {VALUE!r} else 1)"
    step = StepSpec(name="s", run=[PY, "-c", check], secrets=["api_token"])
    # The stored secret comes before the executor's own variable.
    sink = await run_steps(step, environ={"AIOP_SECRET_API_TOKEN": "from-env"},
                           lookup=store.lookup)  # fmt: skip
    assert sink.of(StepCompleted), sink.events
    # Without a stored one, the variable is still the fallback.
    env_only = "import os, sys; sys.exit(0 if os.environ['db'] == 'from-env' else 1)"
    sink = await run_steps(StepSpec(name="s", run=[PY, "-c", env_only], secrets=["db"]),
                           environ={"AIOP_SECRET_DB": "from-env"}, lookup=store.lookup)  # fmt: skip
    assert sink.of(StepCompleted), sink.events


@pytest.mark.integration
async def test_an_unknown_secret_fails_the_step_before_it_starts_naming_it(
    stored: tuple[KeyValue, SecretStore], tmp_path: Path, run_steps: RunSteps
) -> None:
    kv, store = stored
    await put_secret(kv, tmp_path, "other", "elsewhere", VALUE)  # another project's
    ran = tmp_path / "ran"
    step = StepSpec(name="s", run=[PY, "-c", f"open({str(ran)!r}, 'w')"],
                    secrets=["elsewhere"])  # fmt: skip
    sink = await run_steps(step, lookup=store.lookup)
    (failed,) = sink.of(StepFailed)
    assert failed.exit_code is None
    assert "elsewhere" in failed.error
    assert "AIOP_SECRET_ELSEWHERE" in failed.error
    assert not ran.exists()
    assert VALUE not in repr(sink.events)


@pytest.mark.integration
async def test_a_value_moved_to_another_name_does_not_open(
    stored: tuple[KeyValue, SecretStore], tmp_path: Path, run_steps: RunSteps
) -> None:
    kv, store = stored
    await put_secret(kv, tmp_path, "default", "theirs", VALUE)
    entry = await kv.get(secret_key("default", "theirs"))
    await kv.put(secret_key("default", "mine"), entry.value or b"")  # a copy, as is
    sink = await run_steps(StepSpec(name="s", run=[PY, "-c", "pass"], secrets=["mine"]),
                           lookup=store.lookup)  # fmt: skip
    (failed,) = sink.of(StepFailed)
    assert "mine" in failed.error
    assert "cannot be opened" in failed.error
    assert VALUE not in repr(sink.events)


@pytest.mark.integration
async def test_the_secret_canary_never_reaches_an_event(
    stored: tuple[KeyValue, SecretStore], tmp_path: Path, run_steps: RunSteps
) -> None:
    kv, store = stored
    await put_secret(kv, tmp_path, "default", "api_token", VALUE)
    pause = FLUSH_INTERVAL * 3  # several flushes between the two halves
    script = (
        "import base64, os, sys, time\n"
        "v = os.environ['api_token']\n"
        "print('raw', v, flush=True)\n"
        "print('b64', base64.b64encode(v.encode()).decode(), flush=True)\n"
        "print('hex', v.encode().hex(), v.encode().hex().upper(), flush=True)\n"
        "sys.stdout.write('split ' + v[:8]); sys.stdout.flush()\n"
        f"time.sleep({pause})\n"
        "sys.stdout.write(v[8:] + '\\n'); sys.stdout.flush()\n"
        "sys.stderr.write('err ' + v + '\\n')\n"
        "sys.exit('bad token ' + v)\n"
    )
    step = StepSpec(name="s", run=[PY, "-c", script], secrets=["api_token"],
                    retries=RetryPolicy(attempts=2, backoff=0.01))  # fmt: skip
    sink: Collected = await run_steps(step, lookup=store.lookup)
    everything, text = repr(sink.events), output_of(sink.events)
    for form in forms(VALUE):
        assert form not in everything, form
        assert form not in text, form  # nor across the events, joined
    assert "raw ***" in text
    assert "b64 ***" in text
    assert "hex *** ***" in text
    assert "split ***" in text
    (failed,) = sink.of(StepFailed)
    assert "***" in failed.output_tail
