"""The Ed25519 signing key, kept in the auth directory, and the JWKS that publishes it."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiop.auth.adapters.files import create_private
from aiop.auth.domain.tokens import ALGORITHM

KEY_FILE = "signing-key.pem"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """One Ed25519 key; ``kid`` is its RFC 7638 thumbprint, so it is stable across restarts."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
        canonical = json.dumps(self.public_jwk, separators=(",", ":"), sort_keys=True)
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())

    @classmethod
    def load_or_create(cls, auth_dir: Path) -> "SigningKey":
        path = auth_dir / KEY_FILE
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # O_EXCL: two instances starting at once agree on whichever key was written first.
            create_private(path, pem)
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 key")
        return cls(private)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.public_jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm=ALGORITHM, headers={"kid": self.kid})
