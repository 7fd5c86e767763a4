"""The gateway's view of other services: token verification with auth's JWKS."""
