"""Running a bus-only service: the FastStream app plus readiness and stream setup."""

import logging
from collections.abc import Awaitable, Callable

from faststream import FastStream
from faststream.nats import NatsBroker

from aiop.servicekit.consumer import start_consumers, stop_consumers
from aiop.servicekit.rpc import Handler, serve
from aiop.servicekit.settings import ServiceSettings
from aiop.servicekit.streams import ensure_streams


def configure_logging(settings: ServiceSettings, service: str) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )


def service_app(
    service: str,
    broker: NatsBroker,
    settings: ServiceSettings,
    *,
    endpoints: dict[str, tuple[str, Handler]] | None = None,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> FastStream:
    """A FastStream app that makes sure the streams exist before its consumers start,
    then starts ``on_ready`` work and answers pings as ``aiop-<service>``."""
    configure_logging(settings, service)
    app = FastStream(broker)

    @app.on_startup
    async def streams() -> None:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), settings.stream_replicas)

    @app.after_startup
    async def ready() -> None:
        await start_consumers(broker)
        if on_ready is not None:
            await on_ready()
        # Registered last: answering a ping means every consumer is already running.
        await serve(broker.connection, service, endpoints)

    @app.on_shutdown  # first: in-flight handlers finish before on_stop closes their stores
    async def drain() -> None:
        await stop_consumers(broker)

    if on_stop is not None:
        app.on_shutdown(on_stop)
    return app
