"""``aiop bus-config``: the bus of a deployment (docker-compose, Kubernetes) as
``aiop up`` configures its own, plus TLS: one folder to mount or turn into a secret.

    auth.conf                  the servers' authorization block (public keys, grants)
    <identity>.nk              one nkey seed per identity (services, admin, operator,
                               external), 0600
    ca.pem, server.pem, server-key.pem   TLS for clients and cluster routes
    secrets-key.pem            the key that opens stored secrets: executors only, 0600
    secrets-public.pem         the key the gateway seals them with

Run it again to add what is missing; existing seeds and the secrets' key pair are kept
(a new pair would leave every stored secret unopenable), TLS is made anew.
"""

import json
import os
from pathlib import Path

from aiop.cli.identities import authorization_in
from aiop.cli.secretkeys import ensure_key_pair
from aiop.cli.tls import write_tls

# The names the servers answer to in docker-compose.yml and deploy/k8s/.
HOSTS = ["nats", "nats-0.nats", "nats-1.nats", "nats-2.nats", "localhost", "127.0.0.1"]


def write_bus_config(folder: Path, hosts: list[str], owner: int | None) -> list[str]:
    """Everything in ``folder``; the identities' names. ``owner`` (a uid) gets the files,
    for containers that run as a user of their own."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    config, identities = authorization_in(folder)
    (folder / "auth.conf").write_text(f"authorization: {json.dumps(config, indent=2)}\n")
    write_tls(folder, hosts)
    ensure_key_pair(folder)
    for path in folder.iterdir():
        private = path.suffix == ".nk" or path.name.endswith("-key.pem")
        path.chmod(0o600 if private else 0o644)
        if owner is not None:
            os.chown(path, owner, owner)
    if owner is not None:
        os.chown(folder, owner, owner)
    return sorted(identities)
