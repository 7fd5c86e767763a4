"""Opening a JetStream key-value bucket that another service may be creating too."""

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue


async def open_bucket(
    js: JetStreamContext, bucket: str, *, replicas: int = 1, history: int = 1
) -> KeyValue:
    """The bucket, created on file storage if missing.

    Several services (and several replicas of one) open the same buckets at start: when
    another one creates it first, or created it with other settings, that bucket is used.
    """
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=bucket, history=history, storage=StorageType.FILE, replicas=replicas
    )
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError:  # created meanwhile, with other settings
        return await js.key_value(bucket)
