"""``aiop secrets``: values come from stdin only, and never come back; the key pair `aiop up`
makes gives the gateway the public key only (docs/security.md, "Secrets")."""

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiop.cli import common, main
from aiop.cli.secretkeys import ensure_key_pair, secrets_env
from aiop.cli.services import MODULES
from aiop.contracts.secrets import load_private_key, load_public_key, open_sealed, seal

VALUE = "s3cret-from-stdin"


class FakeGateway:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}

    def set_secret(self, name: str, value: str, project: str) -> tuple[bool, dict[str, Any]]:
        created = (project, name) not in self.stored
        self.stored[(project, name)] = value
        return created, {"name": name, "project": project, "created_at": "t", "updated_at": "t"}

    def secrets(self, project: str) -> list[dict[str, Any]]:
        return [{"name": n, "project": p, "created_at": "t", "updated_at": "t"}
                for (p, n) in self.stored if p == project]  # fmt: skip

    def delete_secret(self, name: str, project: str) -> dict[str, Any]:
        del self.stored[(project, name)]
        return {"name": name, "project": project, "created_at": "t", "updated_at": "t"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    gateway = FakeGateway()
    monkeypatch.setattr(common, "gateway", lambda: gateway)  # what every command calls
    return gateway


def test_set_reads_the_value_from_stdin_and_never_prints_it(fake: FakeGateway) -> None:
    runner = CliRunner()
    first = runner.invoke(main.app, ["secrets", "set", "API_TOKEN"], input=VALUE + "\n")
    assert first.exit_code == 0, first.output
    assert fake.stored == {("default", "API_TOKEN"): VALUE}  # the newline echo adds is not
    assert "stored" in first.output
    assert VALUE not in first.output
    again = runner.invoke(main.app, ["secrets", "set", "API_TOKEN", "--project", "default"],
                          input=VALUE + "-2")  # fmt: skip
    assert "replaced" in again.output
    assert fake.stored[("default", "API_TOKEN")] == VALUE + "-2"
    listed = runner.invoke(main.app, ["secrets", "ls", "--json"])
    assert '"API_TOKEN"' in listed.output
    assert VALUE not in listed.output
    removed = runner.invoke(main.app, ["secrets", "rm", "API_TOKEN"])
    assert removed.exit_code == 0
    assert fake.stored == {}


def test_a_value_on_the_command_line_is_refused(fake: FakeGateway) -> None:
    runner = CliRunner()
    result = runner.invoke(main.app, ["secrets", "set", "API_TOKEN", VALUE], input="")
    assert result.exit_code == 2  # no such argument: argv would show it in ps and history
    assert fake.stored == {}
    empty = runner.invoke(main.app, ["secrets", "set", "API_TOKEN"], input="")
    assert empty.exit_code == 2
    assert fake.stored == {}
    bad = runner.invoke(main.app, ["secrets", "set", "bad.name"], input=VALUE)
    assert bad.exit_code == 2
    assert fake.stored == {}


def test_the_gateway_gets_the_public_key_and_only_executors_the_private_one(
    tmp_path: Path,
) -> None:
    private, public = ensure_key_pair(tmp_path / "secrets")
    assert private.stat().st_mode & 0o777 == 0o600
    assert ensure_key_pair(tmp_path / "secrets") == (private, public)
    kept = private.read_bytes()
    ensure_key_pair(tmp_path / "secrets")
    assert private.read_bytes() == kept  # made once: a new pair orphans every secret
    envs = {service: secrets_env((private, public), service) for service in MODULES}
    assert envs["gateway"] == {"AIOP_SECRETS_PUBLIC_KEY_FILE": str(public)}
    assert envs["dagger-executor"] == {"AIOP_SECRETS_KEY_FILE": str(private)}
    holders = {s for s, env in envs.items() if str(private) in env.values()}
    assert holders == {"dagger-executor"}
    # The pair matches: what the gateway seals, the executors open.
    sealed = seal(load_public_key(public.read_bytes()), b"v", b"default.X")
    assert open_sealed(load_private_key(private.read_bytes()), sealed, b"default.X") == b"v"
