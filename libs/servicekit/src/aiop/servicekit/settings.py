import os
import socket
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service reads from ``AIOP_*`` environment variables.

    A service adds its own fields by subclassing; ``aiop up`` and docker-compose set them.
    """

    model_config = SettingsConfigDict(env_prefix="AIOP_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # Where the embedded stack's span exporter writes JSON lines that `aiop trace` reads.
    trace_dir: Path | None = None
    log_level: str = "INFO"
    # 1 on one machine, 3 in a cluster (DESIGN.md, Streams and delivery).
    stream_replicas: int = 1
    instance: str = f"{socket.gethostname()}-{os.getpid()}"
