"""Pure auth logic and the files it keeps."""

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import jwt

from aiop.auth.adapters.keys import SigningKey
from aiop.auth.adapters.principals import PrincipalStore
from aiop.auth.domain.principals import Principal, authorize, legacy_hash
from aiop.auth.domain.tokens import AUDIENCE, ISSUER, token_claims


def test_claims_carry_principal_projects_and_expiry() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    claims = token_claims("dev", ["default"], now, 900)
    assert claims["sub"] == "dev"
    assert claims["projects"] == ["default"]
    assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)
    assert claims["exp"] - claims["iat"] == 900


def test_authorize_needs_a_known_principal_and_a_granted_project() -> None:
    dev = Principal(name="dev", projects=["default"])
    assert authorize(dev, "default", "workflow:submit").allowed
    denied = authorize(dev, "other", "workflow:submit")
    assert not denied.allowed
    assert "other" in denied.reason
    assert not authorize(None, "default", "workflow:submit").allowed


def test_signing_key_is_private_and_stable(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / "signing-key.pem").stat().st_mode) == 0o600
    again = SigningKey.load_or_create(tmp_path)
    assert again.kid == key.kid
    jwk = key.jwks()["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["kid"]) == ("OKP", "Ed25519", "EdDSA", key.kid)
    token = key.sign(token_claims("dev", ["default"], datetime.now(UTC), 60))
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    public = jwt.PyJWKSet.from_dict(key.jwks())[key.kid].key
    assert jwt.decode(token, public, algorithms=["EdDSA"], audience=AUDIENCE)["sub"] == "dev"


def test_dev_key_is_written_once_and_stored_only_as_hash(tmp_path: Path) -> None:
    key_file = tmp_path / "dev.key"
    store = PrincipalStore.open(tmp_path / "auth", key_file)
    dev_key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert dev_key not in (tmp_path / "auth" / "principals.json").read_text()
    assert store.by_api_key(dev_key) is not None
    # A restart finds the same principals and leaves the key file alone.
    again = PrincipalStore.open(tmp_path / "auth", key_file)
    assert key_file.read_text().strip() == dev_key
    principal = again.by_api_key(dev_key)
    assert principal is not None
    assert (principal.name, principal.projects) == ("dev", ["default"])
    assert again.by_api_key("aiop_guess") is None


def test_keys_are_kept_as_argon2_hashes_and_can_be_revoked(tmp_path: Path) -> None:
    store = PrincipalStore.open(tmp_path / "auth", tmp_path / "dev.key")
    key, record = store.issue_key("dev")
    stored = (tmp_path / "auth" / "principals.json").read_text()
    assert key not in stored
    assert record.hash.startswith("$argon2id$")
    assert record.hash in stored
    assert store.by_api_key(key) is not None
    assert store.revoke("dev", record.id) is not None
    assert store.by_api_key(key) is None  # revoked: no more tokens
    again = PrincipalStore.open(tmp_path / "auth", tmp_path / "dev.key")
    assert again.by_api_key(key) is None  # and it stays revoked
    assert again.revoke("dev", "000000000000") is None


def test_a_key_kept_as_sha256_moves_to_argon2(tmp_path: Path) -> None:
    auth_dir, key_file = tmp_path / "auth", tmp_path / "dev.key"
    key = "aiop_" + "k" * 43
    key_file.write_text(key + "\n")
    auth_dir.mkdir()
    old = {"dev": {"name": "dev", "projects": ["default"], "key_hashes": [legacy_hash(key)]}}
    (auth_dir / "principals.json").write_text(json.dumps(old))
    store = PrincipalStore.open(auth_dir, key_file)
    principal = store.by_api_key(key)
    assert principal is not None
    assert principal.key_hashes == []
    assert legacy_hash(key) not in (auth_dir / "principals.json").read_text()
