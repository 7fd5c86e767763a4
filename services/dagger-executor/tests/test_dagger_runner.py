"""The Dagger runner through the real dagger-io SDK.

A stand-in engine (an HTTP server answering GraphQL on ``/query`` with basic auth, as the
SDK talks to a session named by DAGGER_SESSION_PORT and DAGGER_SESSION_TOKEN) records
every query and answers with plausible data, so the mapping of each step field onto the
engine is checked without one. Pointed at a port nobody listens on, the runner and its
circuit breaker show what an executor does while the engine is away. A last test runs a
step on a live engine, and is skipped where none is reachable.
"""

import asyncio
import base64
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import graphql
import pytest

from aiop.contracts import Event, ExecutorCircuitChanged, RegistryAuth, StepSpec
from aiop.dagger_executor.adapters.breaker import CircuitBreaker, State
from aiop.dagger_executor.adapters.dagger_runner import DaggerRunner, EngineError
from aiop.dagger_executor.adapters.engine import detect_engine
from aiop.dagger_executor.adapters.fallback import FallbackRunner, circuit_announcer
from aiop.dagger_executor.adapters.local import LocalRunner
from aiop.dagger_executor.adapters.runner import REQUIRED_CAPABILITIES

TOKEN = "session-token"

# The part of the engine's API the runner uses, typed as the engine types it.
SCHEMA = graphql.build_schema("""
    interface Node { id: ID! }
    scalar Platform
    scalar ContainerID
    scalar SecretID
    scalar CacheVolumeID
    scalar DirectoryID
    scalar FileID
    enum ReturnType { ANY FAILURE SUCCESS }
    enum ExistsType { DIRECTORY_TYPE REGULAR_TYPE SYMLINK_TYPE }
    enum CacheSharingMode { SHARED PRIVATE LOCKED }
    type Query {
      container(platform: Platform): Container!
      setSecret(name: String!, plaintext: String!): Secret!
      cacheVolume(key: String!, sharing: CacheSharingMode, owner: String): CacheVolume!
      host: Host!
      version: String!
      node(id: ID!): Node
    }
    type Container implements Node {
      id: ID!
      from(address: String!): Container!
      withRegistryAuth(address: String!, username: String!, secret: SecretID!): Container!
      withWorkdir(path: String!, expand: Boolean): Container!
      withEnvVariable(name: String!, value: String!, expand: Boolean): Container!
      withSecretVariable(name: String!, secret: SecretID!): Container!
      withMountedCache(path: String!, cache: CacheVolumeID!, sharing: CacheSharingMode,
                       owner: String, expand: Boolean): Container!
      withMountedDirectory(path: String!, source: DirectoryID!, owner: String,
                           readOnly: Boolean, expand: Boolean): Container!
      withNewFile(path: String!, contents: String!, permissions: Int, owner: String,
                  expand: Boolean): Container!
      withExec(args: [String!]!, expect: ReturnType, useEntrypoint: Boolean): Container!
      sync: ContainerID!
      exitCode: Int!
      stdout: String!
      stderr: String!
      exists(path: String!, expectedType: ExistsType, doNotFollowSymlinks: Boolean,
             expand: Boolean): Boolean!
      directory(path: String!, expand: Boolean): Directory!
      file(path: String!, expand: Boolean): File!
    }
    type Secret implements Node { id: ID! }
    type CacheVolume implements Node { id: ID! }
    type Host implements Node {
      id: ID!
      directory(path: String!, noCache: Boolean, exclude: [String!], include: [String!]): Directory!
    }
    type Directory implements Node { id: ID!  export(path: String!, wipe: Boolean): String! }
    type File implements Node { id: ID!  export(path: String!, allowParentDirPath: Boolean): String! }
""")


