"""Files in the auth directory: the signing key and the principals with their API key hashes."""
