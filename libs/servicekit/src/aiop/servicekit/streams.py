"""The JetStream streams AIOP publishes to, created (or updated) idempotently."""

from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from aiop.contracts.subjects import (
    STREAM_AGENT_REPORTS,
    STREAM_AGENT_WORK,
    STREAM_DLQ,
    STREAM_EVENTS,
    STREAM_EXT,
    STREAM_LOGS,
    STREAM_SUBJECTS,
    STREAM_WEBHOOKS,
)

DAY = 24 * 3600.0


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    common: dict[str, Any] = {
        "storage": StorageType.FILE,
        "num_replicas": replicas,
        "duplicate_window": 120.0,  # Nats-Msg-Id dedup window for retried publishes
        "retention": RetentionPolicy.LIMITS,
        "discard": DiscardPolicy.OLD,
    }
    return [
        StreamConfig(name=STREAM_EVENTS, subjects=STREAM_SUBJECTS[STREAM_EVENTS],
                     max_age=30 * DAY, max_bytes=8 * 1024**3, **common),
        StreamConfig(name=STREAM_LOGS, subjects=STREAM_SUBJECTS[STREAM_LOGS],
                     max_age=2 * DAY, max_bytes=1024**3, **common),
        StreamConfig(name=STREAM_EXT, subjects=STREAM_SUBJECTS[STREAM_EXT],
                     max_age=7 * DAY, max_bytes=1024**3, **common),
        StreamConfig(name=STREAM_DLQ, subjects=STREAM_SUBJECTS[STREAM_DLQ],
                     max_age=90 * DAY, max_bytes=1024**3, **common),
        # Each offered step is taken by one agent and gone once acked; an offer nobody
        # takes in a day has long been timed out or cancelled by its executor.
        StreamConfig(name=STREAM_AGENT_WORK, subjects=STREAM_SUBJECTS[STREAM_AGENT_WORK],
                     max_age=DAY, max_bytes=1024**3,
                     **{**common, "retention": RetentionPolicy.WORK_QUEUE}),
        StreamConfig(name=STREAM_AGENT_REPORTS, subjects=STREAM_SUBJECTS[STREAM_AGENT_REPORTS],
                     max_age=DAY, max_bytes=1024**3, **common),
        # A delivery to a webhook is gone once made or given up on (its record stays in
        # KV). The hour of dedup spans a retry series: a source event redelivered
        # meanwhile, published again, is dropped as the same delivery.
        StreamConfig(name=STREAM_WEBHOOKS, subjects=STREAM_SUBJECTS[STREAM_WEBHOOKS],
                     max_age=7 * DAY, max_bytes=1024**3,
                     **{**common, "retention": RetentionPolicy.WORK_QUEUE,
                        "duplicate_window": 3600.0}),
    ]  # fmt: skip


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create each stream, or update it to this configuration if it exists."""
    for config in stream_configs(replicas):
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)


async def _set_up() -> None:
    """Create or update the streams as the identity the settings name: for an operator's
    one-off job (docker-compose, Kubernetes) before the services start."""
    import nats

    from aiop.servicekit.service import tls_context
    from aiop.servicekit.settings import ServiceSettings

    settings = ServiceSettings()
    nc = await nats.connect(
        [url.strip() for url in settings.nats_url.split(",")],
        nkeys_seed=str(settings.nats_seed_file) if settings.nats_seed_file else None,
        tls=tls_context(settings.nats_ca_file),
    )
    try:
        await ensure_streams(nc.jetstream(), settings.stream_replicas)
        print(f"streams ready: {', '.join(c.name or '' for c in stream_configs())}")
    finally:
        await nc.close()


if __name__ == "__main__":
    import asyncio

    asyncio.run(_set_up())