class StandInEngine:
    """An engine session on ``port`` (a free one if 0) that records what it is asked.

    ``queries``: the text of every GraphQL request; ``calls``: (type, field, arguments)
    of every field it resolved; ``exports``: (what, path in the container, host path).
    Directories and files a step produced are named in ``dirs`` and ``files``.
    """

    def __init__(self, port: int = 0, dirs: set[str] | None = None,
                 files: set[str] | None = None) -> None:  # fmt: skip
        self.queries: list[str] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.exports: list[tuple[str, str, str]] = []
        self.dirs = dirs or set()
        self.files = files or set()
        self.exit_code = 0
        self.stdout, self.stderr = "built\n", "warning: none\n"
        self._objects: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                expected = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
                if self.path != "/query" or self.headers.get("Authorization") != expected:
                    self.send_error(401)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = json.dumps(engine.answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.queries.append(body["query"])
            result = graphql.graphql_sync(
                SCHEMA, body["query"], variable_values=body.get("variables"),
                operation_name=body.get("operationName"), field_resolver=self._resolve,
            )  # fmt: skip
        return dict(result.formatted)

    def _new(self, kind: str, **state: Any) -> dict[str, Any]:
        obj = {"__typename": kind, "id": f"{kind}:{next(self._ids)}", **state}
        self._objects[obj["id"]] = obj
        return obj

    def _resolve(self, parent: Any, info: Any, /, **args: Any) -> Any:
        field = info.field_name
        if field.startswith("__"):
            return graphql.default_field_resolver(parent, info, **args)
        self.calls.append((info.parent_type.name, field, args))
        match field:
            case "id" | "sync":
                return parent["id"]
            case "node":
                return self._objects[args["id"]]
            case "version":
                return "v0.21.11"
            case "exitCode":
                return self.exit_code
            case "stdout" | "stderr":
                return getattr(self, field)
            case "exists":
                if args.get("expectedType") == "DIRECTORY_TYPE":
                    return args["path"] in self.dirs
                return args["path"] in self.dirs | self.files
            case "export":
                self.exports.append((parent["__typename"], parent.get("path", ""), args["path"]))
                return args["path"]
        kind = graphql.get_named_type(info.return_type)
        assert isinstance(kind, graphql.GraphQLObjectType), field
        return self._new(kind.name, path=args.get("path"))

    def called(self, field: str, on: str | None = None) -> list[dict[str, Any]]:
        """The arguments of each call of ``field`` (of type ``on``)."""
        return [args for kind, name, args in self.calls if name == field and on in (None, kind)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A session port nobody listens on (yet), named as the SDK finds it."""
    port = free_port()
    monkeypatch.setenv("DAGGER_SESSION_PORT", str(port))
    monkeypatch.setenv("DAGGER_SESSION_TOKEN", TOKEN)
    yield port


class Output:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, str]] = []

    async def __call__(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))


EVERY_FIELD = StepSpec(
    name="build",
    image="registry.example.com/team/builder:1.4",
    run=["make", "dist", "REPORT=report.txt"],
    env={"GREETING": "hi", "LEVEL": "3"},
    secrets=["API_TOKEN"],
    caches={"pip": ".cache/pip", "apt": "/var/cache/apt"},
    inputs={"fetch": "in/src"},
    needs=["fetch"],
    outputs=["dist", "report.txt", "never-made"],
    registry_auth=RegistryAuth(
        address="registry.example.com", username="robot", secret="REGISTRY_PASSWORD"
    ),
    files={"conf/app.toml": "level = 3\n", "in/src/extra.txt": "in an input"},
)


async def test_every_step_field_reaches_the_engine(session: int, tmp_path: Path) -> None:
    made = {"/work/report.txt", "/work/.aiop-summary.json"}
    engine = StandInEngine(session, dirs={"/work/dist"}, files=made)
    (tmp_path / "in" / "src").mkdir(parents=True)  # the executor put fetch's outputs here
    secrets = {"API_TOKEN": "tok-5ecret-value", "REGISTRY_PASSWORD": "reg-pa55word"}
    out = Output()
    runner = DaggerRunner()
    try:
        env = {"GREETING": "hi", "LEVEL": "3", "AIOP_SUMMARY": str(tmp_path / "summary.json")}
        result = await runner.run(EVERY_FIELD, tmp_path, env, secrets, out)
    finally:
        await runner.close()
        engine.stop()

    assert result.succeeded
    assert result.runner == "dagger"
    assert out.chunks == [("stdout", "built\n"), ("stderr", "warning: none\n")]
    assert engine.called("from") == [{"address": "registry.example.com/team/builder:1.4"}]
    assert engine.called("withWorkdir") == [{"path": "/work"}]
    # The registry's password is set as a secret and used for the pull, nothing else.
    [auth] = engine.called("withRegistryAuth")
    assert auth["address"] == "registry.example.com"
    assert auth["username"] == "robot"
    set_secrets = {a["plaintext"]: a["name"] for a in engine.called("setSecret")}
    assert set(set_secrets) == {"tok-5ecret-value", "reg-pa55word"}
    assert auth["secret"] == secret_id(engine, "reg-pa55word")
    assert {(a["name"], a["value"]) for a in engine.called("withEnvVariable")} == {
        ("GREETING", "hi"),
        ("LEVEL", "3"),
        ("AIOP_SUMMARY", "/work/.aiop-summary.json"),  # the host's path means nothing there
    }
    assert engine.called("withSecretVariable") == [
        {"name": "API_TOKEN", "secret": secret_id(engine, "tok-5ecret-value")}
    ]
    for value in secrets.values():  # a value travels in its setSecret call only
        holding = [q for q in engine.queries if value in q]
        assert holding, value
        assert all("setSecret" in q for q in holding), value
    volumes = {a["key"] for a in engine.called("cacheVolume")}
    assert volumes == {"pip", "apt"}
    mounts = {a["path"] for a in engine.called("withMountedCache")}
    assert mounts == {"/work/.cache/pip", "/var/cache/apt"}
    assert engine.called("directory", on="Host") == [
        {"path": str(tmp_path / "in" / "src"), "noCache": True}
    ]
    [mount] = engine.called("withMountedDirectory")
    assert mount["path"] == "/work/in/src"
    assert mount["readOnly"] is True
    # The file inside the input's folder is on the host already, in what is mounted.
    assert engine.called("withNewFile") == [{"path": "/work/conf/app.toml",
                                             "contents": "level = 3\n"}]  # fmt: skip
    assert engine.called("withExec") == [
        {"args": ["make", "dist", "REPORT=report.txt"], "expect": "ANY"}
    ]
    assert sorted(engine.exports) == [
        ("Directory", "/work/dist", str(tmp_path / "dist")),
        ("File", "/work/.aiop-summary.json", str(tmp_path / ".aiop-summary.json")),
        ("File", "/work/report.txt", str(tmp_path / "report.txt")),
    ]  # and never-made, which the step did not make, is left for the executor to report
    assert any('from(address: "registry.example.com/team/builder:1.4")' in q
               for q in engine.queries)  # fmt: skip


def secret_id(engine: StandInEngine, plaintext: str) -> str:
    """The id the engine gave the secret set with ``plaintext``."""
    ids = [args for kind, field, args in engine.calls if field == "setSecret"]
    position = [a["plaintext"] for a in ids].index(plaintext)
    secrets = [obj for obj in engine._objects.values() if obj["__typename"] == "Secret"]
    return str(secrets[position]["id"])


async def test_a_failed_step_exports_nothing_and_says_its_exit_code(
    session: int, tmp_path: Path
) -> None:
    engine = StandInEngine(session, dirs={"/work/dist"})
    engine.exit_code = 3
    runner = DaggerRunner()
    try:
        step = StepSpec(name="s", image="alpine:3", run=["false"], outputs=["dist"])
        result = await runner.run(step, tmp_path, {}, {}, Output())
    finally:
        await runner.close()
        engine.stop()
    assert (result.exit_code, result.error, result.runner) == (3, "exited with code 3", "dagger")
    assert engine.exports == []


async def test_registry_auth_without_its_secret_fails_before_the_pull(
    session: int, tmp_path: Path
) -> None:
    engine = StandInEngine(session)
    runner = DaggerRunner()
    try:
        step = StepSpec(name="s", image="ghcr.io/me/app", run=["true"],
                        registry_auth=RegistryAuth(address="ghcr.io", username="me",
                                                   secret="GHCR"))  # fmt: skip
        result = await runner.run(step, tmp_path, {}, {}, Output())
    finally:
        await runner.close()
        engine.stop()
    assert not result.succeeded
    assert "GHCR" in (result.error or "")
    assert engine.called("withExec") == []


async def test_one_session_serves_every_step_and_a_lost_one_is_replaced(
    session: int, tmp_path: Path
) -> None:
    runner = DaggerRunner()
    step = StepSpec(name="s", run=["true"])
    try:
        with pytest.raises(EngineError, match="connect"):
            await runner.run(step, tmp_path, {}, {}, Output())  # no engine yet
        engine = StandInEngine(session)
        try:
            for _ in range(3):
                assert (await runner.run(step, tmp_path, {}, {}, Output())).succeeded
            # One session: the schema was fetched once.
            assert sum("__schema" in q for q in engine.queries) == 1
        finally:
            engine.stop()
        with pytest.raises(EngineError):
            await runner.run(step, tmp_path, {}, {}, Output())  # the engine went away
        engine = StandInEngine(session)  # and came back: a new session, not the dead one
        try:
            assert (await runner.run(step, tmp_path, {}, {}, Output())).succeeded
            assert sum("__schema" in q for q in engine.queries) == 1
        finally:
            engine.stop()
    finally:
        await runner.close()


class Published:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    def circuit(self) -> list[ExecutorCircuitChanged]:
        return [e for e in self.events if isinstance(e, ExecutorCircuitChanged)]


async def test_the_circuit_opens_on_a_refusing_engine_and_a_probe_closes_it(
    session: int, tmp_path: Path
) -> None:
    published = Published()
    breaker = CircuitBreaker(threshold=2, cooldown_s=0.3, max_cooldown_s=1.0)
    runner = FallbackRunner(DaggerRunner(), LocalRunner(), breaker,
                            circuit_announcer(published.publish, "ex-1", "gpu"))  # fmt: skip
    step = StepSpec(name="s", image="alpine:3", run=["echo", "hello"])
    engine: StandInEngine | None = None
    try:
        for expected in (State.CLOSED, State.OPEN):  # nobody listens on the session port
            out = Output()  # each failure counts against the engine; the step runs locally
            result = await runner.run(step, tmp_path / "a", {}, {}, out)
            assert (result.exit_code, result.runner) == (0, "local")
            assert ("stdout", "hello\n") in out.chunks
            said = "".join(text for stream, text in out.chunks if stream == "stderr")
            assert "the Dagger engine is unavailable" in said
            assert "connect" in said
            assert "running the step with the local runner" in said
            assert breaker.state is expected
        assert runner.name == "local"
        assert runner.withheld() == {"dagger"}

        out = Output()  # open: the local runner takes the step
        result = await runner.run(step, tmp_path / "b", {}, {}, out)
        assert (result.exit_code, result.runner) == (0, "local")
        assert ("stdout", "hello\n") in out.chunks

        token = REQUIRED_CAPABILITIES.set(frozenset({"dagger"}))
        try:  # ...but not the step of a workflow that requires dagger
            out = Output()
            result = await runner.run(step, tmp_path / "c", {}, {}, out)
        finally:
            REQUIRED_CAPABILITIES.reset(token)
        assert result.runner is None
        assert not result.succeeded
        assert "requires dagger" in (result.error or "")
        assert out.chunks == []

        engine = StandInEngine(session)  # the engine is back; the probe finds it
        await until(lambda: breaker.state is State.CLOSED, 10)
        assert runner.name == "dagger"
        assert runner.withheld() == frozenset()
        result = await runner.run(step, tmp_path / "d", {}, {}, Output())
        assert (result.exit_code, result.runner) == (0, "dagger")
        assert engine.called("withExec") == [{"args": ["echo", "hello"], "expect": "ANY"}]
    finally:
        await runner.close()
        if engine is not None:
            engine.stop()

    events = published.circuit()
    assert [e.state for e in events[:2]] == ["open", "half_open"]
    assert events[-1].state == "closed"
    assert events[-1].runner == "dagger"
    assert {(e.executor_id, e.pool) for e in events} == {("ex-1", "gpu")}
    opened = events[0]
    assert opened.failures == 2
    assert opened.runner == "local"
    assert opened.probe_in_s == 0.3
    assert "connect" in opened.reason
    assert opened.subject() == "aiop.executor.circuit.v1.gpu.ex-1"


async def test_a_step_that_exits_non_zero_is_no_engine_failure(
    session: int, tmp_path: Path
) -> None:
    engine = StandInEngine(session)
    engine.exit_code = 1
    breaker = CircuitBreaker(threshold=1, cooldown_s=60)
    runner = FallbackRunner(DaggerRunner(), LocalRunner(), breaker)
    try:
        for _ in range(3):
            result = await runner.run(StepSpec(name="s", run=["false"]), tmp_path, {}, {},
                                      Output())  # fmt: skip
            assert (result.exit_code, result.runner) == (1, "dagger")
    finally:
        await runner.close()
        engine.stop()
    assert breaker.state is State.CLOSED


async def until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


LIVE = detect_engine()


@pytest.mark.dagger
@pytest.mark.skipif(not LIVE.available, reason=f"no Dagger engine: {LIVE.reason}")
async def test_step_runs_in_its_image_with_env_and_secret(tmp_path: Path) -> None:
    chunks: list[tuple[str, str]] = []

    async def sink(stream: str, text: str) -> None:
        chunks.append((stream, text))

    runner = DaggerRunner()
    try:
        step = StepSpec(
            name="s", image="alpine:3", run=["sh", "-c", 'echo "$GREETING $TOKEN"; exit 4']
        )
        result = await runner.run(step, tmp_path, {"GREETING": "hello"}, {"TOKEN": "tok"}, sink)
    finally:
        await runner.close()
    assert result.exit_code == 4
    assert any("hello" in text for _, text in chunks)
