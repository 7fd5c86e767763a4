"""The distributor's I/O: JetStream KV buckets."""
