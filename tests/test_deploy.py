"""The deployments beside `aiop up` (docker-compose.yml, deploy/): their bus is the same
authenticated one, over TLS, and their files are valid for the tools that read them.

No container engine runs here, so docker-compose and Kubernetes are not started; what
can be checked without one is: the NATS configurations load in the real nats-server with
what `aiop bus-config` writes, a service reaches such a server over TLS with its own
identity, the manifests validate against Kubernetes' schemas, and every service of the
compose file uses an identity of its own."""

import asyncio
import json
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import nats
import pytest
import yaml

from aiop.cli.busconfig import write_bus_config
from aiop.cli.services import MODULES
from aiop.devstack import NatsServer
from aiop.devstack.nats import nats_server_binary
from aiop.reporter.main import ReporterSettings, build
from aiop.servicekit.rpc import wait_ready
from aiop.servicekit.streams import ensure_streams

REPO = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.30"


@pytest.fixture
def bus(tmp_path: Path) -> Path:
    folder = tmp_path / "bus"
    write_bus_config(folder, ["localhost", "127.0.0.1", "nats"], owner=None)
    return folder


@pytest.mark.parametrize("conf", ["nats-server.conf", "cluster.conf"])
def test_the_nats_configurations_load_with_a_generated_bus(
    tmp_path: Path, bus: Path, conf: str
) -> None:
    text = (REPO / "deploy" / "nats" / conf).read_text().replace("/etc/nats/bus", str(bus))
    text = text.replace("/data/jetstream", str(tmp_path / "js"))
    (tmp_path / conf).write_text(text)  # beside bus/, as in /etc/nats
    check = subprocess.run(
        [nats_server_binary(), "-c", str(tmp_path / conf), "-t"],
        capture_output=True, text=True, env={**os.environ, "POD_NAME": "nats-0"},
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_the_kubernetes_manifests_validate() -> None:
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_compose_service_reads_the_bus_as_itself_over_tls(bus: Path) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    identities = {p.stem for p in bus.glob("*.nk")}
    for name in [*MODULES, "streams"]:
        env = compose[name]["environment"]
        seed = Path(env["AIOP_NATS_SEED_FILE"]).stem
        assert seed == (name if name != "streams" else "admin"), name
        assert seed in identities
        assert env["AIOP_NATS_URL"].startswith("tls://"), name
        assert env["AIOP_NATS_CA_FILE"].endswith("ca.pem"), name


def test_only_executors_get_the_key_that_opens_secrets(bus: Path) -> None:
    """docs/security.md, "Secrets": the gateway seals with the public key only."""
    private = bus / "secrets-key.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    kept = private.read_bytes()
    write_bus_config(bus, ["localhost"], owner=None)
    assert private.read_bytes() == kept  # a new pair would orphan every stored secret
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, service in compose.items():
        env = service.get("environment", {})
        assert ("AIOP_SECRETS_KEY_FILE" in env) == (name == "dagger-executor"), name
    assert compose["dagger-executor"]["environment"]["AIOP_SECRETS_KEY_FILE"].endswith(
        "/secrets-key.pem"
    )
    gateway = compose["gateway"]
    assert gateway["environment"]["AIOP_SECRETS_PUBLIC_KEY_FILE"].endswith("/secrets-public.pem")
    assert not any("secrets-key" in v or v.startswith("./deploy/bus:") for v in gateway["volumes"])
    mounted: dict[str, set[str]] = {}
    for path in (REPO / "deploy" / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            pod = (doc.get("spec", {}).get("template") or {}).get("spec", {})
            for volume in pod.get("volumes", []):
                items = volume.get("secret", {}).get("items", [])
                mounted.setdefault(doc["metadata"]["name"], set()).update(i["key"] for i in items)
    assert {n for n, keys in mounted.items() if "secrets-key.pem" in keys} == {"dagger-executor"}
    assert "secrets-public.pem" in mounted["gateway"]


@pytest.mark.integration
async def test_a_service_reaches_a_tls_bus_with_its_identity(tmp_path: Path, bus: Path) -> None:
    auth = json.loads((bus / "auth.conf").read_text().removeprefix("authorization: "))
    tls = {"cert_file": str(bus / "server.pem"), "key_file": str(bus / "server-key.pem"),
           "ca_file": str(bus / "ca.pem")}  # fmt: skip
    server = NatsServer(tmp_path / "nats", authorization=auth, tls=tls).start()
    try:
        admin = await nats.connect(server.url, nkeys_seed=str(bus / "admin.nk"),
                                   tls=_trusting(bus))  # fmt: skip
        await ensure_streams(admin.jetstream())  # the streams job, as the admin
        settings = ReporterSettings(
            nats_url=server.url, nats_seed_file=bus / "reporter.nk",
            nats_ca_file=bus / "ca.pem", create_streams=False,
        )  # fmt: skip
        reporter = build(settings)
        await reporter.start()
        try:
            await wait_ready(admin, "reporter", timeout=10)
        finally:
            await reporter.stop()
            await admin.close()
        # Without the CA the server's certificate is not trusted, and plain text is refused.
        for url, tls_context in ((server.url, None), (server.url.replace("tls", "nats"), None)):
            with pytest.raises(Exception):  # noqa: B017 - TLS or protocol, either refuses
                await asyncio.wait_for(
                    nats.connect(url, nkeys_seed=str(bus / "admin.nk"), tls=tls_context,
                                 allow_reconnect=False, max_reconnect_attempts=0),
                    10,
                )  # fmt: skip
    finally:
        server.stop()


def _trusting(bus: Path):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cafile=str(bus / "ca.pem"))
