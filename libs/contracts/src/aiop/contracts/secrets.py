"""Secrets at rest: sealed by the gateway to the executors' public key, opened only by
executors (docs/security.md, "Secrets").

Each secret is one key ``<project>.<name>`` in KV ``aiop_secrets``, its value a
``StoredSecret``: names and times in the clear, the value sealed. Sealing is ECIES on
X25519: an ephemeral key pair per seal, ECDH with the recipient's public key, HKDF-SHA256
to an AES-256-GCM key, the key ``<project>.<name>`` as associated data, so that a
ciphertext moved to another name or project does not open. Whoever holds only the public
key (the gateway) can seal and never open.

Pure functions, no I/O: key files are read and written by their users. This module needs
``cryptography``, which the services that seal or open (gateway, executors, the CLI that
makes the key pair) depend on; it is not imported by ``aiop.contracts`` itself.
"""

import hashlib
import os
from datetime import datetime

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_SECRET_BYTES = 64 * 1024  # a value's size in UTF-8, the most the gateway stores
DEFAULT_PROJECT = "default"

VERSION = b"\x01"
_INFO = b"aiop secret v1"
_PUBLIC = 32  # X25519 public key
_NONCE = 12  # AES-GCM nonce
_TAG = 16  # AES-GCM tag


class StoredSecret(msgspec.Struct, frozen=True, kw_only=True):
    """The value of key ``<project>.<name>`` in KV ``aiop_secrets``."""

    name: str
    project: str
    created_at: datetime
    updated_at: datetime
    key_id: str  # which public key it is sealed to (``key_id``)
    sealed: bytes  # version | ephemeral public key | nonce | AES-256-GCM ciphertext and tag


class SecretValue(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /v1/secrets/{name}``: the value, sent once, never returned."""

    value: str


class SecretView(msgspec.Struct, frozen=True, kw_only=True):
    """A secret as the API shows it: never its value."""

    name: str
    project: str
    created_at: datetime
    updated_at: datetime


class SecretList(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/secrets``: a project's secrets, by name."""

    project: str
    secrets: list[SecretView]


def secret_key(project: str, name: str) -> str:
    """The key in KV ``aiop_secrets``; both are subject tokens, so it has one dot."""
    return f"{project}.{name}"


def view_of(stored: StoredSecret) -> SecretView:
    return SecretView(
        name=stored.name, project=stored.project,
        created_at=stored.created_at, updated_at=stored.updated_at,
    )  # fmt: skip


encode_stored = msgspec.json.Encoder().encode
decode_stored = msgspec.json.Decoder(StoredSecret).decode


class CannotOpen(ValueError):
    """The ciphertext does not open with this key and associated data: another key, another
    name or project, or altered. Says nothing about the value."""


class NotAKey(ValueError):
    """A key file that does not hold the kind of key expected."""


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new key pair as (private key PEM, public key PEM)."""
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem, public_pem(private.public_key())


def public_pem(public: X25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> X25519PublicKey:
    """The public key in ``pem``; a private key is refused, so that a gateway given the
    private key by mistake does not start holding it."""
    if b"PRIVATE KEY" in pem:
        raise NotAKey("this is a private key; the gateway takes the public key only")
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise NotAKey(f"not a PEM public key: {exc}") from None
    if not isinstance(key, X25519PublicKey):
        raise NotAKey(f"not an X25519 public key but {type(key).__name__}")
    return key


def load_private_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise NotAKey(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise NotAKey(f"not an X25519 private key but {type(key).__name__}")
    return key


def key_id(public: X25519PublicKey) -> str:
    """A short fingerprint of ``public``, stored beside each ciphertext: an executor with
    another key says so instead of failing to open."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _cipher_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO + ephemeral + recipient)  # fmt: skip
    return hkdf.derive(shared)


def seal(public: X25519PublicKey, plaintext: bytes, associated_data: bytes) -> bytes:
    """``plaintext`` sealed to ``public``, bound to ``associated_data``."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    recipient_raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _cipher_key(ephemeral.exchange(public), ephemeral_raw, recipient_raw)
    nonce = os.urandom(_NONCE)
    return VERSION + ephemeral_raw + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(private: X25519PrivateKey, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of ``sealed``; CannotOpen unless it was sealed to this key's public
    key with the same ``associated_data`` and not altered since."""
    if len(sealed) < 1 + _PUBLIC + _NONCE + _TAG or sealed[:1] != VERSION:
        raise CannotOpen("not a sealed secret of a known version")
    ephemeral_raw = sealed[1 : 1 + _PUBLIC]
    nonce = sealed[1 + _PUBLIC : 1 + _PUBLIC + _NONCE]
    recipient_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _cipher_key(shared, ephemeral_raw, recipient_raw)
        return AESGCM(key).decrypt(nonce, sealed[1 + _PUBLIC + _NONCE :], associated_data)
    except (InvalidTag, ValueError):
        raise CannotOpen("the secret does not open with this key and name") from None
