"""The reporter's I/O: the summaries in JetStream KV and the dead-letter advisories."""
