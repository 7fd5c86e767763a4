"""The NATS identities of an AIOP installation and what each may do (docs/security.md).

Each identity is an nkey: its seed stays in a 0600 file under ``.aiop/nats/``, only its
public key goes into the server's configuration. There is one identity per service, with
the permissions its registrations imply (``servicekit.permissions``), and three more:

- ``admin``: everything; ``aiop up`` itself and the test harnesses (streams, readiness).
- ``operator``: reads streams through consumers of its own (``aiop tail``, ``aiop logs``),
  and can neither publish an event nor touch a service's durable consumer.
- ``external``: publishes under ``ext.>`` only, for systems outside the platform.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

from aiop.cli.services import all_services
from aiop.contracts.subjects import STREAM_EXT, STREAM_SUBJECTS, WORK_QUEUES, stream_for
from aiop.servicekit.permissions import JS_COMMON, Permissions, inbox_prefix, service_permissions
from aiop.servicekit.traffic import Action

ADMIN, OPERATOR, EXTERNAL = "admin", "operator", "external"
IDENTITY_DIR = "nats"


@dataclass(frozen=True)
class Identity:
    name: str
    seed_file: Path
    public_key: str


def load_or_create(folder: Path, name: str) -> Identity:
    """The identity ``name`` kept in ``folder``, created on first use."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{name}.nk"
    if not path.exists():
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        try:  # O_EXCL: two starts at once agree on whichever seed was written first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(seed)
    public = nkeys.from_seed(path.read_bytes().strip()).public_key.decode()
    return Identity(name, path, public)


def authorization(state: Path) -> tuple[dict[str, Any], dict[str, Identity]]:
    """The server's ``authorization`` block, and every identity by name, for the
    installation in ``state`` (its identities under ``state/nats/``)."""
    return authorization_in(state / IDENTITY_DIR)


def authorization_in(folder: Path) -> tuple[dict[str, Any], dict[str, Identity]]:
    """As ``authorization``, with the identities kept in ``folder``."""
    services = all_services()
    durables = [
        (t.subject, t.durable) for svc in services for t in svc.traffic
        if t.action is Action.CONSUME and t.durable
    ]  # fmt: skip
    grants: dict[str, Permissions | None] = {
        svc.name: service_permissions(svc.name, svc.traffic) for svc in services
    }
    grants |= {ADMIN: None, OPERATOR: operator(durables), EXTERNAL: external()}
    identities = {name: load_or_create(folder, name) for name in grants}
    users = []
    for name, grant in grants.items():
        user: dict[str, Any] = {"nkey": identities[name].public_key}
        if grant is not None:
            user["permissions"] = grant.as_config()
        users.append(user)
    return {"users": users}, identities


def operator(durables: list[tuple[str, str]]) -> Permissions:
    """Reading every stream but the work queues through consumers of its own, and
    nothing else."""
    p = Permissions(publish=set(JS_COMMON), subscribe={f"{inbox_prefix(OPERATOR)}.>"})
    for stream in STREAM_SUBJECTS.keys() - WORK_QUEUES:
        p.publish |= {
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}",  # unnamed: the server names it
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.API.CONSUMER.INFO.{stream}.*",
            f"$JS.API.CONSUMER.DELETE.{stream}.*",
        }
    # A service's durable consumer is not for reading: fetching from it would take its
    # messages away from the service until their ack wait ran out.
    p.deny_publish = {
        f"$JS.API.CONSUMER.{op}.{stream_for(subject)}.{durable}"
        for subject, durable in durables
        for op in ("MSG.NEXT", "DELETE", "INFO")
    }
    p.allow_responses = False
    return p


def external() -> Permissions:
    """Publishing external events, acknowledged by JetStream, and nothing else."""
    p = Permissions(subscribe={f"{inbox_prefix(EXTERNAL)}.>"}, allow_responses=False)
    p.publish |= set(STREAM_SUBJECTS[STREAM_EXT])
    return p
