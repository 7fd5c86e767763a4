"""The key pair secrets are sealed with (docs/security.md, "Secrets"): made once, then
kept, since a new one would leave every stored secret unopenable.

The gateway is given the public key, which seals and cannot open; executors are given the
private key (0600), which opens. ``aiop up`` keeps both under ``.aiop/secrets/``,
``aiop bus-config`` in the deployment's folder.
"""

import contextlib
import os
from pathlib import Path

from aiop.contracts.secrets import generate_key_pair, load_private_key, public_pem

PRIVATE_KEY = "secrets-key.pem"
PUBLIC_KEY = "secrets-public.pem"
GATEWAY, EXECUTOR = "gateway", "dagger-executor"


def ensure_key_pair(folder: Path) -> tuple[Path, Path]:
    """(private key file, public key file) in ``folder``, the pair made on first use."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private, public = folder / PRIVATE_KEY, folder / PUBLIC_KEY
    if not private.exists():
        private_pem, _ = generate_key_pair()
        with contextlib.suppress(FileExistsError):  # two starts at once: the first one wins
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(private_pem)
    # Always the private key's own public key, so the two cannot disagree.
    pem = public_pem(load_private_key(private.read_bytes()).public_key())
    if not public.exists() or public.read_bytes() != pem:
        tmp = public.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.replace(public)
    return private, public


def secrets_env(keys: tuple[Path, Path], service: str) -> dict[str, str]:
    """Which key ``service`` holds: the gateway the public one, executors the private one,
    every other service neither."""
    private, public = keys
    if service == GATEWAY:
        return {"AIOP_SECRETS_PUBLIC_KEY_FILE": str(public)}
    if service == EXECUTOR:
        return {"AIOP_SECRETS_KEY_FILE": str(private)}
    return {}
