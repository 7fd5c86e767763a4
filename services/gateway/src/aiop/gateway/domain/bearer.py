"""Reading the bearer token out of an Authorization header (RFC 6750)."""


def bearer_token(header: str) -> str | None:
    """The token in ``Bearer <token>``, the scheme in any case; None for anything else."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
