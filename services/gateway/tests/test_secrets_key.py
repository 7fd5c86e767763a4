"""The gateway seals secrets and can never open them: it is given the public key only
(docs/security.md, "Secrets")."""

import ast
from pathlib import Path

from aiop.gateway.main import GatewaySettings

SRC = Path(__file__).resolve().parents[1] / "src"


def test_the_gateway_side_never_holds_or_opens_the_private_key() -> None:
    """Its settings take a public key file only, and its code never names the private
    key's variable, loads a private key or opens a sealed value."""
    fields = set(GatewaySettings.model_fields)
    assert "secrets_public_key_file" in fields
    assert not {f for f in fields if "secret" in f and "public" not in f}
    forbidden = {"load_private_key", "open_sealed", "X25519PrivateKey", "AIOP_SECRETS_KEY_FILE"}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        names |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str)}  # fmt: skip
        assert not names & forbidden, (path, names & forbidden)
